//! The frames between the manager and a worker: one JSON object per line, over the worker's
//! stdin (commands) and stdout (reports). serde writes and reads them, so the protocol is
//! these types and nothing else, readable in a log of the pipe and typed by hand:
//! `cat | complex worker --index 1` answers `"bootstrapped"`, `"started"`, then
//! `{"result":...}` to `{"call":{"id":1,"method":{"process_number":7}}}`, and exits on `"stop"`.
//! A line that is not a frame (bad JSON, an unknown command, over [`MAX_LINE`]) is garbage:
//! detected, never misread.
//!
//! Speed: the enums are externally tagged (`{"call":{...}}`): serde decodes an internally
//! tagged one by buffering the whole object first, which measured a third slower at
//! `--time-scale 0` (where a call costs only the machinery); externally tagged frames ran
//! within the noise of a hand-written binary codec, so there is none.

use std::io::{self, BufRead, Write};

use serde::{Deserialize, Serialize};

/// The longest line accepted; anything longer is garbage on the pipe.
pub const MAX_LINE: usize = 1 << 20;

/// The DummyManager method a call runs, with its argument.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// `process_string(parameter)`: 0.5 s of simulated work.
    ProcessString(String),
    /// `process_number(parameter)`: 0.3 s of simulated work.
    ProcessNumber(i64),
}

impl Method {
    /// The method's name, as the logs spell it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::ProcessString(_) => "process_string",
            Self::ProcessNumber(_) => "process_number",
        }
    }
}

impl std::fmt::Display for Method {
    /// `process_string(parameter="text")`, as the reference prints a call.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ProcessString(parameter) => write!(f, "process_string(parameter={parameter:?})"),
            Self::ProcessNumber(parameter) => write!(f, "process_number(parameter={parameter})"),
        }
    }
}

/// Parent to worker: `{"call":{...}}`, `{"update":{...}}`, `"withdraw"`, `"stop"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Run `method` and answer with [`Report::Result`] carrying `id`.
    Call {
        /// Matches the answer to the caller.
        id: u64,
        /// What to run.
        method: Method,
    },
    /// Run `update()` and answer with [`Report::Updated`] carrying `id`.
    Update {
        /// Matches the answer to the update round.
        id: u64,
    },
    /// The stop has begun: answer every call not begun yet, now or on arrival, with
    /// [`Report::Withdrawn`]. The item in hand still finishes and is answered.
    Withdraw,
    /// Finish the item in hand, then exit. Outranks everything queued.
    Stop,
}

/// Worker to parent: `"bootstrapped"`, `"started"`, `{"result":{...}}`, ...
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Report {
    /// Handshake step 1: the worker's code runs and its signal handlers are in place.
    Bootstrapped,
    /// Handshake step 2: initialisation done; the worker takes commands.
    Started,
    /// Handshake failure, with the worker's reason; it exits next.
    StartFailed {
        /// Why it refused to start.
        reason: String,
    },
    /// The answer to [`Command::Call`]: the manager's version and the parameter, echoed.
    Result {
        /// The call's id.
        id: u64,
        /// The DummyManager's version when it ran the call.
        version: u64,
        /// The parameter, echoed back as the reference does.
        parameter: Method,
    },
    /// The answer to [`Command::Update`], with the new version.
    Updated {
        /// The update round's id.
        id: u64,
        /// The version after the update.
        version: u64,
    },
    /// The answer to calls withdrawn by [`Command::Withdraw`]: these never ran.
    Withdrawn {
        /// The calls' ids.
        ids: Vec<u64>,
    },
}

/// The most ids one [`Report::Withdrawn`] line carries (at most 21 bytes each, well under
/// [`MAX_LINE`]); a longer list goes out in several lines.
pub const MAX_WITHDRAWN_PER_FRAME: usize = 16 * 1024;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The pipe failed or ended in the middle of a line.
    #[error("failed to read a frame")]
    Io(#[from] io::Error),
    /// The bytes are not a frame of this protocol.
    #[error("garbage on the pipe: {0}")]
    Garbage(String),
}

/// A frame: one JSON line. Implemented by [`Command`] and [`Report`].
pub trait Frame: Serialize + for<'de> Deserialize<'de> {
    /// Appends the line to `out` (buffered: the caller flushes).
    fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        serde_json::to_writer(&mut *out, self)?;
        out.write_all(b"\n")
    }

    /// Parses one line (without its newline).
    fn from_line(line: &[u8]) -> Result<Self, ProtocolError> {
        serde_json::from_slice(line).map_err(|error| ProtocolError::Garbage(error.to_string()))
    }

    /// Reads the next frame, skipping blank lines; `Ok(None)` at the end of the stream (the
    /// other side is gone). A last line cut off by the end of the stream is still read.
    fn read_from(input: &mut impl BufRead, line: &mut Vec<u8>) -> Result<Option<Self>, ProtocolError> {
        loop {
            line.clear();
            let limit = MAX_LINE as u64 + 1;
            let n = match io::Read::take(&mut *input, limit).read_until(b'\n', line) {
                Ok(n) => n,
                // A signal handler ran (they are installed with SA_RESTART, but be sure).
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error.into()),
            };
            if n == 0 {
                return Ok(None);
            }
            if line.last() == Some(&b'\n') {
                line.pop();
            } else if n as u64 == limit {
                return Err(ProtocolError::Garbage(format!(
                    "a line longer than {MAX_LINE} bytes"
                )));
            }
            if !line.trim_ascii().is_empty() {
                return Self::from_line(line).map(Some);
            }
        }
    }
}

impl Frame for Command {}
impl Frame for Report {}

/// Call `id`: `process_number(id)`, for the worker's tests.
#[cfg(test)]
pub fn test_call(id: u64) -> Command {
    Command::Call {
        id,
        method: Method::ProcessNumber(id as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commands() -> Vec<Command> {
        vec![
            Command::Call {
                id: 7,
                method: Method::ProcessString("string-7 ünïcode \"quoted\"\n".into()),
            },
            Command::Call {
                id: u64::MAX,
                method: Method::ProcessNumber(-42),
            },
            Command::Update { id: 3 },
            Command::Withdraw,
            Command::Stop,
        ]
    }

    fn reports() -> Vec<Report> {
        vec![
            Report::Bootstrapped,
            Report::Started,
            Report::StartFailed {
                reason: "injected".into(),
            },
            Report::Result {
                id: 1,
                version: 2,
                parameter: Method::ProcessString(String::new()),
            },
            Report::Result {
                id: 1,
                version: 2,
                parameter: Method::ProcessNumber(9),
            },
            Report::Updated { id: 5, version: 6 },
            Report::Withdrawn { ids: vec![] },
            Report::Withdrawn {
                ids: vec![1, u64::MAX, 42],
            },
        ]
    }

    #[test]
    fn every_frame_round_trips_as_one_line() {
        let mut pipe = Vec::new();
        for c in commands() {
            c.write_to(&mut pipe).unwrap();
        }
        assert_eq!(pipe.iter().filter(|&&b| b == b'\n').count(), commands().len());
        let (mut input, mut line) = (pipe.as_slice(), Vec::new());
        for c in commands() {
            assert_eq!(Command::read_from(&mut input, &mut line).unwrap(), Some(c));
        }
        assert!(
            Command::read_from(&mut input, &mut line).unwrap().is_none(),
            "clean end"
        );

        let mut pipe = Vec::new();
        for r in reports() {
            r.write_to(&mut pipe).unwrap();
        }
        let (mut input, mut line) = (pipe.as_slice(), Vec::new());
        for r in reports() {
            assert_eq!(Report::read_from(&mut input, &mut line).unwrap(), Some(r));
        }
    }

    #[test]
    fn a_person_can_type_the_commands() {
        let typed = b"\n{\"call\":{\"id\":1,\"method\":{\"process_number\":7}}}\n  \n\"stop\"";
        let (mut input, mut line) = (&typed[..], Vec::new());
        assert_eq!(
            Command::read_from(&mut input, &mut line).unwrap(),
            Some(Command::Call {
                id: 1,
                method: Method::ProcessNumber(7)
            })
        );
        assert_eq!(
            Command::read_from(&mut input, &mut line).unwrap(),
            Some(Command::Stop)
        );
        let mut out = Vec::new();
        Report::Updated { id: 2, version: 3 }.write_to(&mut out).unwrap();
        assert_eq!(out, b"{\"updated\":{\"id\":2,\"version\":3}}\n");
    }

    #[test]
    fn garbage_is_detected_not_misread() {
        for garbage in [
            &b"hello world\n"[..],
            &b"\"unknown\"\n"[..],
            &b"{\"updated\":{\"id\":1}}\n"[..],
            &b"{\"withdrawn\":{\"ids\":[1,-2]}}\n"[..],
            &b"\"stop\"\n"[..],
        ] {
            let (mut input, mut line) = (garbage, Vec::new());
            assert!(
                Report::read_from(&mut input, &mut line).is_err(),
                "{:?} accepted",
                String::from_utf8_lossy(garbage)
            );
        }
        let long = vec![b' '; MAX_LINE + 10];
        let (mut input, mut line) = (&long[..], Vec::new());
        assert!(
            Command::read_from(&mut input, &mut line).is_err(),
            "an endless line"
        );
    }
}

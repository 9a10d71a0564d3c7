//! The frames between the manager and a worker, over the worker's stdin and stdout.
//!
//! A frame is `[u32 length, little-endian][u8 tag][payload]`: binary, so a call costs a few
//! bytes and no parsing, and length-prefixed, so a torn or foreign byte stream is detected
//! (unknown tag, absurd length, short payload) instead of being misread. The reference used
//! `multiprocessing` queues; pipes owned by one parent are what let a worker notice that
//! parent's death: its stdin reaches end-of-file.

use std::io::{self, Read, Write};

/// Largest frame accepted; anything longer is garbage on the pipe.
const MAX_FRAME: u32 = 1 << 20;

/// The DummyManager method a call runs, with its argument.
#[derive(Clone, Debug, PartialEq, Eq)]
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

/// Parent to worker.
#[derive(Clone, Debug, PartialEq, Eq)]
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

/// Worker to parent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// Handshake step 1: the worker's code runs and its signal handlers are in place.
    Bootstrapped,
    /// Handshake step 2: initialisation done; the worker takes commands.
    Started,
    /// Handshake failure, with the worker's reason; it exits next.
    StartFailed(String),
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

/// The most ids one [`Report::Withdrawn`] frame carries (8 bytes each, well under
/// [`MAX_FRAME`]); a longer list goes out in several frames.
pub const MAX_WITHDRAWN_PER_FRAME: usize = 16 * 1024;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The pipe failed or ended in the middle of a frame.
    #[error("failed to read a frame")]
    Io(#[from] io::Error),
    /// The bytes are not a frame of this protocol.
    #[error("garbage on the pipe: {0}")]
    Garbage(String),
}

const CALL_STRING: u8 = 1;
const CALL_NUMBER: u8 = 2;
const UPDATE: u8 = 3;
const STOP: u8 = 4;
const WITHDRAW: u8 = 5;
const BOOTSTRAPPED: u8 = 10;
const STARTED: u8 = 11;
const START_FAILED: u8 = 12;
const RESULT_STRING: u8 = 13;
const RESULT_NUMBER: u8 = 14;
const UPDATED: u8 = 15;
const WITHDRAWN: u8 = 16;

impl Command {
    /// Appends the frame to `out` (buffered: the caller flushes).
    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let mut body = Vec::with_capacity(32);
        match self {
            Self::Call {
                id,
                method: Method::ProcessString(s),
            } => {
                body.push(CALL_STRING);
                body.extend_from_slice(&id.to_le_bytes());
                body.extend_from_slice(s.as_bytes());
            }
            Self::Call {
                id,
                method: Method::ProcessNumber(n),
            } => {
                body.push(CALL_NUMBER);
                body.extend_from_slice(&id.to_le_bytes());
                body.extend_from_slice(&n.to_le_bytes());
            }
            Self::Update { id } => {
                body.push(UPDATE);
                body.extend_from_slice(&id.to_le_bytes());
            }
            Self::Withdraw => body.push(WITHDRAW),
            Self::Stop => body.push(STOP),
        }
        write_frame(out, &body)
    }

    /// Reads one frame; `Ok(None)` at a clean end of stream (the parent is gone).
    pub fn read_from(input: &mut impl Read) -> Result<Option<Self>, ProtocolError> {
        let Some(body) = read_frame(input)? else {
            return Ok(None);
        };
        let mut body = Body::new(&body);
        let command = match body.tag()? {
            CALL_STRING => Self::Call {
                id: body.u64()?,
                method: Method::ProcessString(body.rest_string()?),
            },
            CALL_NUMBER => Self::Call {
                id: body.u64()?,
                method: Method::ProcessNumber(body.i64()?),
            },
            UPDATE => Self::Update { id: body.u64()? },
            WITHDRAW => Self::Withdraw,
            STOP => Self::Stop,
            tag => return Err(ProtocolError::Garbage(format!("unknown command tag {tag}"))),
        };
        body.end()?;
        Ok(Some(command))
    }
}

impl Report {
    /// Appends the frame to `out` (buffered: the caller flushes).
    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let mut body = Vec::with_capacity(32);
        match self {
            Self::Bootstrapped => body.push(BOOTSTRAPPED),
            Self::Started => body.push(STARTED),
            Self::StartFailed(reason) => {
                body.push(START_FAILED);
                body.extend_from_slice(reason.as_bytes());
            }
            Self::Result {
                id,
                version,
                parameter,
            } => {
                let tag = match parameter {
                    Method::ProcessString(_) => RESULT_STRING,
                    Method::ProcessNumber(_) => RESULT_NUMBER,
                };
                body.push(tag);
                body.extend_from_slice(&id.to_le_bytes());
                body.extend_from_slice(&version.to_le_bytes());
                match parameter {
                    Method::ProcessString(s) => body.extend_from_slice(s.as_bytes()),
                    Method::ProcessNumber(n) => body.extend_from_slice(&n.to_le_bytes()),
                }
            }
            Self::Updated { id, version } => {
                body.push(UPDATED);
                body.extend_from_slice(&id.to_le_bytes());
                body.extend_from_slice(&version.to_le_bytes());
            }
            Self::Withdrawn { ids } => {
                body.reserve(ids.len() * 8);
                body.push(WITHDRAWN);
                for id in ids {
                    body.extend_from_slice(&id.to_le_bytes());
                }
            }
        }
        write_frame(out, &body)
    }

    /// Reads one frame; `Ok(None)` at a clean end of stream (the worker closed its stdout).
    pub fn read_from(input: &mut impl Read) -> Result<Option<Self>, ProtocolError> {
        let Some(body) = read_frame(input)? else {
            return Ok(None);
        };
        let mut body = Body::new(&body);
        let report = match body.tag()? {
            BOOTSTRAPPED => Self::Bootstrapped,
            STARTED => Self::Started,
            START_FAILED => Self::StartFailed(body.rest_string()?),
            RESULT_STRING => Self::Result {
                id: body.u64()?,
                version: body.u64()?,
                parameter: Method::ProcessString(body.rest_string()?),
            },
            RESULT_NUMBER => Self::Result {
                id: body.u64()?,
                version: body.u64()?,
                parameter: Method::ProcessNumber(body.i64()?),
            },
            UPDATED => Self::Updated {
                id: body.u64()?,
                version: body.u64()?,
            },
            WITHDRAWN => {
                let mut ids = Vec::with_capacity(body.bytes.len() / 8);
                while !body.bytes.is_empty() {
                    ids.push(body.u64()?);
                }
                Self::Withdrawn { ids }
            }
            tag => return Err(ProtocolError::Garbage(format!("unknown report tag {tag}"))),
        };
        body.end()?;
        Ok(Some(report))
    }
}

/// The length (prefix included) of the first frame in `bytes`, once all of it is there:
/// for a reader that takes bytes as they come instead of blocking for a whole frame.
pub fn complete_frame(bytes: &[u8]) -> Result<Option<usize>, ProtocolError> {
    let Some(prefix) = bytes.first_chunk::<4>() else {
        return Ok(None);
    };
    let length = u32::from_le_bytes(*prefix);
    if length == 0 || length > MAX_FRAME {
        return Err(ProtocolError::Garbage(format!("frame length {length}")));
    }
    let total = 4 + length as usize;
    Ok((bytes.len() >= total).then_some(total))
}

fn write_frame(out: &mut impl Write, body: &[u8]) -> io::Result<()> {
    let length = u32::try_from(body.len())
        .ok()
        .filter(|&n| n <= MAX_FRAME)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    out.write_all(&length.to_le_bytes())?;
    out.write_all(body)
}

fn read_frame(input: &mut impl Read) -> Result<Option<Vec<u8>>, ProtocolError> {
    let mut length = [0u8; 4];
    // End of stream exactly at a frame boundary is the clean end; anywhere else it is a tear.
    loop {
        match input.read(&mut length[..1]) {
            Ok(0) => return Ok(None),
            Ok(_) => break,
            // A signal handler ran (they are installed with SA_RESTART, but be sure).
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error.into()),
        }
    }
    input.read_exact(&mut length[1..])?;
    let length = u32::from_le_bytes(length);
    if length == 0 || length > MAX_FRAME {
        return Err(ProtocolError::Garbage(format!("frame length {length}")));
    }
    let mut body = vec![0; length as usize];
    input.read_exact(&mut body)?;
    Ok(Some(body))
}

/// A cursor over a frame's body that turns every shortfall into [`ProtocolError::Garbage`].
struct Body<'a> {
    bytes: &'a [u8],
}

impl<'a> Body<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], ProtocolError> {
        let (head, rest) = self
            .bytes
            .split_first_chunk::<N>()
            .ok_or_else(|| ProtocolError::Garbage("frame shorter than its fields".into()))?;
        self.bytes = rest;
        Ok(*head)
    }

    fn tag(&mut self) -> Result<u8, ProtocolError> {
        Ok(self.take::<1>()?[0])
    }

    fn u64(&mut self) -> Result<u64, ProtocolError> {
        Ok(u64::from_le_bytes(self.take()?))
    }

    fn i64(&mut self) -> Result<i64, ProtocolError> {
        Ok(i64::from_le_bytes(self.take()?))
    }

    fn rest_string(&mut self) -> Result<String, ProtocolError> {
        let text = std::str::from_utf8(self.bytes)
            .map_err(|_| ProtocolError::Garbage("string is not UTF-8".into()))?
            .to_owned();
        self.bytes = &[];
        Ok(text)
    }

    fn end(&self) -> Result<(), ProtocolError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(ProtocolError::Garbage(format!(
                "{} unexpected trailing bytes",
                self.bytes.len()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_frame_round_trips() {
        let commands = [
            Command::Call {
                id: 7,
                method: Method::ProcessString("string-7 ünïcode".into()),
            },
            Command::Call {
                id: u64::MAX,
                method: Method::ProcessNumber(-42),
            },
            Command::Update { id: 3 },
            Command::Withdraw,
            Command::Stop,
        ];
        let reports = [
            Report::Bootstrapped,
            Report::Started,
            Report::StartFailed("injected".into()),
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
        ];
        let mut pipe = Vec::new();
        for c in &commands {
            c.write_to(&mut pipe).unwrap();
        }
        let mut input = pipe.as_slice();
        for c in &commands {
            assert_eq!(Command::read_from(&mut input).unwrap().as_ref(), Some(c));
        }
        assert!(Command::read_from(&mut input).unwrap().is_none(), "clean end");

        let mut pipe = Vec::new();
        for r in &reports {
            r.write_to(&mut pipe).unwrap();
        }
        let mut input = pipe.as_slice();
        for r in &reports {
            assert_eq!(Report::read_from(&mut input).unwrap().as_ref(), Some(r));
        }
    }

    #[test]
    fn complete_frame_waits_for_the_whole_frame() {
        let mut pipe = Vec::new();
        Report::Updated { id: 1, version: 2 }.write_to(&mut pipe).unwrap();
        let whole = pipe.len();
        Report::Started.write_to(&mut pipe).unwrap();
        assert_eq!(complete_frame(&pipe[..3]).unwrap(), None);
        assert_eq!(complete_frame(&pipe[..whole - 1]).unwrap(), None);
        assert_eq!(complete_frame(&pipe).unwrap(), Some(whole));
        let mut first = &pipe[..whole];
        assert_eq!(
            Report::read_from(&mut first).unwrap(),
            Some(Report::Updated { id: 1, version: 2 })
        );
        assert!(complete_frame(b"hello world\n").is_err());
    }

    #[test]
    fn garbage_is_detected_not_misread() {
        for garbage in [
            &b"hello world\n"[..],          // text on the pipe: absurd length
            &[1, 0, 0, 0, 99][..],          // unknown tag
            &[3, 0, 0, 0, 3, 1, 2][..],     // short field
            &[0, 0, 0, 0][..],              // empty frame
            &[4, 0, 0, 0, 16, 1, 2, 3][..], // withdrawn ids not a whole number of u64s
        ] {
            let mut input = garbage;
            assert!(Report::read_from(&mut input).is_err(), "{garbage:?} accepted");
        }
        // A stream torn mid-frame is an error, not a clean end.
        let mut pipe = Vec::new();
        Report::Updated { id: 1, version: 1 }.write_to(&mut pipe).unwrap();
        let mut input = &pipe[..pipe.len() - 1];
        assert!(Report::read_from(&mut input).is_err());
    }
}

//! The one reader of a run's JSON log, and the one judge of it ([`contract`]), shared by the
//! integration tests (`tests/support`) and the torture tool (`tools/torture`), so both read
//! the contract's fields the same way and hold a run to the same promises.
//!
//! Every process of a run writes one JSON object per line to stderr (docs/contract.md).
//! [`parse`] turns a line into an [`Event`]; a line that is not a JSON object (clap's
//! messages, a panic's text, two fragments glued together) stays visible as raw text, so a
//! check can see it and reject it rather than lose it.
//!
//! Checks match on **fields**, never on prose: lifecycle facts are `component` and `phase`,
//! signal facts `signal` and `action`, and the manager's and pool's steps an `event` name
//! (`update-started`, `spawned`, `handshake` with its `step`, `replaced`, `summary`, ...).
//! A message may then be reworded without breaking a test.

pub mod contract;
pub mod matching;
mod signal;

use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

pub use signal::Signal;

/// The keys every JSON log line carries (docs/contract.md).
pub const REQUIRED_KEYS: [&str; 7] = [
    "timestamp",
    "level",
    "target",
    "process",
    "pid",
    "thread",
    "message",
];

/// One line of a run's output: a JSON log event, or raw text.
#[derive(Clone, Debug)]
pub struct Event {
    /// The line as written, without its newline.
    pub raw: String,
    /// When the driver received it, since the spawn (zero when not recorded).
    pub at: Duration,
    fields: Option<Map<String, Value>>,
}

/// Parses one line (without its newline). A line that is not one JSON object is kept as
/// raw text: [`Event::is_json`] is then false and every field reads as absent.
pub fn parse(line: impl Into<String>) -> Event {
    parse_at(line, Duration::ZERO)
}

/// [`parse`] a line received `at` this long after the spawn: the checks of time (how long a
/// stop took, how long a signal went unanswered) read it.
pub fn parse_at(line: impl Into<String>, at: Duration) -> Event {
    let raw = line.into();
    let fields = match serde_json::from_str::<Value>(&raw) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    };
    Event { raw, at, fields }
}

impl Event {
    /// Whether the line is a JSON object (a log event), rather than raw text.
    pub fn is_json(&self) -> bool {
        self.fields.is_some()
    }

    /// The JSON object, if the line is one.
    pub fn fields(&self) -> Option<&Map<String, Value>> {
        self.fields.as_ref()
    }

    /// A string field, if the line is JSON and has it.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.fields.as_ref()?.get(key)?.as_str()
    }

    /// An integer field, if the line is JSON and has it.
    pub fn int(&self, key: &str) -> Option<i64> {
        self.fields.as_ref()?.get(key)?.as_i64()
    }

    /// `timestamp`: when the line was written (to the millisecond), if it has a valid one.
    pub fn timestamp(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339(self.str("timestamp")?).ok()
    }

    /// `process`: `main`, `worker-1`, ...
    pub fn process(&self) -> Option<&str> {
        self.str("process")
    }

    /// `pid`: the writer's own process id.
    pub fn pid(&self) -> Option<i64> {
        self.int("pid")
    }

    /// Written by the main process.
    pub fn is_main(&self) -> bool {
        self.process() == Some("main")
    }

    /// `component`, for lifecycle events.
    pub fn component(&self) -> Option<&str> {
        self.str("component")
    }

    /// `phase`, for lifecycle events.
    pub fn phase(&self) -> Option<&str> {
        self.str("phase")
    }

    /// `signal`, for signal events (`SIGINT`, ...).
    pub fn signal(&self) -> Option<&str> {
        self.str("signal")
    }

    /// `action`, for signal events (`delayed`, `shutdown`, `counted`, `forced`, `ignored`).
    pub fn action(&self) -> Option<&str> {
        self.str("action")
    }

    /// `event`: the name of a step of the manager, the pool or a worker (`update-started`,
    /// `spawned`, `replaced`, ...).
    pub fn event(&self) -> Option<&str> {
        self.str("event")
    }

    /// `message`: the prose, for people; empty for raw text. Checks read fields instead.
    pub fn message(&self) -> &str {
        self.str("message").unwrap_or_default()
    }

    /// Whether this is the lifecycle event `component: phase`.
    pub fn is(&self, component: &str, phase: &str) -> bool {
        self.component() == Some(component) && self.phase() == Some(phase)
    }

    /// Whether this is a signal event for `signal` with `action`.
    pub fn is_signal(&self, signal: &str, action: &str) -> bool {
        self.signal() == Some(signal) && self.action() == Some(action)
    }

    /// Whether this is the main process's final event, `component=app phase=exit`.
    pub fn is_exit(&self) -> bool {
        self.is_main() && self.is("app", "exit")
    }

    /// Whether this is the main process's forced-exit event: `component=app`, a `cause`,
    /// the components left `unfinished`, no `phase`. (A failed start's "stopping what had
    /// started" event also has `component=app` and a `cause`, but nothing is forced there.)
    pub fn is_forced_exit(&self) -> bool {
        self.is_main()
            && self.component() == Some("app")
            && self.phase().is_none()
            && self.str("cause").is_some()
            && self.str("unfinished").is_some()
    }

    /// A signal the main process logged receiving: its `signal`, when the `action` is one of
    /// the main process's (`ignored` is the workers' word).
    pub fn received_signal(&self) -> Option<&str> {
        if !self.is_main() {
            return None;
        }
        match self.action()? {
            "delayed" | "shutdown" | "counted" | "forced" => self.signal(),
            _ => None,
        }
    }
}

/// `lines` numbered from 1, one a line, for a failure message: a run at full speed logs
/// hundreds of thousands, so past `head + tail` lines only the two ends are shown.
pub fn excerpt(lines: &[Event], head: usize, tail: usize) -> String {
    let total = lines.len();
    let mut text = String::new();
    for (index, event) in lines.iter().enumerate() {
        if total > head + tail && index == head {
            text += &format!("     ... {} lines left out ...\n", total - head - tail);
        }
        if total <= head + tail || index < head || index >= total - tail {
            text += &format!("{:>4} {}\n", index + 1, event.raw);
        }
    }
    text
}

/// Whether `text` says `pid N` for this `pid` (and not `pid N0`, another process): for the
/// few facts only prose carries, such as a `cause` naming the worker that failed.
pub fn mentions_pid(text: &str, pid: i64) -> bool {
    let needle = format!("pid {pid}");
    text.match_indices(&needle).any(|(at, _)| {
        !text[at + needle.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_read_from_a_json_line() {
        let line = parse(
            r#"{"process":"main","pid":7,"component":"app","phase":"exit","status":130,"signal":"SIGINT"}"#,
        );
        assert!(line.is_json());
        assert!(line.is_exit());
        assert_eq!(line.pid(), Some(7));
        assert_eq!(line.int("status"), Some(130));
        assert!(!line.is_forced_exit());
        let forced = |fields: &str| {
            parse(format!(
                r#"{{"process":"main","component":"app","cause":"c"{fields}}}"#
            ))
        };
        assert!(forced(r#","unfinished":"app, MPM""#).is_forced_exit());
        assert!(
            !forced("").is_forced_exit(),
            "a failed start's cause is not a forced exit"
        );
    }

    #[test]
    fn steps_and_signals_are_fields() {
        let step = parse(r#"{"process":"main","event":"handshake","step":"started"}"#);
        assert_eq!(step.event(), Some("handshake"));
        assert_eq!(step.str("step"), Some("started"));
        let signal = parse(r#"{"process":"main","signal":"SIGINT","action":"delayed"}"#);
        assert!(signal.is_signal("SIGINT", "delayed"));
        assert_eq!(signal.received_signal(), Some("SIGINT"));
        let ignored = parse(r#"{"process":"worker-1","signal":"SIGINT","action":"ignored"}"#);
        assert_eq!(ignored.received_signal(), None);
    }

    #[test]
    fn text_that_is_not_one_json_object_stays_visible() {
        for raw in [
            "thread 'main' panicked at src/x.rs:1:1",
            r#"{"a":1}{"b":2}"#,
            "[1,2]",
        ] {
            let line = parse(raw);
            assert!(!line.is_json(), "{raw}");
            assert_eq!(line.raw, raw);
            assert_eq!(line.message(), "");
            assert_eq!(line.process(), None);
        }
    }

    #[test]
    fn a_pid_is_named_whole() {
        assert!(mentions_pid("pid 42 ended", 42));
        assert!(mentions_pid("(pid 42)", 42));
        assert!(!mentions_pid("pid 420 ended", 42));
    }
}

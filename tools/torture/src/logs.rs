//! One line of a run's output, as received, and what the contract's fields say about it.
//!
//! Every process of a run writes its JSON events to the one stderr pipe the tool reads, one
//! `write` per line, so the order of lines in the pipe is the order the events were written:
//! "the exit event is the last line of the whole run" can be checked on it directly.

use std::time::Duration;

use serde_json::{Map, Value};

/// The keys every JSON log line carries (DESIGN.md, "Logs").
pub const REQUIRED_KEYS: [&str; 7] = [
    "timestamp",
    "level",
    "target",
    "process",
    "pid",
    "thread",
    "message",
];

/// A line of output, with when the tool received it (since the spawn).
#[derive(Clone, Debug)]
pub struct Line {
    /// Received this long after the spawn.
    pub at: Duration,
    /// The text, without its newline.
    pub raw: String,
    /// The JSON object, if the line is one.
    pub json: Option<Map<String, Value>>,
}

impl Line {
    /// Parses `raw` as received at `at`.
    pub fn new(at: Duration, raw: String) -> Self {
        let json = match serde_json::from_str::<Value>(&raw) {
            Ok(Value::Object(map)) => Some(map),
            _ => None,
        };
        Self { at, raw, json }
    }

    /// A string field.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.json.as_ref()?.get(key)?.as_str()
    }

    /// An integer field.
    pub fn int(&self, key: &str) -> Option<i64> {
        self.json.as_ref()?.get(key)?.as_i64()
    }

    /// `process`: `main`, `worker-1`, ...
    pub fn process(&self) -> Option<&str> {
        self.str("process")
    }

    /// Written by the main process.
    pub fn is_main(&self) -> bool {
        self.process() == Some("main")
    }

    /// `component`.
    pub fn component(&self) -> Option<&str> {
        self.str("component")
    }

    /// `phase`.
    pub fn phase(&self) -> Option<&str> {
        self.str("phase")
    }

    /// `message`.
    pub fn message(&self) -> &str {
        self.str("message").unwrap_or_default()
    }

    /// A lifecycle event of `component` in `phase`.
    pub fn is(&self, component: &str, phase: &str) -> bool {
        self.component() == Some(component) && self.phase() == Some(phase)
    }

    /// The main process's final event: `component=app phase=exit`.
    pub fn is_exit_event(&self) -> bool {
        self.is_main() && self.is("app", "exit")
    }

    /// The main process's forced-exit event: `component=app`, a `cause`, the components
    /// left `unfinished`, no `phase`. (A failed start's "stopping what had started" event
    /// also has `component=app` and a `cause`, but nothing is forced there.)
    pub fn is_force_event(&self) -> bool {
        self.is_main()
            && self.component() == Some("app")
            && self.phase().is_none()
            && self.str("cause").is_some()
            && self.str("unfinished").is_some()
    }

    /// A signal the main process logged receiving: `signal` and `action` other than
    /// `ignored` (the workers' word).
    pub fn received_signal(&self) -> Option<&str> {
        if !self.is_main() {
            return None;
        }
        match self.str("action")? {
            "delayed" | "shutdown" | "counted" | "forced" => self.str("signal"),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_read_from_a_json_line() {
        let line = Line::new(
            Duration::ZERO,
            r#"{"process":"main","component":"app","phase":"exit","status":130,"signal":"SIGINT"}"#.into(),
        );
        assert!(line.is_exit_event());
        assert_eq!(line.int("status"), Some(130));
        assert!(!line.is_force_event());
        let forced = |fields: &str| {
            Line::new(
                Duration::ZERO,
                format!(r#"{{"process":"main","component":"app","cause":"c"{fields}}}"#),
            )
        };
        assert!(forced(r#","unfinished":"app, MPM""#).is_force_event());
        assert!(
            !forced("").is_force_event(),
            "a failed start's cause is not a forced exit"
        );
        let text = Line::new(Duration::ZERO, "thread 'main' panicked at src/x.rs:1:1".into());
        assert!(text.json.is_none());
        assert_eq!(text.message(), "");
    }
}

//! One line of a run's output, as received: the suite's shared reading of it
//! ([`logread::Event`]), with when the tool received it.
//!
//! Every process of a run writes its JSON events to the one stderr pipe the tool reads, one
//! `write` per line, so the order of lines in the pipe is the order the events were written:
//! "the exit event is the last line of the whole run" can be checked on it directly.

use std::ops::Deref;
use std::time::Duration;

pub use logread::REQUIRED_KEYS;

/// A line of output, with when the tool received it (since the spawn). Its fields are read
/// through [`logread::Event`] (`line.process()`, `line.is_exit()`, ...).
#[derive(Clone, Debug)]
pub struct Line {
    /// Received this long after the spawn.
    pub at: Duration,
    /// The line, parsed.
    pub event: logread::Event,
}

impl Line {
    /// Parses `raw` as received at `at`.
    pub fn new(at: Duration, raw: String) -> Self {
        Self {
            at,
            event: logread::parse(raw),
        }
    }
}

impl Deref for Line {
    type Target = logread::Event;

    fn deref(&self) -> &logread::Event {
        &self.event
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_reads_as_its_event() {
        let line = Line::new(
            Duration::from_millis(5),
            r#"{"process":"main","component":"app","phase":"exit","status":130}"#.into(),
        );
        assert!(line.is_exit());
        assert_eq!(line.int("status"), Some(130));
        assert_eq!(line.at, Duration::from_millis(5));
        let text = Line::new(Duration::ZERO, "thread 'main' panicked at src/x.rs:1:1".into());
        assert!(!text.is_json());
        assert_eq!(text.message(), "");
    }
}

//! Which log lines go first when stderr cannot take them all.
//!
//! Behind a slow stderr the bounded queue must drop something; dropping whatever comes
//! next would lose the lifecycle events that explain the run as readily as debug chatter.
//! So each line has a [`Priority`], and the queue keeps one deque per priority with every
//! line numbered: the oldest line of the lowest priority is shed without a scan, and the
//! writer still takes lines in the order they were queued.

use std::collections::VecDeque;

use tracing::Level;

/// How much a line matters when stderr cannot take them all: the lowest goes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Priority {
    /// Debug and trace lines: the first to go.
    Detail,
    /// Other info lines.
    Normal,
    /// Lifecycle events, warnings and errors: what explains the run; the last to go.
    Vital,
}

impl Priority {
    const ALL: [Priority; 3] = [Self::Detail, Self::Normal, Self::Vital];

    /// The priority of an event of `level` with `target`.
    pub(crate) fn of_event(level: tracing::Level, target: &str) -> Self {
        if level <= tracing::Level::WARN || target == "lifecycle" {
            Self::Vital
        } else if level == tracing::Level::INFO {
            Self::Normal
        } else {
            Self::Detail
        }
    }

    /// The priority of a finished line another process wrote (a worker's), read from its
    /// level and target as its format spells them: JSON's `"level"` and `"target"` keys, or
    /// the level column of the text prefix (which has no target: a worker's lifecycle lines
    /// are info there, and count as such).
    pub(crate) fn of_line(line: &[u8]) -> Self {
        let has = |needle: &[u8]| line.windows(needle.len()).any(|w| w == needle);
        let level = if line.starts_with(b"{") {
            [Level::ERROR, Level::WARN, Level::INFO, Level::DEBUG, Level::TRACE]
                .into_iter()
                .find(|level| has(format!("\"level\":\"{level}\"").as_bytes()))
        } else {
            // `HH:MM:SS.mmm process   LEVEL message`: the third word.
            let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
            let third = words.nth(2).unwrap_or_default();
            let third = third.strip_prefix(b"\x1b[").map_or(third, |coloured| {
                coloured
                    .iter()
                    .position(|&b| b == b'm')
                    .map_or(coloured, |at| &coloured[at + 1..])
            });
            [Level::ERROR, Level::WARN, Level::INFO, Level::DEBUG, Level::TRACE]
                .into_iter()
                .find(|level| third.starts_with(level.as_str().as_bytes()))
        };
        let target = if has(b"\"target\":\"lifecycle\"") {
            "lifecycle"
        } else {
            ""
        };
        Self::of_event(level.unwrap_or(Level::INFO), target)
    }
}

/// Lines of every priority, in the order they were queued: one deque per priority, each
/// line numbered, so the lowest can be shed without a scan and the writer still takes them
/// in order.
#[derive(Default)]
pub(super) struct Lines {
    pub(super) by_priority: [VecDeque<(u64, Vec<u8>)>; 3],
    next: u64,
}

impl Lines {
    pub(super) fn len(&self) -> usize {
        self.by_priority.iter().map(VecDeque::len).sum()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.by_priority.iter().all(VecDeque::is_empty)
    }

    pub(super) fn push(&mut self, priority: Priority, line: Vec<u8>) {
        self.by_priority[priority as usize].push_back((self.next, line));
        self.next += 1;
    }

    /// Drops the oldest line of the lowest priority below `than`; whether there was one.
    pub(super) fn shed_one_below(&mut self, than: Priority) -> bool {
        Priority::ALL
            .iter()
            .take_while(|&&p| p < than)
            .any(|&p| self.by_priority[p as usize].pop_front().is_some())
    }

    /// Drops every line below `than`; returns how many.
    pub(super) fn shed_all_below(&mut self, than: Priority) -> u64 {
        Priority::ALL
            .iter()
            .take_while(|&&p| p < than)
            .map(|&p| std::mem::take(&mut self.by_priority[p as usize]).len() as u64)
            .sum()
    }

    /// The oldest line of any priority.
    pub(super) fn pop_oldest(&mut self) -> Option<Vec<u8>> {
        let oldest = self
            .by_priority
            .iter_mut()
            .filter(|deque| !deque.is_empty())
            .min_by_key(|deque| deque.front().map(|(n, _)| *n))?;
        oldest.pop_front().map(|(_, line)| line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_line_is_judged_by_its_level_and_target_not_its_words() {
        let json = |level: &str, target: &str| {
            format!(r#"{{"level":"{level}","target":"{target}","message":"WARN ERROR"}}"#)
        };
        assert_eq!(Priority::of_line(json("DEBUG", "x").as_bytes()), Priority::Detail);
        assert_eq!(
            Priority::of_line(json("INFO", "lifecycle").as_bytes()),
            Priority::Vital
        );
        assert_eq!(Priority::of_line(json("WARN", "x").as_bytes()), Priority::Vital);
        let text = b"22:28:40.459 worker-1  DEBUG a WARN in a debug message";
        assert_eq!(Priority::of_line(text), Priority::Detail);
        let coloured = b"22:28:40.459 worker-1  \x1b[33mWARN \x1b[0m SIGINT received";
        assert_eq!(Priority::of_line(coloured), Priority::Vital);
        assert_eq!(
            Priority::of_line(b"22:28:40.459 worker-1  INFO  started"),
            Priority::Normal
        );
    }
}

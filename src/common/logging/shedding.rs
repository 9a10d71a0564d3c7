//! Which log lines go first when stderr cannot take them all.
//!
//! Behind a slow stderr the bounded queue must drop something; dropping whatever comes
//! next would lose the lifecycle events that explain the run as readily as debug chatter.
//! So each line has a [`Priority`], and the queue keeps one deque per priority with every
//! line numbered: the oldest line of the lowest priority is shed without a scan, and the
//! writer still takes lines in the order they were queued.

use std::collections::VecDeque;

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
    /// level and target as either format spells them.
    pub(crate) fn of_line(line: &[u8]) -> Self {
        let has = |needle: &[u8]| line.windows(needle.len()).any(|w| w == needle);
        if has(b"\"target\":\"lifecycle\"") || has(b"| lifecycle") || has(b"WARN") || has(b"ERROR") {
            Self::Vital
        } else if has(b"DEBUG") || has(b"TRACE") {
            Self::Detail
        } else {
            Self::Normal
        }
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

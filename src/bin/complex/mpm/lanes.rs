//! A worker's command lanes: stop > update > call, feeding one work loop.
//!
//! The reference feeds a `PriorityQueue` from three threads, one per command kind. Here the
//! commands arrive on one pipe, so one reader thread sorts them into lanes and the work loop
//! always takes from the highest non-empty lane: a stop is honoured after the item in hand,
//! however many calls are queued behind it.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};

use super::protocol::{Command, Method};

/// Why the worker stops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopCause {
    /// The parent's stop command.
    Command,
    /// The parent is gone: stdin reached end-of-file (or stdout broke).
    ParentGone,
    /// The parent's byte stream made no sense.
    Garbage(String),
}

/// The next thing for the work loop to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Work {
    /// Stop after the item in hand (there is none now).
    Stop(StopCause),
    /// Run an update, answer with this id.
    Update(u64),
    /// Run a call, answer with this id.
    Call(u64, Method),
}

/// The lanes, shared by the reader thread (producer) and the work loop (consumer).
#[derive(Default)]
pub struct Lanes {
    queued: Mutex<Queued>,
    ready: Condvar,
}

#[derive(Default)]
struct Queued {
    stop: Option<StopCause>,
    updates: VecDeque<u64>,
    calls: VecDeque<(u64, Method)>,
}

impl Lanes {
    /// Sorts a command into its lane.
    pub fn push(&self, command: Command) {
        let mut queued = self.lock();
        match command {
            Command::Stop => {
                queued.stop.get_or_insert(StopCause::Command);
            }
            Command::Update { id } => queued.updates.push_back(id),
            Command::Call { id, method } => queued.calls.push_back((id, method)),
        }
        drop(queued);
        self.ready.notify_one();
    }

    /// Requests a stop for a cause other than the command; the first cause is kept.
    pub fn stop(&self, cause: StopCause) {
        self.lock().stop.get_or_insert(cause);
        self.ready.notify_one();
    }

    /// Waits for work and takes the most urgent; the flag says whether more is queued
    /// (the work loop flushes its output only when nothing is, to batch answers).
    pub fn next(&self) -> (Work, bool) {
        let mut queued = self.lock();
        loop {
            if let Some(cause) = queued.stop.clone() {
                return (Work::Stop(cause), false);
            }
            if let Some(id) = queued.updates.pop_front() {
                let more = !queued.updates.is_empty() || !queued.calls.is_empty();
                return (Work::Update(id), more);
            }
            if let Some((id, method)) = queued.calls.pop_front() {
                return (Work::Call(id, method), !queued.calls.is_empty());
            }
            queued = self.ready.wait(queued).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queued> {
        self.queued.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_outranks_update_outranks_call() {
        let lanes = Lanes::default();
        lanes.push(Command::Call {
            id: 1,
            method: Method::ProcessNumber(1),
        });
        lanes.push(Command::Update { id: 2 });
        lanes.push(Command::Call {
            id: 3,
            method: Method::ProcessNumber(3),
        });
        assert_eq!(lanes.next(), (Work::Update(2), true));
        assert_eq!(lanes.next(), (Work::Call(1, Method::ProcessNumber(1)), true));
        lanes.push(Command::Stop);
        assert_eq!(
            lanes.next(),
            (Work::Stop(StopCause::Command), false),
            "queued call 3 must wait"
        );
        // A later end-of-file does not replace the first cause.
        lanes.stop(StopCause::ParentGone);
        assert_eq!(lanes.next().0, Work::Stop(StopCause::Command));
    }
}

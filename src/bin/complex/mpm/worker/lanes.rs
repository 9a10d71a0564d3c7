//! Lesson 8 of the reference: **the worker's command lanes, stop > update > call.**
//!
//! A stop sent behind a thousand calls is honoured after the item in hand, not after the
//! thousand. The reference feeds a `PriorityQueue` from three threads; here the commands
//! arrive on one pipe, and the work loop sorts everything already readable into lanes before
//! each item, then takes from the highest non-empty one (no thread wake-up per call).
//!
//! **Withdrawal.** After the withdraw command no call is begun: queued calls, and any that
//! arrive later, become withdrawn ids, answered ([`Work::Withdraw`]) before even the stop, so
//! no caller is left without an answer. Updates are kept: the one update round at a time is
//! the update task's item in hand.

use std::collections::VecDeque;

use crate::mpm::shared::protocol::{Command, Method};

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
    /// Answer these calls as withdrawn (not run). After a withdraw command this comes once
    /// even when the list is empty: the parent counts it as the acknowledgement.
    Withdraw(Vec<u64>),
}

/// The worker's queued work, by lane.
#[derive(Default)]
pub struct Lanes {
    stop: Option<StopCause>,
    /// The withdraw command came: calls are answered as withdrawn, never begun.
    withdrawing: bool,
    /// The withdraw command is not acknowledged yet.
    withdraw_unanswered: bool,
    withdrawn: Vec<u64>,
    updates: VecDeque<u64>,
    calls: VecDeque<(u64, Method)>,
}

impl Lanes {
    /// Sorts a command into its lane.
    pub fn push(&mut self, command: Command) {
        match command {
            Command::Stop => self.stop(StopCause::Command),
            Command::Withdraw => {
                if !self.withdrawing {
                    self.withdrawing = true;
                    self.withdraw_unanswered = true;
                }
                self.withdrawn.extend(self.calls.drain(..).map(|(id, _)| id));
            }
            Command::Update { id } => self.updates.push_back(id),
            Command::Call { id, .. } if self.withdrawing => self.withdrawn.push(id),
            Command::Call { id, method } => self.calls.push_back((id, method)),
        }
    }

    /// Requests a stop; the first cause is kept.
    pub fn stop(&mut self, cause: StopCause) {
        self.stop.get_or_insert(cause);
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.stop.is_none()
            && !self.withdraw_unanswered
            && self.withdrawn.is_empty()
            && self.updates.is_empty()
            && self.calls.is_empty()
    }

    /// Takes the most urgent work, if any. A stop stays queued: it is the last thing done.
    pub fn next(&mut self) -> Option<Work> {
        if self.withdraw_unanswered || !self.withdrawn.is_empty() {
            self.withdraw_unanswered = false;
            return Some(Work::Withdraw(std::mem::take(&mut self.withdrawn)));
        }
        if let Some(cause) = &self.stop {
            return Some(Work::Stop(cause.clone()));
        }
        if let Some(id) = self.updates.pop_front() {
            return Some(Work::Update(id));
        }
        self.calls.pop_front().map(|(id, method)| Work::Call(id, method))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mpm::shared::protocol::test_call as call;

    #[test]
    fn stop_outranks_update_outranks_call() {
        let mut lanes = Lanes::default();
        assert!(lanes.is_empty());
        lanes.push(Command::Call {
            id: 1,
            method: Method::ProcessNumber(1),
        });
        lanes.push(Command::Update { id: 2 });
        lanes.push(Command::Call {
            id: 3,
            method: Method::ProcessNumber(3),
        });
        assert_eq!(lanes.next(), Some(Work::Update(2)));
        assert_eq!(lanes.next(), Some(Work::Call(1, Method::ProcessNumber(1))));
        lanes.push(Command::Stop);
        assert_eq!(
            lanes.next(),
            Some(Work::Stop(StopCause::Command)),
            "queued call 3 must wait"
        );
        // A later end-of-file does not replace the first cause.
        lanes.stop(StopCause::ParentGone);
        assert_eq!(lanes.next(), Some(Work::Stop(StopCause::Command)));
    }

    #[test]
    fn withdraw_answers_queued_and_later_calls_but_keeps_updates() {
        let mut lanes = Lanes::default();
        lanes.push(call(1));
        lanes.push(Command::Update { id: 2 });
        lanes.push(call(3));
        lanes.push(Command::Withdraw);
        lanes.push(call(4));
        assert!(!lanes.is_empty());
        assert_eq!(lanes.next(), Some(Work::Withdraw(vec![1, 3, 4])));
        assert_eq!(
            lanes.next(),
            Some(Work::Update(2)),
            "the update round is not withdrawn"
        );
        assert_eq!(lanes.next(), None);
        assert!(lanes.is_empty());
        // A call arriving later is never begun either.
        lanes.push(call(5));
        assert_eq!(lanes.next(), Some(Work::Withdraw(vec![5])));
        // A second withdraw command adds no second acknowledgement.
        lanes.push(Command::Withdraw);
        assert_eq!(lanes.next(), None);
    }

    #[test]
    fn withdraw_is_acknowledged_even_with_nothing_queued() {
        let mut lanes = Lanes::default();
        lanes.push(Command::Withdraw);
        assert_eq!(lanes.next(), Some(Work::Withdraw(vec![])));
        assert_eq!(lanes.next(), None);
    }

    #[test]
    fn withdrawn_answers_go_out_before_the_stop() {
        let mut lanes = Lanes::default();
        lanes.push(call(1));
        lanes.push(Command::Stop);
        lanes.push(Command::Withdraw);
        assert_eq!(lanes.next(), Some(Work::Withdraw(vec![1])));
        assert_eq!(lanes.next(), Some(Work::Stop(StopCause::Command)));
    }
}

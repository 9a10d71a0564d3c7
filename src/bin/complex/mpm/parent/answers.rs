//! How long a caller waits for a worker's answer: its own bound, and once the stop has begun
//! no longer than the worker's stop deadline.
//!
//! A call's bound (30 s) equals the default `--stop-timeout`: a worker stuck with a call in
//! hand (wedged, or SIGSTOPped) kept its busy task waiting that long, and the whole exit was
//! forced. Now, once the stop has begun, what is left of the bound is cut to
//! [`WORKER_STOP_TIMEOUT`]; a worker that neither answers nor stops by then is killed and
//! named, and the stop goes on, unforced. An async caller hears of the stop at once, a
//! blocked one at the end of its slice of the deadline (a thirty-second of it at most).

use std::sync::{atomic::Ordering::SeqCst, mpsc::Receiver, mpsc::RecvTimeoutError};
use std::time::Duration;

use tokio::sync::oneshot;

use graceful::deadline::Deadline;

use super::child::WorkerProcess;
use super::{Shared, WORKER_STOP_TIMEOUT};

/// A caller's deadline, cut to the worker's stop deadline once the stop has begun.
pub(super) struct AnswerDeadline {
    deadline: Deadline,
    /// The deadline was cut by the stop: a worker that missed it is to be killed.
    pub(super) in_the_stop: bool,
}

impl AnswerDeadline {
    pub(super) fn after(bound: Duration) -> Self {
        Self {
            deadline: Deadline::after(bound),
            in_the_stop: false,
        }
    }

    fn notice_the_stop(&mut self, shared: &Shared) {
        if !self.in_the_stop && shared.withdrawing.load(SeqCst) {
            self.in_the_stop = true;
            self.deadline.shorten(WORKER_STOP_TIMEOUT);
        }
    }

    /// Receives an answer from `channel`.
    pub(super) fn recv<T>(&mut self, shared: &Shared, channel: &Receiver<T>) -> Result<T, RecvTimeoutError> {
        loop {
            self.notice_the_stop(shared);
            match self.deadline.slice(|slice| channel.recv_timeout(slice)) {
                Some(Err(RecvTimeoutError::Timeout)) => {}
                Some(received) => return received,
                None => return Err(RecvTimeoutError::Timeout),
            }
        }
    }

    /// Awaits an answer: `None` once the deadline is spent; `Some(Err(()))` when the caller
    /// was released without one.
    pub(super) async fn answer<T>(
        &mut self,
        shared: &Shared,
        answer: &mut oneshot::Receiver<T>,
    ) -> Option<Result<T, ()>> {
        loop {
            let stop_begun = shared.withdrawal_begun.notified();
            tokio::pin!(stop_begun);
            stop_begun.as_mut().enable();
            self.notice_the_stop(shared);
            let in_the_stop = self.in_the_stop;
            tokio::select! {
                answered = self.deadline.within(&mut *answer) => {
                    return answered.map(|answered| answered.map_err(drop));
                }
                () = stop_begun, if !in_the_stop => {}
            }
        }
    }
}

impl Shared {
    /// A worker past its stop deadline (`late` says what it did not do in time: exit,
    /// answer a call or an update): killed and named, here for every path that judges it
    /// (its monitor reports its end, and fails its calls).
    pub(super) fn kill_late(worker: &WorkerProcess, late: &str) {
        tracing::warn!(
            event = "killing",
            worker = %worker.name,
            worker_pid = worker.pid,
            "MPM: {} {late} within {WORKER_STOP_TIMEOUT:?} of the stop; killing it",
            worker.name
        );
        worker.kill();
    }
}

//! AsyncService1's tasks, as in complex.py: the update task (every 10 s) and the busy tasks
//! (a random pause of up to 1 s, `process_number`, `process_string`, parameter + 1), each in
//! its shielded and unshielded variant (see the parent module).
//!
//! A task's end is one line with `event=cancelled` (or `abandoned`), `task` (`update` or
//! `busy`, with the busy task's `index`) and, when it had something in hand, `in_hand`:
//! `finished` (it waited for it) or `withdrawn` (the stop came first, nothing ran).

use std::time::Duration;

use graceful::demo::{PERIOD_FLOOR, TimeScale};
use tokio_util::sync::CancellationToken;

use super::Facade;
use crate::mpm::{MpmError, Reply};
use crate::pool::PoolError;

const UPDATE_PERIOD: Duration = Duration::from_secs(10);
const MAX_BUSY_PAUSE: Duration = Duration::from_secs(1);

/// Every 10 s (scaled), an update in every worker.
pub(super) async fn update_task(
    facade: Facade,
    cancel: CancellationToken,
    shielded: bool,
    time_scale: TimeScale,
) {
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(time_scale.period(UPDATE_PERIOD)) => {}
        }
        if shielded {
            log_update(facade.update().await);
            if cancel.is_cancelled() {
                tracing::warn!(
                    event = "cancelled",
                    task = "update",
                    in_hand = "finished",
                    "AsyncService1._update_task_worker: cancelled; the update in hand was waited for first"
                );
                return;
            }
        } else {
            tokio::select! {
                () = cancel.cancelled() => {
                    tracing::warn!(
                        event = "abandoned",
                        task = "update",
                        "AsyncService1._update_task_worker: cancelled; abandoning the update in hand \
                         (it keeps running: a pool thread waits for every worker's answer)"
                    );
                    return;
                }
                outcome = facade.update() => log_update(outcome),
            }
        }
    }
    tracing::warn!(
        event = "cancelled",
        task = "update",
        "AsyncService1._update_task_worker: cancelled"
    );
}

fn log_update(outcome: anyhow::Result<u64>) {
    match outcome {
        Ok(version) => tracing::debug!("AsyncService1: updated to version {version}"),
        Err(error) if is_the_stop(&error) => tracing::debug!("AsyncService1: no update: {error:#}"),
        Err(error) => tracing::warn!("AsyncService1: update failed: {error:#}"),
    }
}

/// Loops: random pause, `process_number`, `process_string`, parameter + 1.
pub(super) async fn busy_task(
    index: usize,
    facade: Facade,
    cancel: CancellationToken,
    shielded: bool,
    time_scale: TimeScale,
) {
    let mut parameter = index as i64 * 1000;
    let mut pauses = Pauses::new(index as u64);
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            () = time_scale.sleep(pauses.next(MAX_BUSY_PAUSE)) => {}
        }
        let calls = async {
            let number = facade.process_number(parameter).await;
            log_call(index, "process_number", &number);
            if shielded && cancel.is_cancelled() || Outcome::of(&number) == Outcome::Stopping {
                return Outcome::of(&number);
            }
            let string = facade.process_string(format!("string-{parameter}")).await;
            log_call(index, "process_string", &string);
            Outcome::of(&number).and(Outcome::of(&string))
        };
        let outcome = if shielded {
            // The calls are not raced against the cancellation: the one in hand finishes.
            let outcome = calls.await;
            if cancel.is_cancelled() {
                tracing::debug!(
                    event = "cancelled",
                    task = "busy",
                    index,
                    in_hand = "finished",
                    "AsyncService1._process_worker {index}: cancelled; the call in hand finished first"
                );
                return;
            }
            outcome
        } else {
            tokio::select! {
                () = cancel.cancelled() => {
                    tracing::debug!(
                        event = "abandoned",
                        task = "busy",
                        index,
                        "AsyncService1._process_worker {index}: cancelled; abandoning the call in hand ({})",
                        facade.where_an_abandoned_call_runs()
                    );
                    return;
                }
                outcome = calls => outcome,
            }
        };
        if outcome == Outcome::Stopping {
            // The stop has begun: no call will be taken any more. Wait to be cancelled.
            cancel.cancelled().await;
            tracing::debug!(
                event = "cancelled",
                task = "busy",
                index,
                in_hand = "withdrawn",
                "AsyncService1._process_worker {index}: cancelled; its call was not run: the stop had begun"
            );
            return;
        }
        if outcome == Outcome::Failed {
            // A worker is being replaced: back off a moment instead of spinning on errors.
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(PERIOD_FLOOR) => {}
            }
        }
        parameter += 1;
    }
    tracing::debug!(
        event = "cancelled",
        task = "busy",
        index,
        "AsyncService1._process_worker {index}: cancelled"
    );
}

/// How a busy task's round of calls went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Succeeded,
    Failed,
    /// Withdrawn or refused because the stop has begun.
    Stopping,
}

impl Outcome {
    fn of(result: &anyhow::Result<Reply>) -> Self {
        match result {
            Ok(_) => Self::Succeeded,
            Err(error) if is_the_stop(error) => Self::Stopping,
            Err(_) => Self::Failed,
        }
    }

    fn and(self, other: Self) -> Self {
        match (self, other) {
            (Self::Stopping, _) | (_, Self::Stopping) => Self::Stopping,
            (Self::Succeeded, Self::Succeeded) => Self::Succeeded,
            _ => Self::Failed,
        }
    }
}

/// Whether the error only says the stop has begun: the call was withdrawn before a worker
/// began it, refused by the manager, or skipped by the closed pool.
fn is_the_stop(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<MpmError>()
        .is_some_and(MpmError::is_the_stop)
        || error
            .downcast_ref::<PoolError>()
            .is_some_and(|e| matches!(e, PoolError::Closed | PoolError::Skipped))
}

fn log_call(index: usize, method: &str, outcome: &anyhow::Result<Reply>) {
    match outcome {
        Ok(Reply::Processed { version, parameter }) => {
            tracing::trace!(
                "AsyncService1._process_worker {index}: {method} -> version {version}, {parameter:?}"
            );
        }
        Ok(Reply::Updated { .. }) => {}
        Err(error) if is_the_stop(error) => {
            tracing::debug!("AsyncService1._process_worker {index}: {method} not run: {error:#}");
        }
        Err(error) => tracing::warn!("AsyncService1._process_worker {index}: {method} failed: {error:#}"),
    }
}

/// Pseudo-random pauses (xorshift64*): the reference's `random.random()`, with no crate.
struct Pauses(u64);

impl Pauses {
    fn new(seed: u64) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self((nanos ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1)
    }

    fn next(&mut self, max: Duration) -> Duration {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let unit = (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
        max.mul_f64(unit)
    }
}

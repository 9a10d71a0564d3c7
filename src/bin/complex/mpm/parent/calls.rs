//! The calls: the public call API, and the callers waiting for answers (dispatch,
//! registration, completion, release).
//!
//! Two ways to call, one path under both: [`Mpm::call`] blocks its thread until the answer
//! (the reference's API, which `--blocking-calls` runs on the pool);
//! [`Mpm::submit`] hands an async task a handle to await. Sending never blocks either way.
//!
//! The invariant: a caller is registered under the pending lock only while its worker is
//! alive, and a worker is marked dead under the same lock when its monitor fails its calls.
//! So every registered caller is answered, failed with the worker's name, or released by the
//! stop: none waits for a worker that is gone. Likewise the withdrawal is switched on under
//! that lock: a call registered before it reaches its worker before or after the withdraw
//! command and is run or withdrawn there (or is taken back unsent and withdrawn here); none
//! is registered after it.

use graceful::sync::LockUnpoisoned;
use std::sync::mpsc::{RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, atomic::Ordering::SeqCst};
use std::time::Duration;

use tokio::sync::oneshot;

use super::answers::AnswerDeadline;
use super::child::WorkerProcess;
use super::{Mpm, MpmError, Reply, Shared, Stats};
use crate::mpm::shared::protocol::{Command, Method};

const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A caller waiting for an answer from a given incarnation.
pub(super) struct Pending {
    worker: Arc<WorkerProcess>,
    what: &'static str,
    waiter: Waiter,
}

/// How a caller waits: a blocked thread (the reference's API), or an async task.
pub(super) enum Waiter {
    Blocking(SyncSender<Result<Reply, MpmError>>),
    Async(oneshot::Sender<Result<Reply, MpmError>>),
}

impl Waiter {
    /// Hands over the answer; `false` when the caller had stopped waiting.
    fn answer(self, answer: Result<Reply, MpmError>) -> bool {
        match self {
            Self::Blocking(reply) => reply.try_send(answer).is_ok(),
            Self::Async(reply) => reply.send(answer).is_ok(),
        }
    }
}

impl Mpm {
    /// `method` in some worker; this thread waits for the answer, 30 s at most (the
    /// reference's API).
    pub fn call(&self, method: Method) -> Result<Reply, MpmError> {
        let result = self.shared.call(method);
        self.shared.stats.count_call(&result);
        result
    }

    /// Sends `method` to some worker and returns at once, never blocking (a full pipe
    /// queues the call: `stdin.rs`), so an async task calls this on the runtime: no thread
    /// waits for the answer, which arrives on the returned handle.
    pub fn submit(&self, method: Method) -> Result<AwaitedReply, MpmError> {
        let (reply, answer) = oneshot::channel();
        let (id, worker) = self.shared.dispatch(method, Waiter::Async(reply))?;
        Ok(AwaitedReply {
            id,
            worker,
            answer,
            mpm: self.clone(),
        })
    }
}

/// A call sent with [`Mpm::submit`]; await its answer with [`AwaitedReply::wait`].
#[must_use = "the call runs anyway; drop this only to abandon its answer"]
pub struct AwaitedReply {
    id: u64,
    worker: Arc<WorkerProcess>,
    answer: oneshot::Receiver<Result<Reply, MpmError>>,
    mpm: Mpm,
}

impl AwaitedReply {
    /// Waits for the answer, 30 s at most. Dropping this future abandons the answer, never
    /// the call: the worker runs it anyway, and the manager logs the answer nobody took.
    pub async fn wait(mut self) -> Result<Reply, MpmError> {
        let shared = &self.mpm.shared;
        let mut deadline = AnswerDeadline::after(CALL_TIMEOUT);
        let answer = deadline.answer(shared, &mut self.answer).await;
        let result = match answer {
            Some(Ok(answer)) => answer,
            Some(Err(())) => Err(MpmError::StoppedWhileWaiting),
            None => shared.unanswered(self.id, &self.worker, "", &deadline),
        };
        shared.stats.count_call(&result);
        result
    }
}

impl Stats {
    fn count_call(&self, result: &Result<Reply, MpmError>) {
        let counter = match result {
            Ok(_) => &self.calls_ok,
            Err(MpmError::Withdrawn) => &self.calls_withdrawn,
            Err(MpmError::Stopping | MpmError::Stopped) => &self.calls_refused,
            Err(_) => &self.calls_failed,
        };
        counter.fetch_add(1, SeqCst);
    }
}

impl Shared {
    fn call(&self, method: Method) -> Result<Reply, MpmError> {
        let what = method.name();
        let (reply, answer) = sync_channel(1);
        let (id, worker) = self.dispatch(method, Waiter::Blocking(reply))?;
        let mut deadline = AnswerDeadline::after(CALL_TIMEOUT);
        match deadline.recv(self, &answer) {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(error)) if error.is_the_stop() => {
                tracing::debug!("MPM: call {id} ({what}) on {}: {error}", worker.name);
                Err(error)
            }
            Ok(Err(error)) => Err(error).inspect_err(|error| {
                tracing::warn!("MPM: call {id} ({what}) on {} failed: {error}", worker.name);
            }),
            Err(RecvTimeoutError::Timeout) => self.unanswered(id, &worker, &format!(" ({what})"), &deadline),
            Err(RecvTimeoutError::Disconnected) => Err(MpmError::StoppedWhileWaiting),
        }
    }

    /// Call `id` got no answer within its deadline: forgotten, and its worker killed if the
    /// deadline was the stop's.
    fn unanswered(
        &self,
        id: u64,
        worker: &WorkerProcess,
        what: &str,
        deadline: &AnswerDeadline,
    ) -> Result<Reply, MpmError> {
        self.take_pending(id);
        worker.stdin.take_back(id);
        if deadline.in_the_stop {
            Self::kill_late(worker, &format!("neither answered call {id}{what} nor stopped"));
            return Err(MpmError::WorkerCrashed {
                worker: worker.name.clone(),
                how: "killed: it neither answered nor stopped by its stop deadline".into(),
            });
        }
        tracing::error!(
            event = "call-timeout",
            "MPM: call {id}{what} on {} timed out",
            worker.name
        );
        Err(MpmError::Timeout(CALL_TIMEOUT))
    }

    /// Registers the caller with the least-loaded live worker and sends it the call.
    pub(super) fn dispatch(
        &self,
        method: Method,
        waiter: Waiter,
    ) -> Result<(u64, Arc<WorkerProcess>), MpmError> {
        self.open_for_calls()?;
        let id = self.next_id.fetch_add(1, SeqCst);
        let worker = self.least_loaded().ok_or(MpmError::NoWorker)?;
        self.register(id, &worker, method.name(), waiter)?;
        tracing::debug!("MPM.{method}: call {id} to {}", worker.name);
        if worker.stdin.send(&Command::Call { id, method }).is_err() {
            if self.withdrawing.load(SeqCst) {
                // Registered before the withdraw, sent after the stop command: never run.
                self.complete(id, Err(MpmError::Withdrawn));
            } else {
                // Its monitor fails the pending call (or already did): the caller hears of it.
                tracing::debug!("MPM: call {id}: {} stdin is closed", worker.name);
            }
        }
        Ok((id, worker))
    }

    /// The live worker with the fewest calls in flight; ties go round-robin, so an idle
    /// set of workers shares the load instead of worker-1 taking every call.
    pub(super) fn least_loaded(&self) -> Option<Arc<WorkerProcess>> {
        let workers = self.current_workers();
        let first = self.next_turn.fetch_add(1, SeqCst) % workers.len().max(1);
        workers
            .iter()
            .cycle()
            .skip(first)
            .take(workers.len())
            .filter(|w| w.alive.load(SeqCst) && !w.stdin.was_closed())
            .min_by_key(|w| w.in_flight.load(SeqCst))
            .cloned()
    }

    /// Records a waiting caller. Under the pending lock, so a worker's monitor either sees
    /// the entry when it fails the worker's calls, or the caller sees the worker dead.
    pub(super) fn register(
        &self,
        id: u64,
        worker: &Arc<WorkerProcess>,
        what: &'static str,
        waiter: Waiter,
    ) -> Result<(), MpmError> {
        let mut pending = self.pending.lock_unpoisoned();
        self.open_for_calls()?;
        if !worker.alive.load(SeqCst) {
            return Err(MpmError::WorkerCrashed {
                worker: worker.name.clone(),
                how: "ended before the call".into(),
            });
        }
        worker.in_flight.fetch_add(1, SeqCst);
        pending.insert(
            id,
            Pending {
                worker: worker.clone(),
                what,
                waiter,
            },
        );
        Ok(())
    }

    pub(super) fn take_pending(&self, id: u64) -> Option<Pending> {
        let taken = self.pending.lock_unpoisoned().remove(&id);
        if let Some(pending) = &taken {
            pending.worker.in_flight.fetch_sub(1, SeqCst);
        }
        taken
    }

    pub(super) fn complete(&self, id: u64, answer: Result<Reply, MpmError>) {
        match self.take_pending(id) {
            Some(pending) => {
                let (what, worker) = (pending.what, pending.worker.name.clone());
                let withdrawn = matches!(answer, Err(MpmError::Withdrawn));
                if !pending.waiter.answer(answer) && !withdrawn {
                    // A cancelled await does not cancel the call: the worker did the work.
                    tracing::warn!(
                        event = "answer-dropped",
                        worker = %worker,
                        "MPM: {what} (call {id}) answered by {worker} after its caller stopped waiting; \
                         answer dropped"
                    );
                }
            }
            // The caller timed out and forgot the call.
            None => tracing::debug!("MPM: answer to call {id} arrived after its caller gave up"),
        }
    }

    /// Marks `worker` dead and fails every call in flight on it, naming it.
    pub(super) fn fail_in_flight(&self, worker: &Arc<WorkerProcess>, how: &str) {
        let failed: Vec<(u64, Pending)> = {
            let mut pending = self.pending.lock_unpoisoned();
            worker.alive.store(false, SeqCst);
            let ids: Vec<u64> = pending
                .iter()
                .filter(|(_, p)| p.worker.incarnation == worker.incarnation)
                .map(|(&id, _)| id)
                .collect();
            ids.into_iter()
                .filter_map(|id| pending.remove(&id).map(|p| (id, p)))
                .collect()
        };
        for (id, pending) in failed {
            pending.worker.in_flight.fetch_sub(1, SeqCst);
            if self.stopping.load(SeqCst) {
                // The worker stopped (or was killed) with this call still queued: the caller
                // the reference leaves waiting for its timeout is released now, and said so.
                release_stranded(id, pending);
            } else {
                let (worker, how) = (worker.name.clone(), how.to_owned());
                pending
                    .waiter
                    .answer(Err(MpmError::WorkerCrashed { worker, how }));
            }
        }
    }

    /// After the stop: every caller still waiting gets an error now instead of a timeout.
    pub(super) fn release_waiting_callers(&self) {
        let stranded: Vec<(u64, Pending)> = self.pending.lock_unpoisoned().drain().collect();
        tracing::debug!("MPM.stop: {} callers still waiting", stranded.len());
        for (id, pending) in stranded {
            release_stranded(id, pending);
        }
    }
}

fn release_stranded(id: u64, pending: Pending) {
    tracing::warn!(
        event = "stranded",
        worker = %pending.worker.name,
        "MPM.stop: releasing a stranded caller: {} (call {id} on {}) will never be answered",
        pending.what,
        pending.worker.name
    );
    pending.waiter.answer(Err(MpmError::StoppedWhileWaiting));
}

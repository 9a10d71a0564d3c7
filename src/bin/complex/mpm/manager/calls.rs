//! The callers waiting for answers: dispatch, registration, completion, and release.
//!
//! The invariant: a caller is registered under the pending lock only while its worker is
//! alive, and a worker is marked dead under the same lock when its monitor fails its calls.
//! So every registered caller is answered, failed with the worker's name, or released by the
//! stop: none waits for a worker that is gone. Likewise the withdrawal is switched on under
//! that lock: a call registered before it reaches its worker before or after the withdraw
//! command and is run or withdrawn there; none is registered after it.

use graceful::sync::LockUnpoisoned;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::mpsc::{RecvTimeoutError, sync_channel};
use std::time::Instant;

use super::super::child::WorkerProcess;
use super::super::protocol::{Command, Method};
use super::{CALL_TIMEOUT, MpmError, Pending, Reply, Shared, Waiter, recv_by};

impl Shared {
    /// A blocking call: dispatch, then this thread waits for the answer.
    pub(super) fn call(&self, method: Method) -> Result<Reply, MpmError> {
        let what = method.name();
        let (reply, answer) = sync_channel(1);
        let (id, worker) = self.dispatch(method, Waiter::Blocking(reply))?;
        match recv_by(&answer, Instant::now() + CALL_TIMEOUT, &[&worker]) {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(error)) if error.is_the_stop() => {
                tracing::debug!("MPM: call {id} ({what}) on {}: {error}", worker.name);
                Err(error)
            }
            Ok(Err(error)) => {
                tracing::warn!("MPM: call {id} ({what}) on {} failed: {error}", worker.name);
                Err(error)
            }
            Err(RecvTimeoutError::Timeout) => {
                self.forget(id);
                tracing::error!("MPM: call {id} ({what}) on {} timed out", worker.name);
                Err(MpmError::Timeout(CALL_TIMEOUT))
            }
            Err(RecvTimeoutError::Disconnected) => Err(MpmError::StoppedWhileWaiting),
        }
    }

    /// Registers the caller with the least-loaded live worker and sends it the call.
    pub(super) fn dispatch(
        &self,
        method: Method,
        waiter: Waiter,
    ) -> Result<(u64, Arc<WorkerProcess>), MpmError> {
        if self.stopping.load(SeqCst) {
            return Err(MpmError::Stopped);
        }
        if self.withdrawing.load(SeqCst) {
            return Err(MpmError::Stopping);
        }
        let id = self.next_id.fetch_add(1, SeqCst);
        let what = method.name();
        let worker = self.least_loaded().ok_or(MpmError::NoWorker)?;
        self.register(id, &worker, what, waiter)?;
        match &method {
            Method::ProcessString(p) => tracing::debug!(
                "MPM.process_string(parameter={p:?}): call {id} to {}",
                worker.name
            ),
            Method::ProcessNumber(p) => {
                tracing::debug!("MPM.process_number(parameter={p}): call {id} to {}", worker.name)
            }
        }
        if worker.send(&Command::Call { id, method }).is_err() {
            // Its monitor fails the pending call (or already did): the caller hears of it.
            tracing::debug!("MPM: call {id}: {} stdin is closed", worker.name);
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
            .filter(|w| w.alive.load(SeqCst) && !w.was_closed())
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
        if self.stopping.load(SeqCst) {
            return Err(MpmError::Stopped);
        }
        if self.withdrawing.load(SeqCst) {
            return Err(MpmError::Stopping);
        }
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
                        "MPM: {what} (call {id}) answered by {worker} after its caller stopped waiting; \
                         answer dropped"
                    );
                }
            }
            // The caller timed out and forgot the call.
            None => tracing::debug!("MPM: answer to call {id} arrived after its caller gave up"),
        }
    }

    pub(super) fn forget(&self, id: u64) {
        self.take_pending(id);
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
            let error = if self.stopping.load(SeqCst) {
                // The worker stopped (or was killed) with this call still queued: the caller
                // the reference leaves waiting for its timeout is released now, and said so.
                tracing::warn!(
                    "MPM.stop: releasing a stranded caller: {} (call {id} on {}) will never be answered",
                    pending.what,
                    worker.name
                );
                MpmError::StoppedWhileWaiting
            } else {
                MpmError::WorkerCrashed {
                    worker: worker.name.clone(),
                    how: how.to_owned(),
                }
            };
            pending.waiter.answer(Err(error));
        }
    }

    /// After the stop: every caller still waiting gets an error now instead of a timeout.
    pub(super) fn release_waiting_callers(&self) {
        let stranded: Vec<(u64, Pending)> = self.pending.lock_unpoisoned().drain().collect();
        tracing::debug!("MPM.stop: {} callers still waiting", stranded.len());
        for (id, pending) in stranded {
            tracing::warn!(
                "MPM.stop: releasing a stranded caller: {} (call {id} on {}) will never be answered",
                pending.what,
                pending.worker.name
            );
            pending.waiter.answer(Err(MpmError::StoppedWhileWaiting));
        }
    }
}

//! Supervision: what a worker's reports tell, its end, and replacing crashed workers within the
//! restart budget (OTP's restart intensity: at most N restarts within T; past it, the
//! application is asked to stop rather than crash-loop).

use graceful::sync::LockUnpoisoned;
use std::sync::{Arc, Mutex, atomic::Ordering::SeqCst, mpsc::SyncSender};
use std::time::{Duration, Instant};

use graceful::deadline::Deadline;

use super::child::{WorkerProcess, describe_exit};
use super::handshake::{self, Heard};
use super::pump::{Told, Watched};
use super::{MpmError, Reply, Shared};
use crate::mpm::shared::handshake::Step;
use crate::mpm::shared::protocol::Report;
use nix::sys::wait::WaitStatus;

/// Who withdrew calls a worker never began.
pub(super) enum Withdrawal {
    /// The worker, in its acknowledgement of the withdraw command.
    Acknowledged,
    /// The worker, for calls that reached it after the withdraw command.
    Later,
    /// MPM: calls still waiting in the worker's stdin, taken back unsent.
    Unsent,
}

/// The wait before the second restart within the window; each later one waits twice as long.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait before a restart.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

impl Shared {
    /// One report from `worker`, on the monitors' loop: never waits.
    pub(super) fn on_report(
        &self,
        worker: &WorkerProcess,
        told: &mut Told,
        handshake: &SyncSender<Heard>,
        report: Report,
    ) {
        match report {
            Report::Bootstrapped => {
                let _ = handshake.try_send(Heard::Step(Step::Bootstrapped));
            }
            Report::Started => {
                told.started = true;
                let _ = handshake.try_send(Heard::Step(Step::Started));
            }
            Report::StartFailed { reason } => {
                told.refused = true;
                let _ = handshake.try_send(Heard::Failed(reason));
            }
            Report::Result {
                id,
                version,
                parameter,
            } => self.complete(id, Ok(Reply::Processed { version, parameter })),
            Report::Updated { id, version } => self.complete(id, Ok(Reply::Updated { version })),
            Report::Withdrawn { ids } => {
                told.withdrawals += 1;
                let by = match told.withdrawals {
                    1 => Withdrawal::Acknowledged,
                    _ => Withdrawal::Later,
                };
                self.withdrawn(worker, &ids, by);
            }
        }
    }

    /// Both pipes of a worker ended: the rest of its end may wait (its reap, a replacement's
    /// handshake), so it runs on a thread of its own, joined by the stop; without a thread
    /// to spare, on the loop itself.
    pub(super) fn after_the_end(self: &Arc<Self>, watched: Watched) {
        let name = format!("MPM-end-{}", watched.worker.name);
        let (shared, ended) = (self.clone(), Arc::new(Mutex::new(Some(watched))));
        let taken = ended.clone();
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || shared.finish(taken.lock_unpoisoned().take()));
        match thread {
            Ok(thread) => self.monitors.lock_unpoisoned().push(thread),
            Err(_) => self.clone().finish(ended.lock_unpoisoned().take()),
        }
    }

    /// Reaps a worker whose pipes ended, reports how it ended, fails its calls in flight,
    /// and replaces it if needed (never once a stop was requested).
    fn finish(self: Arc<Self>, watched: Option<Watched>) {
        let Some(Watched {
            worker,
            handshake,
            broken,
            told,
            ..
        }) = watched
        else {
            return;
        };
        let status = worker.reap();
        let expected =
            worker.stdin.was_closed() && broken.is_none() && matches!(status, Some(WaitStatus::Exited(_, 0)));
        let how = describe_exit(status);
        let how = match broken {
            Some(error) => format!("sent garbage ({error}), then {how}"),
            None => how,
        };
        if expected {
            tracing::debug!(
                event = "exited",
                worker = %worker.name,
                worker_pid = worker.pid,
                "MPM: {} (pid {}) exited: {how}",
                worker.name,
                worker.pid
            );
        } else if !told.refused {
            // Only the parent can report a worker that could not say it ended (the worker
            // logs its own `failed` when it refuses to start).
            let cause = if worker.was_killed() {
                format!("pid {} killed on purpose by MPM ({how})", worker.pid)
            } else if self.stop_begun() {
                format!("pid {} ended during the stop: {how}", worker.pid)
            } else {
                format!("pid {} ended unexpectedly: {how}", worker.pid)
            };
            self.components.failed(&worker.name, &cause);
        }
        self.fail_in_flight(&worker, &how);
        worker.ended.set(how.clone());
        let _ = handshake.try_send(Heard::Failed(how));
        // A worker that dies after its handshake but before the whole start is decided (the
        // others still handshaking) is replaced once the start succeeded: waiting here is what
        // keeps it from being forgotten, and from being replaced by a start that then aborts.
        if !expected
            && told.started
            && self
                .start_outcome
                .wait_within(&mut Deadline::after(Duration::MAX))
                == Some(true)
            && !self.stop_begun()
        {
            self.replace(worker.slot);
        }
    }

    /// Calls `worker` never began were withdrawn: their callers hear so, and the line says by
    /// whom.
    pub(super) fn withdrawn(&self, worker: &WorkerProcess, ids: &[u64], by: Withdrawal) {
        for &id in ids {
            self.complete(id, Err(MpmError::Withdrawn));
        }
        let (count, name) = (ids.len(), &worker.name);
        let said = match by {
            Withdrawal::Acknowledged => format!("{name} withdrew {count} call(s) it had not begun"),
            Withdrawal::Later => format!("{name} withdrew {count} more call(s) it had not begun"),
            Withdrawal::Unsent => {
                format!("withdrew {count} call(s) still waiting in {name}'s stdin, never sent")
            }
        };
        if count > 0 {
            tracing::info!(event = "withdrawn", worker = %name, count, "MPM: {said}");
        }
    }

    /// Starts a replacement for `slot` within the restart budget; past it, asks the
    /// application to stop.
    pub(super) fn replace(self: &Arc<Self>, slot: usize) {
        let name = format!("worker-{}", slot + 1);
        loop {
            if self.stop_begun() {
                tracing::info!(
                    event = "not-replaced",
                    worker = %name,
                    "MPM: {name} is not replaced: the stop has begun"
                );
                return;
            }
            let Some(restart) = self.take_restart() else {
                let cause = format!(
                    "restart budget exhausted: {} restarts within {}; {name} cannot be replaced",
                    self.config.restart_limit,
                    humantime::format_duration(self.config.restart_window)
                );
                tracing::error!(
                    target: "lifecycle",
                    component = "MPM",
                    event = "restart-budget-exhausted",
                    worker = %name,
                    "MPM: {cause}; stopping the application"
                );
                (self.on_fatal)(cause);
                return;
            };
            if !self.back_off(&name, restart) {
                continue;
            }
            tracing::warn!(
                event = "restarting",
                worker = %name,
                restart,
                "MPM: restarting {name} (restart {restart} of {} allowed within {})",
                self.config.restart_limit,
                humantime::format_duration(self.config.restart_window)
            );
            // The same handshake as the first start's, for this one worker.
            let outcome = self.launch(slot).and_then(|launched| {
                handshake::complete(std::slice::from_ref(&launched)).map(|()| launched.worker)
            });
            match outcome {
                Ok(worker) => {
                    tracing::info!(
                        event = "replaced",
                        worker = %name,
                        worker_pid = worker.pid,
                        "MPM: {name} replaced (pid {})",
                        worker.pid
                    );
                    return;
                }
                Err(error) => {
                    let cause = graceful::logging::chain(&error);
                    tracing::error!(
                        event = "restart-failed",
                        worker = %name,
                        cause,
                        "MPM: replacing {name} failed: {cause}"
                    );
                }
            }
        }
    }

    /// Before restart number `restart` within the window: the first at once, each later one
    /// twice as long after the one before it (from [`FIRST_BACKOFF`]), so that a failure
    /// that will not go away does not spend the whole budget within a millisecond. Says
    /// when the next try is. `false` when the stop began meanwhile.
    fn back_off(&self, name: &str, restart: usize) -> bool {
        let Some(doublings) = restart.checked_sub(2) else {
            return true;
        };
        let delay = FIRST_BACKOFF
            .saturating_mul(1 << doublings.min(6))
            .min(MAX_BACKOFF);
        tracing::info!(
            event = "restart-backoff",
            worker = %name,
            restart,
            delay_ms = delay.as_millis() as u64,
            "MPM: next try to replace {name} in {}",
            humantime::format_duration(delay)
        );
        let mut backoff = Deadline::after(delay);
        // Looked at after every slice (a thirty-second of the delay): a stop does not wait
        // for a backoff.
        while backoff.slice(std::thread::sleep).is_some() {
            if self.stop_begun() {
                return false;
            }
        }
        !self.stop_begun()
    }

    /// Counts a restart against the budget; `None` once it is exhausted.
    pub(super) fn take_restart(&self) -> Option<usize> {
        let mut restarts = self.restarts.lock_unpoisoned();
        let now = Instant::now();
        while restarts
            .front()
            .is_some_and(|&at| now.duration_since(at) > self.config.restart_window)
        {
            restarts.pop_front();
        }
        if restarts.len() >= self.config.restart_limit as usize {
            return None;
        }
        restarts.push_back(now);
        self.stats.restarts.fetch_add(1, SeqCst);
        Some(restarts.len())
    }
}

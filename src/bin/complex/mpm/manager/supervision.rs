//! Supervision: each worker's monitor thread, and replacing crashed workers within the
//! restart budget (OTP's restart intensity: at most N restarts within T; past it, the
//! application is asked to stop rather than crash-loop).

use graceful::sync::LockUnpoisoned;
use std::io::BufReader;
use std::process::ChildStdout;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::mpsc::SyncSender;
use std::time::Instant;

use super::super::child::{WorkerProcess, describe_exit};
use super::super::protocol::Report;
use super::{HANDSHAKE, Handshake, Reply, Shared, await_step};

impl Shared {
    /// The monitor thread of one incarnation: reads its reports until its stdout ends, then
    /// reaps it, reports how it ended, fails its calls in flight, and replaces it if needed.
    pub(super) fn monitor(
        self: Arc<Self>,
        worker: Arc<WorkerProcess>,
        stdout: ChildStdout,
        handshake: SyncSender<Handshake>,
    ) {
        let mut reports = BufReader::new(stdout);
        let mut started = false;
        let mut reported_failure = false;
        let broken = loop {
            match Report::read_from(&mut reports) {
                Ok(Some(Report::Bootstrapped)) => {
                    let _ = handshake.try_send(Handshake::Bootstrapped);
                }
                Ok(Some(Report::Started)) => {
                    started = true;
                    let _ = handshake.try_send(Handshake::Started);
                }
                Ok(Some(Report::StartFailed(cause))) => {
                    reported_failure = true;
                    let _ = handshake.try_send(Handshake::Failed(cause));
                }
                Ok(Some(Report::Result {
                    id,
                    version,
                    parameter,
                })) => {
                    self.complete(id, Ok(Reply::Processed { version, parameter }));
                }
                Ok(Some(Report::Updated { id, version })) => {
                    self.complete(id, Ok(Reply::Updated { version }))
                }
                Ok(None) => break None,
                Err(error) => break Some(error),
            }
        };
        if let Some(error) = &broken {
            tracing::error!(
                worker_pid = worker.pid,
                "MPM: {} sent garbage ({error}); killing it",
                worker.name
            );
            worker.kill();
        }
        let status = worker.reap();
        let expected = worker.was_closed() && broken.is_none() && status.is_some_and(|s| s.success());
        let how = describe_exit(status);
        let how = match broken {
            Some(error) => format!("sent garbage ({error}), then {how}"),
            None => how,
        };
        if expected {
            tracing::debug!(
                worker_pid = worker.pid,
                "MPM: {} (pid {}) exited: {how}",
                worker.name,
                worker.pid
            );
        } else if !reported_failure {
            // Only the parent can report a worker that could not say it ended (the worker
            // logs its own `failed` when it refuses to start).
            let when = if self.stopping.load(SeqCst) {
                "during the stop"
            } else {
                "unexpectedly"
            };
            self.components
                .failed(&worker.name, &format!("pid {} ended {when}: {how}", worker.pid));
        }
        self.fail_in_flight(&worker, &how);
        worker.set_ended(how.clone());
        let _ = handshake.try_send(Handshake::Failed(how));
        // A worker that dies after its handshake but before the whole start is decided (the
        // others still handshaking) is replaced once the start succeeded: waiting here is what
        // keeps it from being forgotten, and from being replaced by a start that then aborts.
        if !expected && started && self.start_outcome.wait() && !self.stopping.load(SeqCst) {
            self.replace(worker.slot);
        }
    }

    /// Starts a replacement for `slot` within the restart budget; past it, asks the
    /// application to stop.
    pub(super) fn replace(self: &Arc<Self>, slot: usize) {
        let name = format!("worker-{}", slot + 1);
        loop {
            if self.stopping.load(SeqCst) {
                return;
            }
            let Some(restart) = self.take_restart() else {
                let cause = format!(
                    "restart budget exhausted: {} restarts within {}; {name} cannot be replaced",
                    self.config.restart_limit,
                    humantime::format_duration(self.config.restart_window)
                );
                tracing::error!(target: "lifecycle", component = "MPM", "MPM: {cause}; stopping the application");
                (self.on_fatal)(cause);
                return;
            };
            tracing::warn!(
                "MPM: restarting {name} (restart {restart} of {} allowed within {})",
                self.config.restart_limit,
                humantime::format_duration(self.config.restart_window)
            );
            let outcome = self.launch(slot).and_then(|(worker, handshake)| {
                for (step, timeout) in &HANDSHAKE {
                    if let Err(error) = await_step(&worker, &handshake, step, Instant::now() + *timeout) {
                        worker.kill();
                        return Err(error);
                    }
                }
                Ok(worker)
            });
            match outcome {
                Ok(worker) => {
                    tracing::info!(
                        worker_pid = worker.pid,
                        "MPM: {name} replaced (pid {})",
                        worker.pid
                    );
                    return;
                }
                Err(error) => tracing::error!("MPM: replacing {name} failed: {error}"),
            }
        }
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

//! One worker process as the manager holds it: its pipes, its pid, and its end.
//!
//! "Nothing left running, nothing unreaped": only its monitor reaps, after both its pipes
//! ended, and [`WorkerProcess::kill`] takes the same lock, so a pid is never signalled once
//! reaped (and maybe reused); the monitor waits for the end before reaping, so a kill still
//! reaches a worker that closed its pipes but lives on. `Drop` kills and reaps a child still
//! unreaped. As PID 1 this process reaps adopted orphans: `graceful::spawn` records a worker
//! with the reaper's registry until it is reaped, so its status is left to its monitor. Its
//! commands: `stdin.rs`.

use graceful::sync::LockUnpoisoned;
use nix::sys::wait::WaitStatus;
use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use super::latch::Latch;
use super::stdin::Stdin;
use graceful::spawn::{self, Process, Program, Spawned};

/// A running (or just ended) incarnation of `worker-N`.
pub struct WorkerProcess {
    /// `worker-N`.
    pub name: String,
    /// N - 1: the slot it fills in the manager.
    pub slot: usize,
    /// The OS process id.
    pub pid: u32,
    /// Unique across restarts, so a call can tell the incarnation it was sent to.
    pub incarnation: u64,
    /// Calls sent to it and not yet answered (for least-loaded dispatch).
    pub in_flight: AtomicUsize,
    /// Still reading its reports; cleared (under the manager's pending lock) when they end.
    pub alive: AtomicBool,
    /// Its stdin: every command it gets goes through it.
    pub stdin: Stdin,
    child: Mutex<Option<Process>>,
    /// Killed by this process on a decision already logged (a failed start, a missed
    /// deadline, a forced exit): its end is then reported as that, not as a surprise.
    killed: AtomicBool,
    /// How it ended, set once its end is reported: what the stop and a forced exit wait for.
    pub ended: Latch<String>,
}

/// What the monitors' loop alone reads: the worker's reports and its log lines.
pub struct Outputs {
    /// Frames from the worker.
    pub stdout: File,
    /// The worker's log lines.
    pub stderr: File,
}

/// Something the spawn needed could not be created (no process slot, no descriptor).
#[derive(Debug, thiserror::Error)]
#[error("cannot create {what}")]
pub struct SpawnError {
    what: &'static str,
    #[source]
    error: io::Error,
}

impl WorkerProcess {
    /// Spawns `program args` as `worker-N` (signals blocked until its handlers are in place),
    /// with stdin, stdout and stderr piped to this process.
    /// Returns it and what the loop reads.
    pub fn spawn(
        program: &Program,
        args: &[String],
        slot: usize,
    ) -> Result<(Arc<Self>, Outputs), SpawnError> {
        static NEXT_INCARNATION: AtomicU64 = AtomicU64::new(1);
        let failed = |what| move |error| SpawnError { what, error };
        let Spawned {
            process,
            stdin,
            stdout,
            stderr,
        } = spawn::spawn_with_signals_blocked(program, args).map_err(failed("the worker process"))?;
        let worker = Arc::new(Self {
            name: format!("worker-{}", slot + 1),
            slot,
            pid: process.id(),
            incarnation: NEXT_INCARNATION.fetch_add(1, SeqCst),
            in_flight: AtomicUsize::new(0),
            alive: AtomicBool::new(true),
            stdin: Stdin::new(stdin).map_err(failed("the worker's stdin"))?,
            child: Mutex::new(Some(process)),
            killed: AtomicBool::new(false),
            ended: Latch::new(),
        });
        Ok((worker, Outputs { stdout, stderr }))
    }

    /// SIGKILL, unless it was already reaped. The monitor reaps and reports it.
    pub fn kill(&self) {
        if let Some(process) = self.child.lock_unpoisoned().as_ref() {
            self.killed.store(true, SeqCst);
            let _ = process.kill();
        }
    }

    /// Whether [`kill`](Self::kill) was called on it.
    pub fn was_killed(&self) -> bool {
        self.killed.load(SeqCst)
    }

    /// Waits for the process to end and reaps it; for the monitor thread only, after the
    /// worker's stdout ended (so the wait is short).
    pub fn reap(&self) -> Option<WaitStatus> {
        // The end first, without reaping: until the reap the pid is still ours, so a kill
        // meanwhile (a worker that closed its pipes but lives on) still reaches it.
        let pid = self.child.lock_unpoisoned().as_ref()?.id();
        let _ = spawn::wait_until_ended(pid);
        let process = self.child.lock_unpoisoned().take()?;
        process.wait().ok()
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if let Some(process) = self.child.lock_unpoisoned().take() {
            tracing::warn!(
                worker_pid = self.pid,
                "{} was never reaped by its monitor; killing and reaping it now",
                self.name
            );
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

/// How a process ended, in words: "exit status 0", "killed by SIGKILL".
pub fn describe_exit(status: Option<WaitStatus>) -> String {
    match status {
        Some(WaitStatus::Exited(_, code)) => format!("exit status {code}"),
        Some(WaitStatus::Signaled(_, signal, _)) => format!("killed by {signal}"),
        Some(other) => format!("{other:?}"),
        None => "its end could not be observed".into(),
    }
}

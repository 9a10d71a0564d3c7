//! Lesson 7 of the reference: **synchronise worker start.**
//!
//! **The lesson.** A pool of worker processes is not started when `spawn` returns: each one
//! still has to load, install its signal handlers and initialise. The reference waits for two
//! events from every worker, `bootstrapped` then `started`, each with a timeout, and fails
//! the whole start if one is missing.
//!
//! **The pitfalls.**
//! - A terminal's Ctrl+C goes to the whole process group. A worker hit between `exec` and
//!   the installation of its handlers dies by the default action: abruptly, mid-handshake.
//!   Blocking the signals in the parent before spawning does not help: std's spawn empties
//!   the child's signal mask, and blocking them again in a `pre_exec` hook leaves a window
//!   before the hook runs.
//! - A worker that never reports (wedged, refusing, dead) must not leave the start hanging,
//!   nor leave the workers that did start running behind a failed start.
//! - A deadline must not count the time the whole run was stopped (Ctrl+Z): every worker
//!   was stopped too, and owes nothing for it.
//!
//! **The fix, in the order it happens.**
//! 1. [`spawn_with_signals_blocked`]: `posix_spawn` gives the child SIGINT, SIGTERM and
//!    SIGHUP blocked from its start (`POSIX_SPAWN_SETSIGMASK`); the mask survives `exec`.
//! 2. The worker installs its handlers, which unblocks the signals (a signal that came in the
//!    window is delivered now, and ignored like any other), then reports
//!    [`worker_bootstrapped`]; once initialised, [`worker_started`] (or [`worker_refuses`]).
//! 3. The parent waits for every worker's `bootstrapped` (5 s), then every worker's `started`
//!    (30 s) ([`complete`]), each bound a `graceful::deadline::Deadline`: time the whole run
//!    spent stopped (Ctrl+Z) is not counted against a worker. Any failure, refusal, early end or missing report kills every
//!    worker of the handshake, and the start fails cleanly. The first start runs it for all
//!    workers at once, a restart for the one replacement: the same steps and deadlines.
//!
//! Proof: `tests/complex.rs` signals the group as the first worker is spawned and during the
//! handshake, and `--fail-start worker-2` fails it on purpose.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use graceful::deadline::Deadline;

use super::child::WorkerProcess;
use super::manager::MpmError;
use super::protocol::{Frame, Report};
use super::spawn::{self, Program, Spawned};

/// A step of the handshake, and how long every worker has for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The worker's code runs and its signal handlers are in place.
    Bootstrapped,
    /// Initialisation done: the worker takes commands.
    Started,
}

/// The steps, in order, with each one's deadline (counted from the step's beginning).
pub const STEPS: [(Step, Duration); 2] = [
    (Step::Bootstrapped, Duration::from_secs(5)),
    (Step::Started, Duration::from_secs(30)),
];

impl Step {
    /// The step's name, as the logs and the frames spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Bootstrapped => "bootstrapped",
            Self::Started => "started",
        }
    }
}

/// What a worker's monitor heard of its handshake.
#[derive(Debug)]
pub enum Heard {
    /// The worker reported this step.
    Step(Step),
    /// It refused to start, or ended, with this cause.
    Failed(String),
}

/// A worker spawned and being handshaken: the process, and what its monitor hears.
pub struct Handshaking {
    /// The worker.
    pub worker: Arc<WorkerProcess>,
    /// Fed by the worker's monitor.
    pub heard: Receiver<Heard>,
}

// ---- The parent's side --------------------------------------------------------------

/// Spawns `program args` with the shutdown signals blocked in the child from its start (see
/// `spawn.rs`), through the reaper's registry: as PID 1 this process reaps adopted orphans,
/// and must leave this child's status to its monitor.
pub fn spawn_with_signals_blocked(program: &Program, args: &[String]) -> io::Result<Spawned> {
    graceful::reaper::own(
        || spawn::spawn_with_signals_blocked(program, args),
        |spawned| spawned.process.id(),
    )
}

/// Runs both steps for `workers`: every one must report each step by its deadline. On
/// failure, every worker of `workers` is killed (their monitors reap them) before this
/// returns the first failure.
pub fn complete(workers: &[Handshaking]) -> Result<(), MpmError> {
    for (step, timeout) in STEPS {
        tracing::debug!(
            event = "handshake",
            step = step.name(),
            workers = workers.len(),
            "MPM: waiting for {} to report {:?} (timeout {timeout:?})",
            names(workers),
            step.name()
        );
        let mut deadline = Deadline::after(timeout);
        for handshaking in workers {
            if let Err(error) = await_step(handshaking, step, &mut deadline) {
                for handshaking in workers {
                    handshaking.worker.kill();
                }
                return Err(error);
            }
        }
    }
    Ok(())
}

/// Waits for `handshaking` to report `step` by `deadline`.
fn await_step(handshaking: &Handshaking, step: Step, deadline: &mut Deadline) -> Result<(), MpmError> {
    let worker = &handshaking.worker;
    let failed = |cause: String| MpmError::StartFailed {
        worker: worker.name.clone(),
        cause,
    };
    match deadline.recv(&handshaking.heard) {
        Ok(Heard::Step(reported)) if reported == step => Ok(()),
        Ok(Heard::Step(reported)) => Err(failed(format!(
            "reported {:?} instead of {:?}",
            reported.name(),
            step.name()
        ))),
        Ok(Heard::Failed(cause)) => Err(failed(cause)),
        Err(RecvTimeoutError::Timeout) => Err(failed(format!("no {:?} report in time", step.name()))),
        Err(RecvTimeoutError::Disconnected) => Err(failed("ended during the handshake".into())),
    }
}

fn names(workers: &[Handshaking]) -> String {
    match workers {
        [one] => one.worker.name.clone(),
        _ => "every worker".into(),
    }
}

// ---- The worker's side ----------------------------------------------------------------

/// Step 1, once the worker's signal handlers are in place (installing them unblocked the
/// signals blocked at spawn).
pub fn worker_bootstrapped(out: &mut impl Write) -> io::Result<()> {
    send(out, &Report::Bootstrapped)
}

/// Step 2, once the worker is initialised and takes commands.
pub fn worker_started(out: &mut impl Write) -> io::Result<()> {
    send(out, &Report::Started)
}

/// Instead of step 2: the worker will not start, and says why; it exits next.
pub fn worker_refuses(out: &mut impl Write, reason: &str) -> io::Result<()> {
    send(
        out,
        &Report::StartFailed {
            reason: reason.to_owned(),
        },
    )
}

/// A handshake report goes out at once: the parent is waiting for it.
fn send(out: &mut impl Write, report: &Report) -> io::Result<()> {
    report.write_to(out)?;
    out.flush()
}

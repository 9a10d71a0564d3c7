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
//! 1. `parent/spawn.rs`: `posix_spawn` gives the child SIGINT, SIGTERM and SIGHUP blocked
//!    from its start (`POSIX_SPAWN_SETSIGMASK`); the mask survives `exec`.
//! 2. The worker (`worker/mod.rs`) installs its handlers, which unblocks the signals (a
//!    signal that came in the window is delivered now, and ignored like any other), then
//!    reports `bootstrapped`; once initialised, `started` (or `start_failed`, and exits).
//! 3. The parent (`parent/handshake.rs`) waits for every worker's step in turn, each step
//!    bounded by its own deadline ([`STEPS`]), a `graceful::deadline::Deadline`: time the
//!    whole run spent stopped is not counted against a worker. Any failure, refusal, early
//!    end or missing report kills every worker of the handshake, and the start fails
//!    cleanly. The first start runs it for all workers at once, a restart for the one
//!    replacement: the same steps and deadlines.
//!
//! Proof: `tests/complex.rs` signals the group as the first worker is spawned and during the
//! handshake, and `--fail-start worker-2` fails it on purpose.

use std::time::Duration;

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

//! Lesson 7 of the reference: **synchronise worker start.**
//!
//! A pool of worker processes is not started when `spawn` returns: each still has to load,
//! install its signal handlers and initialise. The reference waits for two events from every
//! worker, `bootstrapped` then `started`, each with a timeout, and fails the whole start if
//! one is missing. The pitfalls: a Ctrl+C to the group kills a worker caught between `exec`
//! and its handlers (std's spawn empties the signal mask, and a `pre_exec` hook leaves a
//! window); a worker that never reports must neither hang the start nor be left running
//! behind a failed one; and a stop of the whole run (Ctrl+Z) is no worker's fault.
//!
//! The fix, in order: `graceful::spawn` starts the child with SIGINT, SIGTERM and SIGHUP
//! blocked (`POSIX_SPAWN_SETSIGMASK`, kept across `exec`); the worker (`worker/mod.rs`)
//! installs its handlers, which unblocks them (a signal that came meanwhile is delivered and
//! ignored), reports `bootstrapped`, initialises, reports `started` (or `start_failed`);
//! the parent (`parent/handshake.rs`) waits for each step from every worker within the
//! step's deadline ([`STEPS`]), a `graceful::deadline::Deadline` that does not count a
//! stopped run. Any failure kills every worker of the handshake and fails the start cleanly.
//! The first start runs it for all workers, a restart for its one replacement. Proof:
//! `tests/complex.rs` signals the group during the spawn and the handshake, and
//! `--fail-start worker-2` fails it on purpose.

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

//! Stopped, then continued: a deadline does not hold against the time the run was stopped.
//!
//! **Problem.** Ctrl+Z stops every process of the run. A worker stopped before it could
//! report cannot report in time however healthy it is, and on `fg` the main process wakes
//! past its deadline. The watermark of [`arrivals`](super::arrivals) cannot help: nothing
//! was sent. A stop of the whole run at any moment, for any time, must never fail a
//! healthy start, update or stop.
//!
//! **Fix.** SIGCONT is watched (a thread on signal-hook's iterator notes when the process was
//! last continued), and a deadline that passed is extended to [`GRACE`] after the last
//! continue: everyone gets a fresh moment to do what the stop interrupted. A machine that
//! only starves the process, without stopping it, gets no grace; there the watermark judges.

use std::io;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use graceful::sync::LockUnpoisoned;

/// How long after a continue a deadline still waits: a handshake step's own shortest bound.
pub const GRACE: Duration = Duration::from_secs(5);

static LAST_CONTINUE: Mutex<Option<Instant>> = Mutex::new(None);

/// Starts watching SIGCONT (once per process). Without it (no thread to spare) deadlines
/// still hold, only without the grace.
pub fn watch() -> io::Result<()> {
    static WATCHING: OnceLock<()> = OnceLock::new();
    if WATCHING.get().is_some() {
        return Ok(());
    }
    let mut continues = signal_hook::iterator::Signals::new([libc::SIGCONT])?;
    std::thread::Builder::new()
        .name("MPM-continued".into())
        .spawn(move || {
            for _ in continues.forever() {
                *LAST_CONTINUE.lock_unpoisoned() = Some(Instant::now());
            }
        })?;
    let _ = WATCHING.set(());
    Ok(())
}

/// How long a waiter about to fail lets the watching thread note a continue: on `fg` every
/// thread resumes at once, and the waiter may run before the watcher. Paid only by a
/// deadline that is about to fail.
const NOTICE: Duration = Duration::from_millis(100);

/// The later deadline a passed `deadline` gets because the process was continued since
/// (or shortly before) it; `None` when no continue excuses it.
pub fn extended(deadline: Instant) -> Option<Instant> {
    let excuse = || {
        let continued = (*LAST_CONTINUE.lock_unpoisoned())?;
        let excused = continued + GRACE;
        (excused > deadline).then_some(excused)
    };
    excuse().or_else(|| {
        std::thread::sleep(NOTICE);
        excuse()
    })
}

//! Is it the suite, or the machine? A watch on the tool's own scheduling.
//!
//! **Problem.** On a shared machine (two cores, other people's builds and benchmarks) a
//! process can be starved for seconds. A run starved through its stop overruns
//! `--stop-timeout` and fails the trial, though the suite did nothing wrong; a report that
//! cannot tell the two apart sends people chasing ghosts.
//!
//! **Fix.** A thread asks to sleep a few ms over and over and records how late it woke.
//! A late wake-up means nothing on the machine could run this process for that long: a
//! stall. Each trial's report says the longest stall that overlapped it, so a failure under
//! a multi-second stall reads as "suspect the machine" and one without as "suspect the
//! suite". The tool cannot see the trial's own scheduling, only its own, so this is
//! evidence, not proof.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often the watch wakes.
const TICK: Duration = Duration::from_millis(5);
/// Lateness below this is ordinary scheduling noise, not recorded.
const RECORDED: Duration = Duration::from_millis(50);
/// Stalls older than this are forgotten (no trial lasts that long).
const MEMORY: Duration = Duration::from_secs(600);

/// Stalls seen: when the watch woke up, and how late.
static STALLS: Mutex<VecDeque<(Instant, Duration)>> = Mutex::new(VecDeque::new());

/// Starts the watch, for the life of the tool.
pub fn start_watch() -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("torture-stall-watch".into())
        .spawn(|| {
            loop {
                let asked = Instant::now();
                // A measurement, not a synchronisation: the lateness of this sleep is the datum.
                std::thread::sleep(TICK);
                let woke = Instant::now();
                let late = woke.saturating_duration_since(asked).saturating_sub(TICK);
                if late >= RECORDED {
                    let mut stalls = STALLS.lock().unwrap_or_else(|p| p.into_inner());
                    while stalls
                        .front()
                        .is_some_and(|(at, _)| woke.saturating_duration_since(*at) > MEMORY)
                    {
                        stalls.pop_front();
                    }
                    stalls.push_back((woke, late));
                }
            }
        })?;
    Ok(())
}

/// The longest stall that overlapped `[from, to]`, if any was recorded.
pub fn longest_between(from: Instant, to: Instant) -> Option<Duration> {
    STALLS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        // A stall recorded at `woke` spanned `[woke - late - TICK, woke]`.
        .filter(|(woke, late)| *woke >= from && woke.checked_sub(*late).is_none_or(|began| began <= to))
        .map(|(_, late)| *late)
        .max()
}

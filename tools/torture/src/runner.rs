//! Runs a round: `--jobs` trials at a time, each checked and, if it failed, saved at once.
//!
//! Trials are handed out by index, so which thread runs which trial does not matter: a
//! trial's plan comes from its seed alone, and the outcomes are sorted by index at the end.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::channel;
use std::time::Instant;

use crate::check;
use crate::plan::{PlanSettings, TrialPlan};
use crate::report::{self, Outcome};
use crate::trial;

/// How many failing trials have their log excerpt printed on stderr.
const EXCERPTS: usize = 5;

/// What a round needs besides the plans.
pub struct RoundSettings {
    /// How every plan is drawn.
    pub plan: PlanSettings,
    /// How many trials.
    pub trials: u64,
    /// How many at once.
    pub jobs: usize,
    /// Where `simple` and `complex` are.
    pub bin_dir: PathBuf,
    /// Where failing trials are saved.
    pub failures_dir: PathBuf,
    /// Which build is under test, for the failing trials' reports.
    pub binaries: String,
}

/// Runs every trial of the round; returns the outcomes in trial order.
pub fn run_round(settings: &RoundSettings) -> Vec<Outcome> {
    let next = AtomicU64::new(0);
    let done = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let (tx, rx) = channel();
    let progress = Mutex::new(Instant::now());
    std::thread::scope(|scope| {
        for _ in 0..settings.jobs.max(1) {
            let tx = tx.clone();
            let (next, done, failed, progress) = (&next, &done, &failed, &progress);
            scope.spawn(move || {
                loop {
                    let index = next.fetch_add(1, Relaxed);
                    if index >= settings.trials {
                        return;
                    }
                    let outcome = run_one(settings, index);
                    let finished = done.fetch_add(1, Relaxed) + 1;
                    if outcome.failed() {
                        let earlier = failed.fetch_add(1, Relaxed);
                        // The first few in full for CI's log; the rest are in their files.
                        if earlier < EXCERPTS {
                            eprintln!("{}", report::excerpt(&outcome));
                        } else if earlier == EXCERPTS {
                            eprintln!(
                                "torture: more failing trials; their logs are under {}",
                                settings.failures_dir.display()
                            );
                        }
                    }
                    report_progress(progress, finished, settings.trials, failed.load(Relaxed));
                    if tx.send(outcome).is_err() {
                        return;
                    }
                }
            });
        }
    });
    drop(tx);
    let mut outcomes: Vec<Outcome> = rx.into_iter().collect();
    outcomes.sort_by_key(|o| o.observation.plan.index);
    outcomes
}

fn run_one(settings: &RoundSettings, index: u64) -> Outcome {
    let plan = TrialPlan::new(&settings.plan, index);
    let observation = trial::run(plan, &settings.bin_dir);
    let violations = check::check(&observation);
    let mut outcome = Outcome {
        observation,
        violations,
        saved: None,
    };
    if outcome.failed() {
        match report::save_failure(&settings.failures_dir, &outcome, &settings.binaries) {
            Ok(dir) => outcome.saved = Some(dir),
            Err(error) => eprintln!(
                "torture: cannot save the failing trial under {}: {error}",
                settings.failures_dir.display()
            ),
        }
    }
    outcome
}

/// A line on stderr every few seconds, so a long round shows it is alive.
fn report_progress(last: &Mutex<Instant>, done: usize, total: u64, failed: usize) {
    let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
    if last.elapsed().as_secs() >= 5 || done as u64 == total {
        eprintln!("torture: {done}/{total} trials, {failed} failed");
        *last = Instant::now();
    }
}

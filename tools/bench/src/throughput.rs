//! Calls per second through the whole stack of `complex`, and round trips over bare pipes.
//!
//! **The suite.** `complex --time-scale 0 --log-level warn --busy-tasks B --pool-threads P`
//! runs for `hold` after its `app started` line; then it gets SIGINT. At its stop the
//! manager logs `MPM.stop: summary` with `calls_ok`: every `process_number` and
//! `process_string` that went async task → pool → manager → pipe → worker → back. The rate
//! is `calls_ok` over the time between the process's own timestamps of `app started` and
//! `MPM stopping` (the busy tasks have all returned by then), so the tool's own scheduling
//! on a busy 2-core machine does not enter the window. The workers' peak RSS is read just
//! before the signal, under full load.
//!
//! **The floor.** `floor-pipes --threads N --run-for hold`: N threads, each doing 16-byte
//! request/answer round trips with its own child process over pipes; it reports its count.
//!
//! Configurations run interleaved, one run of each per round, for the same reason as the
//! latency runs: noise of the shared machine then falls on all of them alike.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;

use crate::latency::{ms, worker_pids};
use crate::run::{Proc, Status, peak_rss_kib};

const READY_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_TIMEOUT: Duration = Duration::from_secs(40);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// The suite's default worker count, which the targets are stated for.
const WORKERS: usize = 4;

/// One load of `complex`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Load {
    /// `--busy-tasks`.
    pub busy: usize,
    /// `--pool-threads`.
    pub pool: usize,
}

/// What the runs of one load (or one floor thread count) measured.
#[derive(Default)]
pub struct Rates {
    /// Completed calls (or round trips) per second, one per run.
    pub per_second: Vec<f64>,
    /// Main plus workers peak RSS, in KiB (suite only).
    pub tree_kib: Vec<f64>,
    /// SIGINT to reaped under this load, in ms (suite only).
    pub stop_ms: Vec<f64>,
    /// Calls that failed, summed over the runs (suite only).
    pub calls_failed: u64,
    /// Runs that failed, described.
    pub failures: Vec<String>,
}

/// Runs every load and every floor thread count `runs` times, interleaved.
pub fn measure(
    complex: &Path,
    floor_pipes: &Path,
    loads: &[Load],
    floor_threads: &[usize],
    runs: usize,
    hold: Duration,
    progress: impl Fn(usize),
) -> (Vec<Rates>, Vec<Rates>) {
    let mut suite: Vec<Rates> = loads.iter().map(|_| Rates::default()).collect();
    let mut floor: Vec<Rates> = floor_threads.iter().map(|_| Rates::default()).collect();
    for round in 0..runs {
        for (load, rates) in loads.iter().zip(&mut suite) {
            if let Err(error) = run_suite(complex, *load, hold, rates) {
                rates.failures.push(format!("run {}: {error:#}", round + 1));
            }
        }
        for (&threads, rates) in floor_threads.iter().zip(&mut floor) {
            match run_floor(floor_pipes, threads, hold) {
                Ok(rate) => rates.per_second.push(rate),
                Err(error) => rates.failures.push(format!("run {}: {error:#}", round + 1)),
            }
        }
        progress(round + 1);
    }
    (suite, floor)
}

fn run_suite(complex: &Path, load: Load, hold: Duration, rates: &mut Rates) -> anyhow::Result<()> {
    let args = [
        "--log-format".to_owned(),
        "json".into(),
        "--time-scale".into(),
        "0".into(),
        "--log-level".into(),
        "warn".into(),
        "--workers".into(),
        WORKERS.to_string(),
        "--busy-tasks".into(),
        load.busy.to_string(),
        "--pool-threads".into(),
        load.pool.to_string(),
    ];
    let mut proc = Proc::spawn(complex, &args)?;
    let ready = proc
        .wait_for(READY_TIMEOUT, |line| line.is_event("app", "started"))
        .context("waiting for `app started`")?;
    let started = proc.lines()[ready]
        .timestamp()
        .context("`app started` has no timestamp")?;
    let workers = worker_pids(proc.lines(), true);
    // The measurement window itself: the process's timestamps bound it, not this sleep.
    std::thread::sleep(hold);
    let worker_kib: Vec<u64> = workers.iter().filter_map(|&pid| peak_rss_kib(pid)).collect();
    let ended = proc.interrupt_and_reap(STOP_TIMEOUT)?;
    let lines = proc.finish(DRAIN_TIMEOUT)?;
    if ended.status != Status::Signalled(libc::SIGINT) {
        anyhow::bail!("ended by {:?}, not by SIGINT", ended.status);
    }
    let stopping = lines
        .iter()
        .find(|l| l.is_event("MPM", "stopping"))
        .and_then(|l| l.timestamp())
        .context("no `MPM stopping` line with a timestamp")?;
    let summary = lines
        .iter()
        .find(|l| l.str_field("component") == Some("MPM") && l.u64_field("calls_ok").is_some())
        .context("no `MPM.stop: summary` line")?;
    let calls_ok = summary.u64_field("calls_ok").unwrap_or(0);
    let window = stopping
        .duration_since(started)
        .context("`MPM stopping` is stamped before `app started`")?;
    anyhow::ensure!(
        window >= hold / 2,
        "the window ({window:?}) is much shorter than the hold ({hold:?})"
    );
    if workers.len() != WORKERS || worker_kib.len() != WORKERS {
        anyhow::bail!("{} of {WORKERS} workers seen", worker_kib.len());
    }
    rates.per_second.push(calls_ok as f64 / window.as_secs_f64());
    rates.calls_failed += summary.u64_field("calls_failed").unwrap_or(0);
    rates
        .tree_kib
        .push((ended.max_rss_kib + worker_kib.iter().sum::<u64>()) as f64);
    rates.stop_ms.push(ms(ended.at - ended.signalled_at));
    Ok(())
}

fn run_floor(floor_pipes: &Path, threads: usize, hold: Duration) -> anyhow::Result<f64> {
    let args = [
        "--threads".to_owned(),
        threads.to_string(),
        "--run-for".into(),
        humantime::format_duration(hold).to_string(),
    ];
    let mut proc = Proc::spawn(floor_pipes, &args)?;
    let ended = proc.reap(hold + STOP_TIMEOUT)?;
    let lines = proc.finish(DRAIN_TIMEOUT)?;
    anyhow::ensure!(ended.status == Status::Exited(0), "ended with {:?}", ended.status);
    let result = lines
        .iter()
        .find(|l| l.str_field("component") == Some("floor-pipes"))
        .context("no result line")?;
    let round_trips = result.u64_field("round_trips").context("no round_trips")?;
    let seconds = result
        .json
        .get("seconds")
        .and_then(serde_json::Value::as_f64)
        .context("no seconds")?;
    Ok(round_trips as f64 / seconds)
}

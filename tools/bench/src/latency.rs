//! Launch to ready, signal to exit, and peak memory, one process at a time.
//!
//! **What one run measures.** Spawn (clock starts just before it) → the `app started` line
//! read from stderr: *launch to ready*. Then, for a busy scenario, a random pause of up to
//! `ramp` so that the signal lands at a random point of the call cycle (the busy tasks are
//! already calling when `app started` is logged: this is not synchronisation, only phase
//! spreading). Then the peak RSS of every worker is read from `/proc` while they run, SIGINT
//! goes to the main process (clock starts), and a blocking `wait4` reaps it (clock stops):
//! *signal to exit*. `wait4` also gives the main process's peak RSS.
//!
//! **Noise.** The scenarios run interleaved, one run of each per round, so a noisy minute
//! of the shared machine hits all of them alike instead of one whole scenario; the first
//! rounds are warm-up (page cache, CPU frequency) and are dropped.
//!
//! **Trust.** A run counts only if it honoured the contract: it ended by SIGINT, the suite's
//! last line is `app exit` with status 130, the expected workers showed up, nothing
//! outlived the main process. Any other run is reported, not averaged in.

use std::path::PathBuf;
use std::time::Duration;

use crate::run::{Line, Proc, Status, peak_rss_kib, pss_kib, thread_count};

const READY_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_TIMEOUT: Duration = Duration::from_secs(40);
/// How long stderr may stay open after the main process was reaped.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// One program and how to run it.
pub struct Scenario {
    /// Short name used in the report (`simple`, `complex busy`, `floor-ctrlc`, ...).
    pub name: String,
    /// The executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Whether it is one of the suite's binaries (and so logs the whole contract).
    pub suite: bool,
    /// How many worker (child) processes it must report.
    pub children: usize,
    /// Upper bound of the random pause between ready and SIGINT (zero: none).
    pub ramp: Duration,
}

/// Everything measured for one scenario, a value per run that honoured the contract.
#[derive(Default)]
pub struct Samples {
    /// Launch to ready, in ms.
    pub ready_ms: Vec<f64>,
    /// SIGINT to reaped, in ms.
    pub stop_ms: Vec<f64>,
    /// The main process's `ru_maxrss`, in KiB.
    pub main_kib: Vec<f64>,
    /// Each worker's `VmHWM` just before the signal, in KiB.
    pub worker_kib: Vec<f64>,
    /// Main plus its workers, in KiB.
    pub tree_kib: Vec<f64>,
    /// Main plus its workers, proportional set size just before the signal, in KiB.
    pub tree_pss_kib: Vec<f64>,
    /// The main process's threads once it was ready.
    pub threads: Vec<f64>,
    /// Runs that broke the contract or failed, described.
    pub failures: Vec<String>,
}

/// Runs every scenario `warmup + runs` times, interleaved; returns the samples in the
/// scenarios' order. `progress` is told each finished round.
pub fn measure(scenarios: &[Scenario], runs: usize, warmup: usize, progress: impl Fn(usize)) -> Vec<Samples> {
    let mut samples: Vec<Samples> = scenarios.iter().map(|_| Samples::default()).collect();
    let mut pauses = Pauses::seeded();
    for round in 0..warmup + runs {
        for (scenario, samples) in scenarios.iter().zip(&mut samples) {
            let outcome = run_once(scenario, &mut pauses);
            if round < warmup {
                continue;
            }
            match outcome {
                Ok(run) => {
                    samples.ready_ms.push(run.ready_ms);
                    samples.stop_ms.push(run.stop_ms);
                    samples.main_kib.push(run.main_kib as f64);
                    samples
                        .worker_kib
                        .extend(run.worker_kib.iter().map(|&k| k as f64));
                    samples
                        .tree_kib
                        .push((run.main_kib + run.worker_kib.iter().sum::<u64>()) as f64);
                    if let Some(pss) = run.tree_pss_kib {
                        samples.tree_pss_kib.push(pss as f64);
                    }
                    if let Some(threads) = run.threads {
                        samples.threads.push(threads as f64);
                    }
                }
                Err(error) => samples
                    .failures
                    .push(format!("run {}: {error:#}", round - warmup + 1)),
            }
        }
        progress(round + 1);
    }
    samples
}

struct RunResult {
    ready_ms: f64,
    stop_ms: f64,
    main_kib: u64,
    worker_kib: Vec<u64>,
    tree_pss_kib: Option<u64>,
    threads: Option<usize>,
}

fn run_once(scenario: &Scenario, pauses: &mut Pauses) -> anyhow::Result<RunResult> {
    let mut proc = Proc::spawn(&scenario.program, &scenario.args)?;
    let ready = proc
        .wait_for(READY_TIMEOUT, |line| line.is_event("app", "started"))
        .map_err(|e| anyhow::anyhow!("waiting for `app started`: {e}"))?;
    let ready_at = proc.lines()[ready].at;
    let threads = thread_count(proc.main_pid());
    let workers = worker_pids(proc.lines(), scenario.suite);
    if !scenario.ramp.is_zero() {
        std::thread::sleep(pauses.next(scenario.ramp));
    }
    let worker_kib: Vec<u64> = workers.iter().filter_map(|&pid| peak_rss_kib(pid)).collect();
    let tree_pss_kib = std::iter::once(proc.main_pid())
        .chain(workers.iter().copied())
        .map(pss_kib)
        .sum::<Option<u64>>();
    let ended = proc.interrupt_and_reap(STOP_TIMEOUT)?;
    let ready_ms = ms(ready_at - proc.spawned_at);
    let stop_ms = ms(ended.at - ended.signalled_at);
    let lines = proc.finish(DRAIN_TIMEOUT)?;

    if ended.killed_by_watchdog {
        anyhow::bail!("did not stop within {STOP_TIMEOUT:?} (killed)");
    }
    if ended.status != Status::Signalled(libc::SIGINT) {
        anyhow::bail!("ended by {:?}, not by SIGINT", ended.status);
    }
    if workers.len() != scenario.children || worker_kib.len() != scenario.children {
        anyhow::bail!(
            "{} of {} workers seen ({} readable in /proc)",
            workers.len(),
            scenario.children,
            worker_kib.len()
        );
    }
    if scenario.suite {
        let last = lines.last();
        let exit_ok = last.is_some_and(|l| l.is_event("app", "exit") && l.u64_field("status") == Some(130));
        if !exit_ok {
            anyhow::bail!(
                "the last line is not `app exit` with status 130: {}",
                last.map_or("(none)".into(), |l| l.json.to_string())
            );
        }
        if let Some(failed) = lines.iter().find(|l| l.str_field("phase") == Some("failed")) {
            anyhow::bail!("a component failed: {}", failed.json);
        }
    }
    Ok(RunResult {
        ready_ms,
        stop_ms,
        main_kib: ended.max_rss_kib,
        worker_kib,
        tree_pss_kib,
        threads,
    })
}

/// The child processes a run reported by the time it was ready: for the suite, the pids on
/// the workers' own log lines; for a floor program, the `children` of its ready line.
pub fn worker_pids(lines: &[Line], suite: bool) -> Vec<u32> {
    let mut pids: Vec<u32> = if suite {
        lines
            .iter()
            .filter(|l| l.str_field("process").is_some_and(|p| p.starts_with("worker-")))
            .filter_map(|l| l.u64_field("pid").and_then(|p| u32::try_from(p).ok()))
            .collect()
    } else {
        lines
            .iter()
            .filter_map(|l| l.json.get("children").and_then(|c| c.as_array()))
            .flatten()
            .filter_map(|p| p.as_u64().and_then(|p| u32::try_from(p).ok()))
            .collect()
    };
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Milliseconds, as a float.
pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// Pseudo-random pauses (xorshift64*), enough to spread the signal over the call cycle.
struct Pauses(u64);

impl Pauses {
    fn seeded() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as u64);
        Self(nanos | 1)
    }

    fn next(&mut self, max: Duration) -> Duration {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let unit = (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
        max.mul_f64(unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn line(text: &str) -> Line {
        Line {
            at: Instant::now(),
            json: serde_json::from_str(text).unwrap(),
        }
    }

    #[test]
    fn worker_pids_come_from_the_workers_own_lines_or_the_floors_ready_line() {
        let suite = [
            line(r#"{"process":"main","pid":10}"#),
            line(r#"{"process":"worker-2","pid":12}"#),
            line(r#"{"process":"worker-1","pid":11}"#),
            line(r#"{"process":"worker-2","pid":12}"#),
        ];
        assert_eq!(worker_pids(&suite, true), vec![11, 12]);
        let floor = [line(
            r#"{"component":"app","phase":"started","pid":5,"children":[7,6]}"#,
        )];
        assert_eq!(worker_pids(&floor, false), vec![6, 7]);
        assert_eq!(worker_pids(&floor, true), Vec::<u32>::new());
    }
}

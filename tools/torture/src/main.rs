//! `torture`: the suite's promise, "press Ctrl+C at any moment and the stop is clean",
//! checked by a machine, thousands of times, with faults on top.
//!
//! # From the top
//! A round is many trials ([`runner`]). Each trial's [`plan`] is drawn from its seed: a
//! binary, a [`scenario`], random parameters and a random moment in the run's life. The
//! [`trial`] spawns the binary in its own process group ([`run`]), acts at the moment,
//! waits for the end on events, and hunts leftovers in the process table ([`procs`]). The
//! [`check`]s read what was observed (the JSON lines, the exit, the leftovers) against
//! the contract (docs/contract.md), and the [`report`] prints the summary and keeps the failures.
//!
//! # Layout
//! - [`cli`]: the command line; where the binaries are.
//! - [`bins`]: private copies of the binaries, so a rebuild mid-round changes nothing.
//! - [`rng`]: SplitMix64, so a seed replays a trial forever.
//! - [`scenario`]: binaries, scenarios, signals.
//! - [`plan`]: a trial's parameters and moment, from its seed.
//! - [`env`](mod@env): the environment axis: a stalled reader, a process limit, a CPU hog, SIGSTOP.
//! - [`run`]: a spawned run as a stream of events; signals that cannot hit a reused pid.
//! - [`procs`]: `/proc`, pidfds, the subreaper: who is left, and killing only them.
//! - [`trial`]: one trial, start to clean-up.
//! - [`phase`]: where in the life a signal landed.
//! - [`check`]: which of the contract's checks (`logread::contract`) a trial is judged on.
//! - [`report`], [`runner`]: the round; [`plot`]: its latencies as a picture (`--plots`).
//! - [`stall`]: whether the machine starved the tool during a trial.

mod bins;
mod check;
mod cli;
mod env;
mod phase;
mod plan;
mod plot;
mod procs;
mod report;
mod rng;
mod run;
mod runner;
mod scenario;
mod stall;
mod trial;

use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;

use cli::Cli;
use plan::PlanSettings;
use runner::RoundSettings;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let scenarios = match cli.scenarios() {
        Ok(scenarios) => scenarios,
        Err(message) => {
            eprintln!("torture: {message}");
            return ExitCode::from(2);
        }
    };
    let bin_dir = match cli::find_bin_dir(cli.bin_dir.as_deref()) {
        Ok(dir) => dir,
        Err(message) => {
            eprintln!("torture: {message}");
            return ExitCode::from(2);
        }
    };
    let snapshot = match bins::Snapshot::take(&bin_dir) {
        Ok(snapshot) => snapshot,
        Err(error) => {
            eprintln!(
                "torture: cannot copy the binaries from {}: {error}",
                bin_dir.display()
            );
            return ExitCode::from(2);
        }
    };
    // scripts/torture says which revision of the workspace it built.
    let revision = std::env::var("TORTURE_SUITE_REV").unwrap_or_else(|_| "unknown".into());
    let binaries = format!(
        "{} (revision {revision}; {})",
        bin_dir.display(),
        snapshot.describe()
    );
    // Orphans of a SIGKILLed run become ours, not PID 1's: reaped, and never lost.
    if let Err(error) = procs::become_subreaper() {
        eprintln!("torture: cannot become a child subreaper ({error}); orphans will go to PID 1");
    }
    if let Err(error) = stall::start_watch() {
        eprintln!("torture: cannot start the stall watch ({error}); stalls will not be reported");
    }
    let seed = cli.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_secs() % 1_000_000)
    });
    let limit_available = env::process_limit_available();
    let wants_limit = cli
        .environment
        .iter()
        .any(|k| matches!(k, env::EnvKind::Mixed | env::EnvKind::ProcessLimit));
    if wants_limit && !limit_available {
        eprintln!("torture: no process-limit trials: they need root, setpriv and prlimit (util-linux)");
    }
    let settings = RoundSettings {
        plan: PlanSettings {
            seed,
            binaries: cli.binary.binaries().to_vec(),
            scenarios,
            stop_timeout: cli.stop_timeout,
            inject_fault: cli.inject_fault.clone(),
            moment: cli.moment,
            environments: cli.environment.clone(),
            limit_available,
        },
        trials: cli.trials,
        jobs: cli.jobs,
        bin_dir: snapshot.dir.clone(),
        failures_dir: cli.failures_dir.clone(),
        binaries: binaries.clone(),
    };
    eprintln!(
        "torture: seed {seed}, {} trials, {} jobs, binaries: {binaries}",
        cli.trials, cli.jobs
    );
    let started = Instant::now();
    let outcomes = runner::run_round(&settings);
    let info = report::RoundInfo {
        command: cli.replay(seed),
        wall: started.elapsed(),
        jobs: cli.jobs,
        binaries,
    };
    println!("{}", report::summary(&outcomes, &info));
    if let Some(dir) = &cli.plots {
        let subtitle = format!("{} trials, {}", outcomes.len(), info.command);
        match plot::write(dir, &outcomes, &subtitle) {
            Ok(path) => eprintln!("torture: wrote {}", path.display()),
            Err(error) => eprintln!("torture: cannot write the plot into {}: {error}", dir.display()),
        }
    }
    if outcomes.iter().any(report::Outcome::failed) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

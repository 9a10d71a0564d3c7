//! The tool's command line, and where it finds the binaries under test.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

use crate::env::EnvKind;
use crate::scenario::{Binary, BinaryChoice, Scenario};

/// Ctrl+C at random moments, thousands of times, checked against the suite's contract.
///
/// Runs `simple` and `complex` over and over; in each trial, at a random moment of the
/// run's life, sends a signal (or kills a process) as the scenario says, then checks the
/// logs and the process table against the contract (docs/contract.md). Prints a markdown summary;
/// keeps every failing trial's log under --failures-dir. Exit status: 0 when every trial
/// passed, 1 otherwise, 2 on a bad command line.
///
/// Trial i of --seed S runs with seed S+i: a failing trial replays alone with
/// `--seed S+i --trials 1 --binary B --scenario X` (its report prints the exact line).
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
pub struct Cli {
    /// The round's seed (default: from the clock; printed in the summary)
    #[arg(long)]
    pub seed: Option<u64>,

    /// How many trials
    #[arg(long, default_value_t = 100)]
    pub trials: u64,

    /// Which binaries: both alternate from trial to trial
    #[arg(long, value_enum, default_value = "both")]
    pub binary: BinaryChoice,

    /// Only these scenarios (repeat the flag, or separate with commas; default: all)
    #[arg(long, value_enum, value_delimiter = ',')]
    pub scenario: Vec<Scenario>,

    /// Trials at once (the machine is shared: latencies are noisier with more)
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,

    /// Where `simple` and `complex` are (default: target/release, else target/debug, of the
    /// workspace)
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,

    /// Where failing trials' logs and reports go
    #[arg(long, value_name = "DIR", default_value = "torture-failures")]
    pub failures_dir: PathBuf,

    /// --stop-timeout passed to every run
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = humantime::parse_duration)]
    pub stop_timeout: Duration,

    /// Plant a fault in `complex` (e.g. worker-ignores-stop) to see the tool catch it
    #[arg(long, value_name = "FAULT")]
    pub inject_fault: Option<String>,

    /// Act at this fraction (0 to 1) of each run's estimated life instead of a random moment
    /// (to aim at a phase: 0.5 is mid-run, 0.97 the stop)
    #[arg(long, value_name = "FRACTION", value_parser = parse_fraction)]
    pub moment: Option<f64>,

    /// What the machine does around each run: `mixed` lays a random fault (a stalled
    /// stderr reader, a process limit, a CPU hog, SIGSTOP of main or the group) on a share
    /// of the trials; a list of kinds draws from those only; `plain` disables the axis
    /// (repeat the flag, or separate with commas)
    #[arg(long, value_enum, value_delimiter = ',', default_value = "mixed")]
    pub environment: Vec<EnvKind>,

    /// Also draw the latencies as an SVG plot, DIR/torture-latency.svg (created if missing)
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
}

fn parse_fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(fraction) if (0.0..=1.0).contains(&fraction) => Ok(fraction),
        _ => Err(format!("`{text}` is not a fraction between 0 and 1")),
    }
}

impl Cli {
    /// The scenarios asked for that apply to at least one chosen binary; an error names a
    /// choice that leaves nothing to run.
    pub fn scenarios(&self) -> Result<Vec<Scenario>, String> {
        let asked = if self.scenario.is_empty() {
            Scenario::ALL.to_vec()
        } else {
            self.scenario.clone()
        };
        for binary in self.binary.binaries() {
            if !asked.iter().any(|s| s.applies_to(*binary)) {
                return Err(format!(
                    "none of the scenarios {} applies to {binary}",
                    asked.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ")
                ));
            }
        }
        Ok(asked)
    }

    /// The command line that replays the whole round.
    pub fn replay(&self, seed: u64) -> String {
        let mut command = format!(
            "scripts/torture --seed {seed} --trials {} --binary {} --jobs {} --stop-timeout {}",
            self.trials,
            match self.binary {
                BinaryChoice::Simple => "simple",
                BinaryChoice::Complex => "complex",
                BinaryChoice::Both => "both",
            },
            self.jobs,
            humantime::format_duration(self.stop_timeout)
        );
        if !self.scenario.is_empty() {
            let names: Vec<&str> = self.scenario.iter().map(|s| s.name()).collect();
            command.push_str(&format!(" --scenario {}", names.join(",")));
        }
        if let Some(fault) = &self.inject_fault {
            command.push_str(&format!(" --inject-fault {fault}"));
        }
        if let Some(fraction) = self.moment {
            command.push_str(&format!(" --moment {fraction}"));
        }
        if self.environment != [EnvKind::Mixed] {
            let names: Vec<&str> = self.environment.iter().map(|k| k.name()).collect();
            command.push_str(&format!(" --environment {}", names.join(",")));
        }
        command
    }
}

/// The directory holding both binaries: `--bin-dir`, else the workspace's target/release,
/// else its target/debug (`CARGO_TARGET_DIR` respected).
pub fn find_bin_dir(asked: Option<&Path>) -> Result<PathBuf, String> {
    let has_both = |dir: &Path| {
        [Binary::Simple, Binary::Complex]
            .iter()
            .all(|b| dir.join(b.name()).is_file())
    };
    if let Some(dir) = asked {
        return if has_both(dir) {
            Ok(dir.to_owned())
        } else {
            Err(format!(
                "{} does not hold both `simple` and `complex`",
                dir.display()
            ))
        };
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace.join("target"), PathBuf::from);
    ["release", "debug"]
        .iter()
        .map(|profile| target.join(profile))
        .find(|dir| has_both(dir))
        .ok_or_else(|| {
            format!(
                "no `simple` and `complex` under {}/{{release,debug}}: build them (cargo build --release --bins) or pass --bin-dir",
                target.display()
            )
        })
}

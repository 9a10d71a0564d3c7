//! The process layer's own settings. The command line (`cli.rs`) maps its flags onto the
//! manager's; a worker's are the arguments of the hidden `complex worker`, which the manager
//! writes ([`WorkerConfig::command_line`]) and the worker reads back through clap, so both
//! sides of that protocol live here.

use std::time::Duration;

use clap::ValueEnum;

use graceful::demo::TimeScale;
use graceful::logging::LogFormat;
use tracing_subscriber::filter::LevelFilter;

/// What the manager is told at construction.
#[derive(Clone, Debug)]
pub struct MpmConfig {
    /// How many worker processes.
    pub workers: usize,
    /// Passed to the workers: their simulated work is scaled by it.
    pub time_scale: TimeScale,
    /// Passed to the workers, so their lines match the parent's.
    pub log_format: LogFormat,
    /// Passed to the workers.
    pub log_level: LevelFilter,
    /// The worker (1-based) whose start fails on purpose.
    pub fail_start: Option<usize>,
    /// A planted fault, for proving the torture tool catches it.
    pub fault: Option<Fault>,
    /// Restart budget: at most this many restarts ...
    pub restart_limit: u32,
    /// ... within this window.
    pub restart_window: Duration,
}

impl MpmConfig {
    /// The settings of the worker in `slot` (0-based).
    pub fn worker(&self, slot: usize) -> WorkerConfig {
        WorkerConfig {
            index: u16::try_from(slot + 1).unwrap_or(u16::MAX),
            time_scale: self.time_scale,
            log_format: self.log_format,
            log_level: self.log_level,
            fail_start: self.fail_start == Some(slot + 1),
            fault: self.fault,
        }
    }
}

/// What one worker process is told: the arguments of `complex worker`.
#[derive(Clone, Debug, PartialEq, clap::Args)]
pub struct WorkerConfig {
    /// 1-based: the worker is `worker-INDEX`
    #[arg(long, value_name = "INDEX", value_parser = clap::value_parser!(u16).range(1..))]
    pub index: u16,
    /// Multiply every simulated delay by F
    #[arg(long, value_name = "F", default_value = "1", value_parser = TimeScale::parse, allow_negative_numbers = true)]
    pub time_scale: TimeScale,
    /// The log lines' format (they are forwarded through the parent's writer)
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Lowest level logged
    #[arg(long, value_name = "LEVEL", default_value = "debug")]
    pub log_level: LevelFilter,
    /// Refuse to start (`complex --fail-start worker-N`: a failed handshake)
    #[arg(long)]
    pub fail_start: bool,
    /// A planted fault
    #[arg(long = "inject-fault", value_enum)]
    pub fault: Option<Fault>,
}

impl WorkerConfig {
    /// `worker-<index>`: its name in the logs.
    pub fn name(&self) -> String {
        format!("worker-{}", self.index)
    }

    /// The command line that runs this worker: `complex worker ...`.
    pub fn command_line(&self) -> Vec<String> {
        let name = |value: Option<clap::builder::PossibleValue>| {
            value.map(|v| v.get_name().to_owned()).unwrap_or_default()
        };
        let mut args = vec![
            "worker".into(),
            "--index".into(),
            self.index.to_string(),
            "--time-scale".into(),
            self.time_scale.factor().to_string(),
            "--log-format".into(),
            name(self.log_format.to_possible_value()),
            "--log-level".into(),
            self.log_level.to_string().to_lowercase(),
        ];
        if self.fail_start {
            args.push("--fail-start".into());
        }
        if let Some(fault) = self.fault {
            args.extend(["--inject-fault".into(), name(fault.to_possible_value())]);
        }
        args
    }
}

/// Faults that can be planted on purpose (the hidden `--inject-fault`), to prove the
/// torture tool catches them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// Every worker ignores the stop command and its parent's death: the orphan the
    /// reference warns about. The manager must kill it; the stop is late.
    WorkerIgnoresStop,
    /// Every worker, once started, writes one 8 KiB log line in small pieces over about
    /// 2.5 s, straight to its stderr: kill it meanwhile to prove a cut-off line never
    /// reaches the run's log.
    SlowLogLine,
    /// The worker given `process_number(0)` (busy task 0's first call, once per run)
    /// panics while handling it: a panic in a worker is one `event=panic` line, the worker
    /// exits 1, and the manager replaces it.
    WorkerPanics,
}

//! The process layer's own settings. The command line (`cli.rs`) maps its flags onto these;
//! nothing in `mpm/` knows a flag's name.

use std::time::Duration;

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
    /// How a worker's settings become the arguments of the process that runs it: the
    /// command line's business (the same executable parses them back), not this layer's.
    pub worker_command: fn(&WorkerConfig) -> Vec<String>,
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

/// What one worker process is told.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerConfig {
    /// 1-based: the worker is `worker-<index>`.
    pub index: u16,
    /// Its simulated work is scaled by it.
    pub time_scale: TimeScale,
    /// Its log lines' format (they are forwarded through the parent's writer).
    pub log_format: LogFormat,
    /// Its lowest level logged.
    pub log_level: LevelFilter,
    /// Refuse to start (a demonstration of a failed handshake).
    pub fail_start: bool,
    /// A planted fault.
    pub fault: Option<Fault>,
}

impl WorkerConfig {
    /// `worker-<index>`: its name in the logs.
    pub fn name(&self) -> String {
        format!("worker-{}", self.index)
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

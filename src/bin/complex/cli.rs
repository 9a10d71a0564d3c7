//! `complex`'s command line: the shared options, its own, and the hidden worker subcommand.

use std::time::Duration;

use clap::{Args, Parser, ValueEnum};
use graceful::cli::CommonArgs;
use graceful::logging::LogFormat;
use graceful::time_scale::TimeScale;
use tracing_subscriber::filter::LevelFilter;

/// Worker processes, a blocking pool and an async facade, stopped cleanly at any moment.
///
/// Try: press Ctrl+C during "MPM.start" (the workers' handshake), while the busy tasks call
/// into the workers, or during an update (`--time-scale 0.2` makes one every 2 s).
/// `kill -9` a worker (its pid is in the log) to watch it be replaced; do it four times to
/// exhaust the restart budget. `--busy-tasks 16 --pool-threads 2` fills the pool and still
/// stops promptly; `--unshielded` abandons the calls in hand and shows the stranded callers
/// being released; `--fail-start worker-2` shows a failed handshake.
#[derive(Parser, Debug)]
#[command(name = "complex", version, about, long_about, after_help = graceful::cli::EXIT_STATUS_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,

    #[command(flatten)]
    pub complex: ComplexArgs,
}

/// `complex`'s own options.
#[derive(Args, Debug, Clone)]
pub struct ComplexArgs {
    /// Worker processes (the MultiProcessManager's)
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: u16,

    /// Threads of the blocking pool (the ThreadPoolExecutor's)
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub pool_threads: u16,

    /// Tasks calling process_number and process_string in a loop (may exceed --pool-threads)
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u16).range(0..=4096))]
    pub busy_tasks: u16,

    /// Cancelled tasks abandon the call in hand instead of finishing it (the reference's
    /// unshielded variant): watch the manager release the stranded callers
    #[arg(long)]
    pub unshielded: bool,

    /// Each call holds a pool thread until its answer arrives (the reference's design):
    /// with --busy-tasks above --pool-threads the pool is always full, and the stop must
    /// still be prompt. By default only the submission uses the pool.
    #[arg(long)]
    pub blocking_calls: bool,

    /// Restart budget: a crashed worker is replaced at most N times within --restart-window;
    /// past that the application stops (exit 1)
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub restart_limit: u32,

    /// The window of the restart budget
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub restart_window: Duration,

    /// Plant a fault, to prove the torture tool catches it
    #[arg(long, value_enum, hide = true)]
    pub inject_fault: Option<Fault>,
}

/// Faults that can be planted on purpose (`--inject-fault`).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Every worker ignores the stop command and its parent's death: the orphan the
    /// reference warns about. The manager must kill it; the stop is late.
    WorkerIgnoresStop,
}

impl Fault {
    /// The flag's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WorkerIgnoresStop => "worker-ignores-stop",
        }
    }
}

/// The first argument that makes this process a worker: `complex worker --index N ...`.
pub const WORKER_SUBCOMMAND: &str = "worker";

/// What the manager passes to a worker process (`complex worker ...`). A parser of its own,
/// not a subcommand of [`Cli`]: each worker then builds only this small command, which
/// keeps the code it touches, and so its resident memory, small.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "complex worker",
    about = "A worker process of `complex`; started by `complex` itself, over pipes"
)]
pub struct WorkerArgs {
    /// 1-based: the worker is `worker-<index>`
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub index: u16,

    #[arg(long, default_value = "1", value_parser = TimeScale::parse)]
    pub time_scale: TimeScale,

    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,

    #[arg(long, default_value = "debug")]
    pub log_level: LevelFilter,

    /// Refuse to start (`complex --fail-start worker-N`)
    #[arg(long)]
    pub fail_start: bool,

    #[arg(long, value_enum)]
    pub inject_fault: Option<Fault>,
}

//! `complex`'s command line: the shared options and its own, mapped onto the process layer's
//! settings ([`MpmConfig`]), and the hidden worker subcommand, whose arguments are the
//! process layer's own ([`WorkerConfig`]: the manager writes them, its worker reads them).

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use graceful::demo::CommonArgs;

use crate::mpm::{self, MpmConfig, WorkerConfig};

/// Worker processes, a blocking pool and an async facade, stopped cleanly at any moment.
///
/// Try (with `--time-scale 0.2`): Ctrl+C during "MPM: starting" (the workers' handshake
/// finishes first), while the busy tasks call into the workers, or during
/// "MPM.update: started" (the update in hand is waited for). `kill -9` a worker (its pid
/// is in the log) to watch it be replaced; do it four times to exhaust the restart budget.
/// `--busy-tasks 256` queues hundreds of calls and still stops promptly;
/// `--blocking-calls --busy-tasks 16 --pool-threads 2` fills the pool and still stops
/// promptly; `--unshielded` abandons the calls in hand; `--fail-start worker-2` shows a
/// failed handshake.
#[derive(Parser, Debug)]
#[command(name = "complex", version, after_help = graceful::demo::EXIT_STATUS_HELP)]
#[command(args_conflicts_with_subcommands = true, disable_help_subcommand = true)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,

    #[command(flatten)]
    pub complex: ComplexArgs,

    #[command(subcommand)]
    pub command: Option<Subcommands>,
}

/// The subcommands: only the hidden one the manager runs.
#[derive(Subcommand, Debug)]
pub enum Subcommands {
    /// A worker process, started by `complex` and talked to over stdin/stdout (JSON lines)
    #[command(hide = true)]
    Worker(WorkerConfig),
}

/// `complex`'s own options.
#[derive(Args, Debug, Clone)]
pub struct ComplexArgs {
    /// Worker processes (the MultiProcessManager's)
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1024))]
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
    /// still be prompt. By default a call is sent and awaited on the runtime, no pool thread.
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
    pub inject_fault: Option<mpm::Fault>,
}

impl Cli {
    /// The process layer's settings (`--fail-start worker-N` names the worker whose start
    /// fails on purpose).
    pub fn mpm_config(&self) -> MpmConfig {
        let fail_start = self
            .common
            .fail_start
            .as_deref()
            .and_then(|c| c.strip_prefix("worker-"))
            .and_then(|n| n.parse().ok());
        MpmConfig {
            workers: usize::from(self.complex.workers),
            time_scale: self.common.time_scale,
            log_format: self.common.log_format,
            log_level: self.common.log_level(),
            fail_start,
            fault: self.complex.inject_fault,
            restart_limit: self.complex.restart_limit,
            restart_window: self.complex.restart_window,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use graceful::LogFormat;
    use graceful::demo::TimeScale;
    use tracing_subscriber::filter::LevelFilter;

    #[test]
    fn worker_arguments_round_trip_through_clap() {
        let config = WorkerConfig {
            index: 3,
            time_scale: TimeScale::new(0.25),
            log_format: LogFormat::Json,
            log_level: LevelFilter::WARN,
            fail_start: true,
            fault: Some(mpm::Fault::WorkerIgnoresStop),
        };
        let line = config.command_line();
        let cli = Cli::try_parse_from(std::iter::once("complex".to_string()).chain(line)).unwrap();
        let Some(Subcommands::Worker(args)) = cli.command else {
            panic!("not the worker subcommand: {cli:?}");
        };
        assert_eq!(args, config);
        assert!(
            Cli::try_parse_from(["complex", "worker"]).is_err(),
            "--index is required"
        );
        assert!(Cli::try_parse_from(["complex", "worker", "--index", "0"]).is_err());
    }

    #[test]
    fn the_worker_subcommand_is_hidden() {
        use clap::CommandFactory;
        let help = Cli::command().render_help().to_string();
        assert!(!help.contains("Commands:"), "{help}");
    }
}

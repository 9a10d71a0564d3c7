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
    /// Every worker, once started, writes one 8 KiB log line in small pieces over about
    /// 2.5 s, straight to its stderr: kill it meanwhile to prove a cut-off line never
    /// reaches the run's log.
    SlowLogLine,
}

impl Fault {
    /// The flag's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WorkerIgnoresStop => "worker-ignores-stop",
            Self::SlowLogLine => "slow-log-line",
        }
    }
}

/// The first argument that makes this process a worker: `complex worker --index N ...`.
pub const WORKER_SUBCOMMAND: &str = "worker";

/// What the manager passes to a worker process (`complex worker ...`).
///
/// Parsed by hand, not by clap: the arguments are written by the manager, never by a
/// person, and every worker process skipping clap's code keeps its resident memory (mostly
/// the binary's pages it touches) about a tenth smaller.
#[derive(Debug, Clone)]
pub struct WorkerArgs {
    /// 1-based: the worker is `worker-<index>`.
    pub index: u16,
    /// `--time-scale`, passed down.
    pub time_scale: TimeScale,
    /// `--log-format`, passed down.
    pub log_format: LogFormat,
    /// `--log-level`, passed down.
    pub log_level: LevelFilter,
    /// Refuse to start (`complex --fail-start worker-N`).
    pub fail_start: bool,
    /// A planted fault, passed down.
    pub inject_fault: Option<Fault>,
}

impl WorkerArgs {
    /// The arguments after `worker`, as [`WorkerArgs::to_args`] writes them.
    pub fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut parsed = Self {
            index: 0,
            time_scale: TimeScale::default(),
            log_format: LogFormat::Text,
            log_level: LevelFilter::DEBUG,
            fail_start: false,
            inject_fault: None,
        };
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--index" => parsed.index = value()?.parse().map_err(|_| "--index: not a number")?,
                "--time-scale" => parsed.time_scale = TimeScale::parse(&value()?)?,
                "--log-format" => parsed.log_format = LogFormat::from_str(&value()?, false)?,
                "--log-level" => {
                    parsed.log_level = value()?.parse().map_err(|_| "--log-level: unknown level")?
                }
                "--fail-start" => parsed.fail_start = true,
                "--inject-fault" => parsed.inject_fault = Some(Fault::from_str(&value()?, false)?),
                other => return Err(format!("unexpected argument {other:?}")),
            }
        }
        if parsed.index == 0 {
            return Err("--index N (1 or more) is required".into());
        }
        Ok(parsed)
    }

    /// The command line for `complex worker`, read back by [`WorkerArgs::parse`].
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            WORKER_SUBCOMMAND.into(),
            "--index".into(),
            self.index.to_string(),
            "--time-scale".into(),
            self.time_scale.factor().to_string(),
            "--log-format".into(),
            self.log_format
                .to_possible_value()
                .map(|v| v.get_name().to_owned())
                .unwrap_or_default(),
            "--log-level".into(),
            self.log_level.to_string().to_lowercase(),
        ];
        if self.fail_start {
            args.push("--fail-start".into());
        }
        if let Some(fault) = self.inject_fault {
            args.extend(["--inject-fault".into(), fault.as_str().into()]);
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_arguments_round_trip() {
        let args = WorkerArgs {
            index: 3,
            time_scale: TimeScale::new(0.25),
            log_format: LogFormat::Json,
            log_level: LevelFilter::WARN,
            fail_start: true,
            inject_fault: Some(Fault::WorkerIgnoresStop),
        };
        let line = args.to_args();
        assert_eq!(line[0], WORKER_SUBCOMMAND);
        let back = WorkerArgs::parse(line.into_iter().skip(1)).unwrap();
        assert_eq!(format!("{back:?}"), format!("{args:?}"));
        assert!(WorkerArgs::parse(["--index".to_string()].into_iter()).is_err());
        assert!(WorkerArgs::parse(std::iter::empty()).is_err());
    }
}

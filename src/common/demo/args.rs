//! The command-line options both demos share, for `#[command(flatten)]`: the run's
//! [`Settings`], the log's format and level, and the demo knobs.

use std::time::Duration;

use clap::Args;
use tracing_subscriber::filter::LevelFilter;

use crate::logging::LogFormat;
use crate::runner::Settings;

use super::TimeScale;

/// Options every binary of the suite takes.
#[derive(Args, Clone, Debug)]
pub struct CommonArgs {
    /// Multiply every simulated delay by F (0 skips them: only the shutdown machinery runs)
    #[arg(long, value_name = "F", default_value = "1", value_parser = TimeScale::parse, allow_negative_numbers = true)]
    pub time_scale: TimeScale,

    /// Stop by itself after running for this long (e.g. 500ms, 5s); exit status 0
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub run_for: Option<Duration>,

    /// Bound on the whole stop; past it the exit is forced, naming what had not stopped
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub stop_timeout: Duration,

    /// The Nth shutdown signal forces the exit (0: never)
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub force_after: u32,

    /// Log lines for people (text) or for tools (json, one object per line)
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Lowest level logged: error, warn, info, debug, trace or off (RUST_LOG overrides);
    /// by default info for text (the lifecycle stands out) and debug for json (tools get
    /// every call)
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<LevelFilter>,

    /// Make this component's start fail, to watch the already-started ones stop in reverse
    #[arg(long, value_name = "COMPONENT")]
    pub fail_start: Option<String>,
}

impl CommonArgs {
    /// The runner's settings these options give.
    pub fn settings(&self) -> Settings {
        Settings {
            run_for: self.run_for,
            stop_timeout: self.stop_timeout,
            force_after: self.force_after,
        }
    }

    /// `--log-level`, or the format's default: info for people, debug for tools.
    pub fn log_level(&self) -> LevelFilter {
        self.log_level.unwrap_or(match self.log_format {
            LogFormat::Text => LevelFilter::INFO,
            LogFormat::Json => LevelFilter::DEBUG,
        })
    }

    /// Whether `--fail-start` names `component`.
    pub fn fails(&self, component: &str) -> bool {
        self.fail_start.as_deref() == Some(component)
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (expected e.g. 250ms, 2s, 1m)"))
}

/// The exit statuses, for each binary's `--help`.
pub const EXIT_STATUS_HELP: &str = "\
Exit status: 0 after --run-for; after a signal, the process ends by that same signal, even \
when the third signal forced it (a shell shows 128+N: 129 for SIGHUP, 130 for Ctrl+C, 143 \
for SIGTERM; as PID 1 of a container it exits 128+N itself); 1 when a start fails, on a \
fatal error or a forced stop without a signal; 2 on a bad command line.";

/// Checks `--fail-start` against the binary's components; the error reads after "error: ".
pub fn check_fail_start(
    args: &CommonArgs,
    known: impl Fn(&str) -> bool,
    expected: &str,
) -> Result<(), String> {
    match &args.fail_start {
        Some(component) if !known(component) => Err(format!(
            "invalid value '{component}' for '--fail-start <COMPONENT>': expected one of {expected}"
        )),
        _ => Ok(()),
    }
}

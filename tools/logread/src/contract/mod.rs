//! The contract (docs/contract.md) as checks over a run's log: the one judge of a run, for
//! the integration tests and the torture tool alike, so a promise is written down once and
//! both hold the binaries to the same words.
//!
//! Each check is a pure function of the parsed lines and of what the driver knows of the
//! run besides its log ([`Facts`]: how it ended, which signals went out), and returns
//! [`Violation`]s rather than panicking: the torture tool reports them per invariant, the
//! tests fail with the whole log. Which checks apply to a run is the driver's call (a run
//! whose log was cut cannot be judged on its pairs), so there is no "check everything" here.

mod exit;
mod lifecycle;
mod output;
#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

use crate::{Event, Signal};

pub use exit::{exit_event_says, exit_last, exit_status, stop_time};
pub use lifecycle::{no_stop_before_start_completed, pairs, stop_order};
pub use output::{PANIC_MARKERS, clean_output};

/// A promise of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Invariant {
    /// The process ends as contracted: by the first signal it received; 0 after
    /// `--run-for`; 1 after a fatal error; and as its exit event says.
    ExitStatus,
    /// Only JSON log lines, no panic or backtrace, nothing on stdout.
    CleanOutput,
    /// No process of the run outlives the main process.
    NoLeftovers,
    /// Every component that logged `started` logged `stopped` or `failed` afterwards.
    Lifecycle,
    /// Services stop in reverse start order; workers stop before the manager reports stopped.
    StopOrder,
    /// The main process's exit event is the last line of the run.
    ExitLast,
    /// The stop finished within `--stop-timeout`, or was forced by the `--force-after`th signal.
    StopTimeout,
    /// The driver itself could not run or observe the run.
    Tool,
}

impl Invariant {
    /// Every invariant, in the report's order.
    pub const ALL: [Invariant; 8] = [
        Self::ExitStatus,
        Self::CleanOutput,
        Self::NoLeftovers,
        Self::Lifecycle,
        Self::StopOrder,
        Self::ExitLast,
        Self::StopTimeout,
        Self::Tool,
    ];

    /// The invariant's short name, as reports spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::ExitStatus => "exit-status",
            Self::CleanOutput => "clean-output",
            Self::NoLeftovers => "no-leftovers",
            Self::Lifecycle => "lifecycle",
            Self::StopOrder => "stop-order",
            Self::ExitLast => "exit-last",
            Self::StopTimeout => "stop-timeout",
            Self::Tool => "tool",
        }
    }

    /// What it promises, in one line.
    pub fn promise(self) -> &'static str {
        match self {
            Self::ExitStatus => "ends by the first signal received; 0 after --run-for; 1 on a fatal error",
            Self::CleanOutput => "only JSON lines; no panic, backtrace or stdout text",
            Self::NoLeftovers => "no process of the run outlives the main process",
            Self::Lifecycle => "every `started` is followed by `stopped` or `failed`",
            Self::StopOrder => "services stop in reverse order; workers before MPM's `stopped`",
            Self::ExitLast => "the exit event is the last line of the run",
            Self::StopTimeout => "the stop ends within --stop-timeout unless forced by signals",
            Self::Tool => "the tool could run and observe the trial",
        }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed check.
#[derive(Clone, Debug)]
pub struct Violation {
    /// Which promise.
    pub invariant: Invariant,
    /// What was seen, in words.
    pub detail: String,
    /// Indices into the run's lines that show it.
    pub lines: Vec<usize>,
}

impl Violation {
    /// A violation of `invariant`, shown by `lines`.
    pub fn new(invariant: Invariant, detail: impl Into<String>, lines: Vec<usize>) -> Self {
        Self {
            invariant,
            detail: detail.into(),
            lines,
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.invariant, self.detail)
    }
}

/// The verdict on a run: `Ok` without violations, else every one in words, a line each,
/// for a caller that fails on any.
pub fn verdict(violations: impl IntoIterator<Item = Violation>) -> Result<(), String> {
    let lines: Vec<String> = violations.into_iter().map(|v| v.to_string()).collect();
    if lines.is_empty() {
        Ok(())
    } else {
        Err(lines.join("\n"))
    }
}

/// The end of a log as the contract wants it: the main process's exit event logged once, as
/// the very last line, saying `status` and `signal` when the caller knows them.
pub fn exit_as(lines: &[Event], status: Option<i64>, signal: Option<&str>) -> Result<(), String> {
    let said = status.map(|status| exit_event_says(lines, status, signal));
    verdict(exit_last(lines).into_iter().chain(said.into_iter().flatten()))
}

/// How the main process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// `exit(code)`.
    Code(i32),
    /// Killed by this signal (its default action, or SIGKILL).
    Signal(i32),
}

impl Ended {
    /// As a shell reports it: the code, or 128 + the signal.
    pub fn shell_status(self) -> i32 {
        match self {
            Self::Code(code) => code,
            Self::Signal(signal) => 128 + signal,
        }
    }
}

/// A signal sent to the main process (alone or with its group).
#[derive(Clone, Copy, Debug)]
pub struct Sent {
    /// Since the spawn.
    pub at: Duration,
    /// Which.
    pub signal: Signal,
}

/// What a driver knows of a run besides its log. Times count from the spawn, like the
/// lines' [`at`](crate::Event::at).
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// The main process's pid.
    pub main_pid: i64,
    /// When and how the main process ended, once reaped.
    pub ended: Option<(Duration, Ended)>,
    /// The shutdown signals sent to the main process, in order.
    pub sent: Vec<Sent>,
    /// The main process was SIGKILLed: it could not finish its own components.
    pub main_killed: bool,
    /// When the main process was held stopped (SIGSTOP, then SIGCONT): a signal sent
    /// meanwhile reaches it only at the SIGCONT.
    pub held_stopped: Option<(Duration, Duration)>,
    /// `--stop-timeout`.
    pub stop_timeout: Duration,
    /// Time the run was held stopped on purpose, which a stop may take on top.
    pub extra_time: Duration,
    /// `--force-after`: the signal count that forces the exit.
    pub force_after: u32,
    /// How many `event=panic` lines the driver planted (`--inject-fault worker-panics`).
    pub panics_planted: usize,
}

impl Facts {
    /// When a signal sent to the main process at `sent` could first act: then, or at the
    /// SIGCONT if the process was held stopped meanwhile.
    pub fn deliverable_at(&self, sent: Duration) -> Duration {
        match self.held_stopped {
            Some((stopped, continued)) if stopped <= sent && sent < continued => continued,
            _ => sent,
        }
    }
}

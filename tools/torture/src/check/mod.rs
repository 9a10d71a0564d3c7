//! The contract (docs/contract.md), as checks over one trial's observation: each failed check
//! names its invariant, says what it saw, and points at the lines that show it.
//!
//! The checks are pure functions of the [`Observation`], so each is unit-tested on
//! synthetic logs (see `tests.rs`): the tool's own correctness does not rest on the suite
//! behaving.

mod exit;
mod lifecycle;
mod output;
#[cfg(test)]
mod tests;

use std::fmt;

use crate::trial::Observation;

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
    /// The tool itself could not run or observe the trial.
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

    /// The invariant's short name, as the report and the failure files spell it.
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
    /// Indices into the observation's lines that show it.
    pub lines: Vec<usize>,
}

impl Violation {
    fn new(invariant: Invariant, detail: impl Into<String>, lines: Vec<usize>) -> Self {
        Self {
            invariant,
            detail: detail.into(),
            lines,
        }
    }
}

/// Checks one trial against every invariant.
pub fn check(observation: &Observation) -> Vec<Violation> {
    let mut violations = Vec::new();
    if let Some(error) = &observation.tool_error {
        violations.push(Violation::new(Invariant::Tool, error.clone(), Vec::new()));
        if observation.main_pid == 0 {
            return violations;
        }
    }
    violations.extend(output::check(observation));
    violations.extend(exit::check_stop_time(observation));
    if !observation.leftovers.is_empty() {
        let list: Vec<String> = observation
            .leftovers
            .iter()
            .map(|l| format!("pid {} ({}) `{}`", l.pid, l.state, l.cmdline))
            .collect();
        let bound = if observation.main_killed() {
            format!(
                "{:?} after the main process was SIGKILLed",
                observation.plan.orphan_bound()
            )
        } else {
            "after the main process ended".to_owned()
        };
        violations.push(Violation::new(
            Invariant::NoLeftovers,
            format!("still alive {bound}: {}", list.join("; ")),
            Vec::new(),
        ));
    }
    // A run the tool had to kill has no end to check: the stop-timeout violation says it all.
    if !observation.hung {
        let log = completeness(observation);
        violations.extend(exit::check_status(observation, log != Log::Complete));
        if log != Log::Cut {
            violations.extend(exit::check_last(observation));
        }
        // After kill-main nothing more of the run can be seen: the workers' lines travel
        // through the main process, the run's one writer. That they noticed and left is
        // proven by `no-leftovers` within the orphan bound, not by their last lines.
        if log == Log::Complete && !observation.main_killed() {
            violations.extend(lifecycle::check_pairs(observation));
            violations.extend(lifecycle::check_order(observation));
        }
    }
    violations
}

/// How much of the run's log the tool saw, which decides the checks that read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Log {
    /// Every line.
    Complete,
    /// A stalled sink made a process drop lines (it logged `event=log-dropped`): the
    /// lifecycle pairs and order cannot be judged, but the exit event is still last.
    Dropped,
    /// The tool's stall outlasted the main process, which waits only a bounded time for its
    /// sink: the end of the log, the exit event too, may be lost.
    Cut,
}

/// See [`Log`].
pub fn completeness(observation: &Observation) -> Log {
    let ended_at = observation.ended.map(|(at, _)| at);
    if observation.plan.environment.log_may_be_cut(ended_at) {
        Log::Cut
    } else if observation
        .lines
        .iter()
        .any(|l| l.str("event") == Some("log-dropped"))
    {
        Log::Dropped
    } else {
        Log::Complete
    }
}

//! Which of the contract's checks (`logread::contract`, shared with the integration tests)
//! one trial can be judged on, given what the tool saw: a run it had to kill has no end, a
//! log cut by a stalled sink no pairs, a SIGKILLed main process no exit event.
//!
//! The composition is a pure function of the [`Observation`], so it is unit-tested on
//! synthetic logs (see `tests.rs`): the tool's own correctness does not rest on the suite
//! behaving.

#[cfg(test)]
mod tests;

use logread::contract::{self, Facts, Sent};
pub use logread::contract::{Invariant, Violation};

use crate::trial::{Observation, Target};

/// Checks one trial against every invariant it can be judged on.
pub fn check(observation: &Observation) -> Vec<Violation> {
    let mut violations = Vec::new();
    if let Some(error) = &observation.tool_error {
        violations.push(Violation::new(Invariant::Tool, error.clone(), Vec::new()));
        if observation.main_pid == 0 {
            return violations;
        }
    }
    let lines = &observation.lines;
    let facts = facts(observation);
    violations.extend(contract::clean_output(lines, &observation.stdout, &facts));
    if observation.hung {
        violations.push(Violation::new(
            Invariant::StopTimeout,
            "the main process never ended: the tool killed it",
            Vec::new(),
        ));
    } else {
        violations.extend(contract::stop_time(lines, &facts));
    }
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
        violations.extend(contract::exit_status(lines, &facts, log != Log::Complete));
        if log != Log::Cut && exit_event_due(observation) {
            violations.extend(contract::exit_last(lines));
        }
        // After kill-main nothing more of the run can be seen: the workers' lines travel
        // through the main process, the run's one writer. That they noticed and left is
        // proven by `no-leftovers` within the orphan bound, not by their last lines.
        if log == Log::Complete && !observation.main_killed() {
            violations.extend(contract::pairs(lines));
            violations.extend(contract::stop_order(lines, &SERVICES));
        }
    }
    violations
}

/// The services of both binaries, in start order (docs/contract.md).
const SERVICES: [&str; 2] = ["AsyncService1", "AsyncService2"];

/// What the contract's checks need to know of the trial besides its log.
fn facts(observation: &Observation) -> Facts {
    let plan = &observation.plan;
    Facts {
        main_pid: i64::from(observation.main_pid),
        ended: observation.ended,
        sent: observation
            .sent
            .iter()
            .filter(|s| matches!(s.target, Target::Group | Target::Main))
            .map(|s| Sent {
                at: s.at,
                signal: s.sig,
            })
            .collect(),
        main_killed: observation.main_killed(),
        held_stopped: observation.held_stopped,
        stop_timeout: plan.stop_timeout,
        extra_time: plan.environment.extra_time(),
        force_after: plan.force_after,
        panics_planted: 0,
    }
}

/// Whether the run owes an exit event: not when its main process was SIGKILLed, nor when a
/// signal killed it before it said anything (before signal intake, which is contracted),
/// nor when it never ended.
fn exit_event_due(observation: &Observation) -> bool {
    let silent_death = !observation.lines.iter().any(|l| l.is_main())
        && matches!(observation.ended, Some((_, contract::Ended::Signal(_))))
        && !observation.sent.is_empty();
    !(observation.main_killed() || silent_death || observation.ended.is_none())
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
    } else if observation.lines.iter().any(|l| l.event() == Some("log-dropped")) {
        Log::Dropped
    } else {
        Log::Complete
    }
}

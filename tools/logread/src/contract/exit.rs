//! How the run ended: its status, its last line, and how long its stop took.
//!
//! **Which signal decides.** The process must end by the first shutdown signal it
//! *received*, which is not always the first one sent: a signal may arrive before signal
//! intake is in place (then the process dies by it silently, with no line at all, and that
//! is contracted) or after the exit event sealed the log (then it is never logged and the
//! status is the exit event's). The first signal the main process *logged* is the truth;
//! the only way to lose one is to neither log it nor die by it while the process still
//! had a long way to go, which [`LOST_SIGNAL_SLACK`] detects.

use std::time::Duration;

use super::{Ended, Facts, Invariant, Violation};
use crate::{Event, Signal};

/// A signal sent this long before the exit event, yet never logged, was lost: the handler
/// logs within microseconds, so even a loaded machine does not explain a quarter second.
const LOST_SIGNAL_SLACK: Duration = Duration::from_millis(250);

/// The time a stop may take beyond `--stop-timeout`: the forced exit itself (killing and
/// reaping the workers, up to 1 s) and scheduling on a loaded machine.
const STOP_SLACK: Duration = Duration::from_millis(2500);

fn describe(ended: Ended) -> String {
    match ended {
        Ended::Code(code) => format!("exited with status {code}"),
        Ended::Signal(signal) => format!("ended by {} (status {})", Signal::name_of(signal), 128 + signal),
    }
}

/// The process ended as contracted: by the first shutdown signal it logged receiving; by
/// the first one sent if it died before saying anything (the default action, before signal
/// intake); 1 after a fatal error or a failed start; 0 otherwise. And its exit event, if
/// any, says how it ended.
///
/// `lossy`: lines may be missing (dropped by a stalled sink, or cut by the driver's own
/// stall), so a signal never logged may have been logged and lost: then only the end's
/// consistency is judged (the exit event's truth, and an end by a signal that was sent, or
/// by a status the contract allows).
pub fn exit_status(lines: &[Event], facts: &Facts, lossy: bool) -> Vec<Violation> {
    let Some((ended_at, ended)) = facts.ended else {
        return Vec::new();
    };
    let exit_index = lines.iter().rposition(Event::is_exit);
    let signal = match ended {
        Ended::Signal(number) => Some(Signal::name_of(number)),
        Ended::Code(_) => None,
    };
    let mut violations = exit_event_says(lines, i64::from(ended.shell_status()), signal.as_deref());
    let mut fail = |detail: String, at: Vec<usize>| {
        violations.push(Violation::new(Invariant::ExitStatus, detail, at));
    };

    if facts.main_killed {
        // SIGKILL cannot be handled; unless the process had already finished by itself
        // (its exit event then matches its status, checked above), it dies by it.
        if exit_index.is_none() && ended != Ended::Signal(libc::SIGKILL) {
            fail(format!("SIGKILLed, yet it {}", describe(ended)), Vec::new());
        }
        return violations;
    }

    let signals_to_main = &facts.sent;
    let first_logged = lines
        .iter()
        .enumerate()
        .find_map(|(i, l)| l.received_signal().map(|s| (i, s)));
    let main_spoke = lines.iter().any(|l| l.is_main());
    if lossy && first_logged.is_none() {
        let allowed = match ended {
            Ended::Code(code) => matches!(code, 0 | 1),
            Ended::Signal(signal) => signals_to_main.iter().any(|s| s.signal.number() == signal),
        };
        if !allowed {
            fail(
                format!(
                    "the process {} at {ended_at:?}: no signal sent can explain it (part of the log was lost to the stalled sink)",
                    describe(ended)
                ),
                Vec::new(),
            );
        }
        return violations;
    }

    let (expected, why, at) = if let Some((index, name)) = first_logged {
        let Some(signal) = Signal::from_name(name) else {
            fail(
                format!("the main process logged an unknown signal {name:?}"),
                vec![index],
            );
            return violations;
        };
        (
            Ended::Signal(signal.number()),
            format!("the first signal it logged, {name}"),
            vec![index],
        )
    } else if let (false, Some(first)) = (main_spoke, signals_to_main.first()) {
        // Before intake: the default action, silently. Contracted.
        (
            Ended::Signal(first.signal.number()),
            format!("{} arrived before any line (default action)", first.signal.name()),
            Vec::new(),
        )
    } else {
        let fatal = lines
            .iter()
            .position(|l| l.is_main() && (l.str("reason") == Some("fatal") || l.is("app", "failed")));
        if let (Some(exit), Some(lost)) = (exit_index, signals_to_main.first()) {
            // A process held stopped (SIGSTOP by the environment) takes it only at the SIGCONT.
            if lines[exit].at > facts.deliverable_at(lost.at) + LOST_SIGNAL_SLACK {
                fail(
                    format!(
                        "{} sent at {:?} was never logged, and the exit event came {:?} later",
                        lost.signal.name(),
                        lost.at,
                        lines[exit].at - lost.at
                    ),
                    vec![exit],
                );
            }
        }
        match fatal {
            Some(index) => (
                Ended::Code(1),
                "a fatal error or a failed start, no signal".to_owned(),
                vec![index],
            ),
            None => (
                Ended::Code(0),
                "--run-for elapsed, no signal".to_owned(),
                Vec::new(),
            ),
        }
    };
    if ended != expected {
        fail(
            format!(
                "the process {} at {ended_at:?}; expected it {} ({why})",
                describe(ended),
                describe(expected)
            ),
            at,
        );
    }
    violations
}

/// The exit event tells how the run ended: the last `component=app phase=exit` says
/// `status` and names `signal` (and no signal when `None`). A log without one is
/// [`exit_last`]'s to judge.
pub fn exit_event_says(lines: &[Event], status: i64, signal: Option<&str>) -> Vec<Violation> {
    let Some(index) = lines.iter().rposition(Event::is_exit) else {
        return Vec::new();
    };
    let event = &lines[index];
    let mut violations = Vec::new();
    if event.int("status") != Some(status) {
        violations.push(Violation::new(
            Invariant::ExitStatus,
            format!(
                "the exit event says status {:?} but the process ended with {status}",
                event.int("status")
            ),
            vec![index],
        ));
    }
    if event.signal() != signal {
        violations.push(Violation::new(
            Invariant::ExitStatus,
            format!(
                "the exit event names signal {:?} but the process ended by {signal:?}",
                event.signal()
            ),
            vec![index],
        ));
    }
    violations
}

/// The main process's exit event is logged exactly once, as the very last line of the run,
/// from any process. (A run SIGKILLed, or killed by a signal before it said anything, has
/// none: whether one is due is the driver's call.)
pub fn exit_last(lines: &[Event]) -> Vec<Violation> {
    let exits: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].is_exit()).collect();
    let detail = match exits.as_slice() {
        [] => "the main process wrote no exit event".to_owned(),
        [only] if *only + 1 == lines.len() => return Vec::new(),
        [only] => {
            let after: Vec<String> = lines[only + 1..]
                .iter()
                .take(3)
                .map(|l| format!("{}: {}", l.process().unwrap_or("?"), l.message()))
                .collect();
            format!(
                "{} line(s) after the exit event, e.g. {}",
                lines.len() - only - 1,
                after.join(" | ")
            )
        }
        several => format!("{} exit events", several.len()),
    };
    let mut shown = exits.clone();
    if let Some(&last) = exits.last() {
        shown.extend(last + 1..lines.len().min(last + 4));
    }
    vec![Violation::new(Invariant::ExitLast, detail, shown)]
}

/// Only the `--force-after`th signal forces the exit, and otherwise the stop ends within
/// `--stop-timeout` (plus slack, plus the time the run was held stopped on purpose).
pub fn stop_time(lines: &[Event], facts: &Facts) -> Vec<Violation> {
    let mut violations = Vec::new();
    // Contracted: the `--force-after`th signal, logged `action=forced` with its count, comes
    // first; the forced-exit event (`cause`) follows. Judged on fields, not on the wording.
    let signals_sent = facts.sent.len();
    let forcing_signal = lines
        .iter()
        .position(|l| l.is_main() && l.action() == Some("forced"));
    if let Some(index) = forcing_signal {
        let count = lines[index].int("count");
        if count != Some(i64::from(facts.force_after)) || signals_sent < facts.force_after as usize {
            violations.push(Violation::new(
                Invariant::StopTimeout,
                format!(
                    "the exit was forced at signal count {count:?} with --force-after {} and {signals_sent} signal(s) sent",
                    facts.force_after
                ),
                vec![index],
            ));
        }
    }
    for (index, line) in lines.iter().enumerate().filter(|(_, l)| l.is_forced_exit()) {
        if forcing_signal.is_none_or(|signal| signal > index) {
            let cause = line.str("cause").unwrap_or_default();
            violations.push(Violation::new(
                Invariant::StopTimeout,
                format!("the exit was forced, and not by the --force-after'th signal: {cause}"),
                vec![index],
            ));
        }
    }
    let stop_began = lines.iter().position(|l| l.is_main() && l.is("app", "stopping"));
    if let (Some(index), Some((ended_at, _))) = (stop_began, facts.ended) {
        let took = ended_at.saturating_sub(lines[index].at);
        if took > facts.stop_timeout + STOP_SLACK + facts.extra_time {
            violations.push(Violation::new(
                Invariant::StopTimeout,
                format!(
                    "the stop took {took:?}, past --stop-timeout {:?} (and {STOP_SLACK:?} of slack)",
                    facts.stop_timeout
                ),
                vec![index],
            ));
        }
    }
    violations
}

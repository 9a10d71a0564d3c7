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

use super::{Invariant, Violation};
use crate::run::Ended;
use crate::scenario::Sig;
use crate::trial::{Observation, Target};

/// A signal sent this long before the exit event, yet never logged, was lost: the handler
/// logs within microseconds, so even a loaded machine does not explain a quarter second.
const LOST_SIGNAL_SLACK: Duration = Duration::from_millis(250);

/// The time a stop may take beyond `--stop-timeout`: the forced exit itself (killing and
/// reaping the workers, up to 1 s) and scheduling on a loaded machine.
const STOP_SLACK: Duration = Duration::from_millis(2500);

fn describe(ended: Ended) -> String {
    match ended {
        Ended::Code(code) => format!("exited with status {code}"),
        Ended::Signal(signal) => format!("ended by {} (status {})", Sig::name_of(signal), 128 + signal),
    }
}

/// `lossy`: lines may be missing (dropped by a stalled sink, or cut by the tool's own
/// stall), so a signal never logged may have been logged and lost: then only the end's
/// consistency is judged (the exit event's truth, and an end by a signal that was sent, or
/// by a status the contract allows).
pub fn check_status(observation: &Observation, lossy: bool) -> Vec<Violation> {
    let Some((ended_at, ended)) = observation.ended else {
        return Vec::new();
    };
    let lines = &observation.lines;
    let exit_index = lines.iter().rposition(|l| l.is_exit());
    let mut violations = Vec::new();
    let mut fail = |detail: String, at: Vec<usize>| {
        violations.push(Violation::new(Invariant::ExitStatus, detail, at));
    };

    // The exit event, if any, must tell the truth about the end.
    if let Some(index) = exit_index {
        let event = &lines[index];
        let said = event.int("status");
        if said != Some(i64::from(ended.shell_status())) {
            fail(
                format!(
                    "the exit event says status {said:?} but the process {}",
                    describe(ended)
                ),
                vec![index],
            );
        }
        if let Ended::Signal(signal) = ended {
            if event.str("signal") != Some(Sig::name_of(signal).as_str()) {
                fail(
                    format!(
                        "the exit event names signal {:?} but the process {}",
                        event.str("signal"),
                        describe(ended)
                    ),
                    vec![index],
                );
            }
        }
    }

    if observation.main_killed() {
        // SIGKILL cannot be handled; unless the process had already finished by itself
        // (its exit event then matches its status, checked above), it dies by it.
        if exit_index.is_none() && ended != Ended::Signal(libc::SIGKILL) {
            fail(format!("SIGKILLed, yet it {}", describe(ended)), Vec::new());
        }
        return violations;
    }

    let signals_to_main: Vec<_> = observation
        .sent
        .iter()
        .filter(|s| matches!(s.target, Target::Group | Target::Main))
        .collect();
    let first_logged = lines
        .iter()
        .enumerate()
        .find_map(|(i, l)| l.received_signal().map(|s| (i, s)));
    let main_spoke = lines.iter().any(|l| l.is_main());
    if lossy && first_logged.is_none() {
        let allowed = match ended {
            Ended::Code(code) => matches!(code, 0 | 1),
            Ended::Signal(signal) => signals_to_main.iter().any(|s| s.sig.number() == signal),
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
        let Some(sig) = Sig::from_name(name) else {
            fail(
                format!("the main process logged an unknown signal {name:?}"),
                vec![index],
            );
            return violations;
        };
        (
            Ended::Signal(sig.number()),
            format!("the first signal it logged, {name}"),
            vec![index],
        )
    } else if let (false, Some(first)) = (main_spoke, signals_to_main.first()) {
        // Before intake: the default action, silently. Contracted.
        (
            Ended::Signal(first.sig.number()),
            format!("{} arrived before any line (default action)", first.sig.name()),
            Vec::new(),
        )
    } else {
        let fatal = lines
            .iter()
            .position(|l| l.is_main() && (l.str("reason") == Some("fatal") || l.is("app", "failed")));
        if let (Some(exit), Some(lost)) = (exit_index, signals_to_main.first()) {
            // A process held stopped (SIGSTOP by the environment) takes it only at the SIGCONT.
            if lines[exit].at > observation.deliverable_at(lost.at) + LOST_SIGNAL_SLACK {
                fail(
                    format!(
                        "{} sent at {:?} was never logged, and the exit event came {:?} later",
                        lost.sig.name(),
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

pub fn check_last(observation: &Observation) -> Vec<Violation> {
    let lines = &observation.lines;
    let silent_death = !lines.iter().any(|l| l.is_main())
        && matches!(observation.ended, Some((_, Ended::Signal(_))))
        && !observation.sent.is_empty();
    if observation.main_killed() || silent_death || observation.ended.is_none() {
        return Vec::new();
    }
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

pub fn check_stop_time(observation: &Observation) -> Vec<Violation> {
    let plan = &observation.plan;
    let lines = &observation.lines;
    let mut violations = Vec::new();
    if observation.hung {
        violations.push(Violation::new(
            Invariant::StopTimeout,
            "the main process never ended: the tool killed it".to_owned(),
            Vec::new(),
        ));
        return violations;
    }
    // Contracted: the `--force-after`th signal, logged `action=forced` with its count, comes
    // first; the forced-exit event (`cause`) follows. Judged on fields, not on the wording.
    let signals_sent = observation
        .sent
        .iter()
        .filter(|s| matches!(s.target, Target::Group | Target::Main))
        .count();
    let forcing_signal = lines
        .iter()
        .position(|l| l.is_main() && l.str("action") == Some("forced"));
    if let Some(index) = forcing_signal {
        let count = lines[index].int("count");
        if count != Some(i64::from(plan.force_after)) || signals_sent < plan.force_after as usize {
            violations.push(Violation::new(
                Invariant::StopTimeout,
                format!(
                    "the exit was forced at signal count {count:?} with --force-after {} and {signals_sent} signal(s) sent",
                    plan.force_after
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
    if let (Some(index), Some((ended_at, _))) = (stop_began, observation.ended) {
        let took = ended_at.saturating_sub(lines[index].at);
        // A run kept stopped (SIGSTOP) by the environment is that much later.
        let extra = plan.environment.extra_time();
        if took > plan.stop_timeout + STOP_SLACK + extra {
            violations.push(Violation::new(
                Invariant::StopTimeout,
                format!(
                    "the stop took {took:?}, past --stop-timeout {:?} (and {STOP_SLACK:?} of slack)",
                    plan.stop_timeout
                ),
                vec![index],
            ));
        }
    }
    violations
}

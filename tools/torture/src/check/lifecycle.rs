//! Lifecycle events: every start is answered by a stop or a failure, in the right order.
//!
//! Events are paired per component name in line order, so a worker's incarnations pair up
//! one after the other: `worker-2 started` (its own line), `worker-2 failed` (the manager's
//! line, after a SIGKILL), `worker-2 starting`/`started` again (the replacement, a new pid).

use std::collections::BTreeMap;

use super::{Invariant, Violation};
use crate::logs::Line;
use crate::trial::Observation;

/// The services of both binaries, in start order (docs/contract.md).
const SERVICES: [&str; 2] = ["AsyncService1", "AsyncService2"];

fn is_worker(component: &str) -> bool {
    component.starts_with("worker-")
}

fn is_open(phase: &str) -> bool {
    matches!(phase, "starting" | "started" | "stopping")
}

/// The lifecycle events of `lines`: (index, component, phase), `exit` left out.
fn events(lines: &[Line]) -> impl Iterator<Item = (usize, &str, &str)> {
    lines.iter().enumerate().filter_map(|(index, line)| {
        let (component, phase) = (line.component()?, line.phase()?);
        matches!(phase, "starting" | "started" | "stopping" | "stopped" | "failed")
            .then_some((index, component, phase))
    })
}

pub fn check_pairs(observation: &Observation) -> Vec<Violation> {
    let mut violations = Vec::new();
    // name -> (last phase, index of the line that opened the current incarnation)
    let mut state: BTreeMap<&str, (&str, usize)> = BTreeMap::new();
    for (index, component, phase) in events(&observation.lines) {
        let previous = state.get(component).copied();
        match (phase, previous) {
            ("starting", Some((open, opened))) if is_open(open) => violations.push(Violation::new(
                Invariant::Lifecycle,
                format!(
                    "{component} is starting again while the incarnation of line {} is still {open}",
                    opened + 1
                ),
                vec![opened, index],
            )),
            _ => {}
        }
        let opened = match (phase, previous) {
            ("starting", _) | (_, None) => index,
            (_, Some((_, opened))) => opened,
        };
        state.insert(component, (phase, opened));
    }
    // The SIGKILLed main process cannot finish its own components; its workers must still
    // finish theirs (they see their parent gone and stop).
    let main_killed = observation.main_killed();
    for (component, (phase, opened)) in state {
        let excused = main_killed && !is_worker(component);
        if is_open(phase) && !excused {
            let last = observation.lines.len().saturating_sub(1);
            violations.push(Violation::new(
                Invariant::Lifecycle,
                format!(
                    "{component} (since line {}) was left `{phase}`: never `stopped` or `failed`",
                    opened + 1
                ),
                vec![opened, last],
            ));
        }
    }
    violations
}

pub fn check_order(observation: &Observation) -> Vec<Violation> {
    let lines = &observation.lines;
    let mut violations = Vec::new();
    let first = |component: &str, phases: &[&str], from: usize| {
        lines
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, l)| {
                l.is_main() && l.component() == Some(component) && phases.contains(&l.phase().unwrap_or(""))
            })
            .map(|(i, _)| i)
    };

    // Reverse start order: a later service has finished before an earlier one begins to stop.
    for (earlier_rank, earlier) in SERVICES.iter().enumerate() {
        let Some(stopping) = first(earlier, &["stopping"], 0) else {
            continue;
        };
        for later in &SERVICES[earlier_rank + 1..] {
            let Some(started) = first(later, &["started"], 0).filter(|&s| s < stopping) else {
                continue;
            };
            match first(later, &["stopped", "failed"], started) {
                Some(done) if done < stopping => {}
                done => violations.push(Violation::new(
                    Invariant::StopOrder,
                    format!(
                        "{earlier} began stopping (line {}) before {later} had stopped ({})",
                        stopping + 1,
                        done.map_or("never".to_owned(), |d| format!("line {}", d + 1))
                    ),
                    [Some(started), Some(stopping), done]
                        .into_iter()
                        .flatten()
                        .collect(),
                )),
            }
        }
    }

    // Every worker's end comes before the manager reports itself stopped.
    if let Some(mpm_stopped) = first("MPM", &["stopped"], 0) {
        let mut open: BTreeMap<&str, usize> = BTreeMap::new();
        for (index, component, phase) in events(lines).filter(|(_, c, _)| is_worker(c)) {
            if index > mpm_stopped {
                if phase == "starting" {
                    violations.push(Violation::new(
                        Invariant::StopOrder,
                        format!(
                            "{component} started after MPM reported stopped (line {})",
                            mpm_stopped + 1
                        ),
                        vec![mpm_stopped, index],
                    ));
                }
                continue;
            }
            if is_open(phase) {
                open.entry(component).or_insert(index);
            } else {
                open.remove(component);
            }
        }
        for (worker, since) in open {
            violations.push(Violation::new(
                Invariant::StopOrder,
                format!(
                    "MPM reported stopped (line {}) while {worker} (line {}) had not stopped or failed",
                    mpm_stopped + 1,
                    since + 1
                ),
                vec![since, mpm_stopped],
            ));
        }
    }
    violations
}

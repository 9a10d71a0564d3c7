//! Lifecycle events: every start is answered by a stop or a failure, in the right order.
//!
//! Pairing goes per *incarnation*: a replacement worker takes its predecessor's name
//! (`worker-2`), so an answer must come from the same name *and* pid, or else the
//! replacement's `stopped` would vouch for the worker that was killed. A worker killed by
//! SIGKILL cannot speak for itself: then its parent's `component=worker-N phase=failed`,
//! whose cause names the worker's pid, is the answer.

use super::{Invariant, Violation};
use crate::{Event, mentions_pid};

fn is_worker(component: &str) -> bool {
    component.starts_with("worker-")
}

/// The lifecycle events of `lines`: (index, component, phase), `exit` left out.
fn events(lines: &[Event]) -> impl Iterator<Item = (usize, &str, &str)> {
    lines.iter().enumerate().filter_map(|(index, line)| {
        let (component, phase) = (line.component()?, line.phase()?);
        matches!(phase, "starting" | "started" | "stopping" | "stopped" | "failed")
            .then_some((index, component, phase))
    })
}

/// Whether `a` and `b` come from the same process incarnation. There is one main process per
/// run, so its name is enough; a worker's name is shared by its replacements, so its pid is
/// needed too.
fn same_incarnation(a: &Event, b: &Event) -> bool {
    a.process() == b.process() && (a.is_main() || a.pid() == b.pid())
}

/// Whether `report` is the main process saying `event`'s worker process failed: a
/// `phase=failed` from `main` whose cause (or message) names that worker's pid.
fn reported_by_parent(event: &Event, report: &Event) -> bool {
    let Some(pid) = event.pid() else {
        return false;
    };
    !event.is_main()
        && report.is_main()
        && report.phase() == Some("failed")
        && [report.str("cause"), report.str("message")]
            .into_iter()
            .flatten()
            .any(|text| mentions_pid(text, pid))
}

/// Where the lifecycle event at `index` is answered: the first later line of the same
/// component with one of `phases`, from the same incarnation or its parent's report.
fn answer(lines: &[Event], index: usize, phases: &[&str]) -> Option<usize> {
    let event = &lines[index];
    let offset = lines[index + 1..].iter().position(|later| {
        later.component() == event.component()
            && later.phase().is_some_and(|p| phases.contains(&p))
            && (same_incarnation(event, later) || reported_by_parent(event, later))
    })?;
    Some(index + 1 + offset)
}

/// Every `starting` is answered by `started` or `failed`, every `started` by `stopped` or
/// `failed`, later and by the same incarnation (or its parent's report of its death).
pub fn pairs(lines: &[Event]) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (index, component, phase) in events(lines) {
        let needed: &[&str] = match phase {
            "starting" => &["started", "failed"],
            "started" => &["stopped", "failed"],
            _ => continue,
        };
        let event = &lines[index];
        if answer(lines, index, needed).is_none() {
            violations.push(Violation::new(
                Invariant::Lifecycle,
                format!(
                    "{component} ({}, pid {}) logged `{phase}` at line {} and never {}",
                    event.process().unwrap_or("?"),
                    event.pid().unwrap_or(-1),
                    index + 1,
                    needed.join(" or ")
                ),
                vec![index, lines.len().saturating_sub(1)],
            ));
        }
    }
    violations
}

/// The first line of the main process at or after `from` where `component` logs one of
/// `phases`.
fn first(lines: &[Event], component: &str, phases: &[&str], from: usize) -> Option<usize> {
    lines.iter().enumerate().skip(from).find_map(|(i, l)| {
        (l.is_main() && l.component() == Some(component) && l.phase().is_some_and(|p| phases.contains(&p)))
            .then_some(i)
    })
}

/// `services` (in the order the binary starts them) started in that order and stop in
/// reverse: a later service has stopped (or failed) before an earlier one begins to stop.
/// And every worker's end comes before the manager (`MPM`) reports itself stopped.
pub fn stop_order(lines: &[Event], services: &[&str]) -> Vec<Violation> {
    let mut violations = Vec::new();
    let started: Vec<(&str, usize)> = services
        .iter()
        .filter_map(|&s| first(lines, s, &["started"], 0).map(|i| (s, i)))
        .collect();
    for pair in started.windows(2).filter(|pair| pair[0].1 > pair[1].1) {
        violations.push(Violation::new(
            Invariant::StopOrder,
            format!(
                "{} started (line {}) after {}",
                pair[0].0,
                pair[0].1 + 1,
                pair[1].0
            ),
            vec![pair[1].1, pair[0].1],
        ));
    }
    for (earlier_rank, earlier) in services.iter().enumerate() {
        let Some(stopping) = first(lines, earlier, &["stopping"], 0) else {
            continue;
        };
        for later in &services[earlier_rank + 1..] {
            let Some(started) = first(lines, later, &["started"], 0).filter(|&s| s < stopping) else {
                continue;
            };
            match first(lines, later, &["stopped", "failed"], started) {
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
    violations.extend(workers_before_manager(lines));
    violations
}

/// Every worker process's end (its own `stopped` or `failed`, or its parent's report of its
/// death) comes before the manager reports itself stopped, and no worker starts after.
fn workers_before_manager(lines: &[Event]) -> Vec<Violation> {
    let Some(mpm_stopped) = first(lines, "MPM", &["stopped"], 0) else {
        return Vec::new();
    };
    let mut violations = Vec::new();
    let starts = events(lines).filter(|&(_, c, p)| is_worker(c) && p == "starting");
    for (index, worker, _) in starts {
        if index > mpm_stopped {
            violations.push(Violation::new(
                Invariant::StopOrder,
                format!(
                    "{worker} started after MPM reported stopped (line {})",
                    mpm_stopped + 1
                ),
                vec![mpm_stopped, index],
            ));
            continue;
        }
        let end = answer(lines, index, &["stopped", "failed"]);
        if end.is_none_or(|end| end > mpm_stopped) {
            violations.push(Violation::new(
                Invariant::StopOrder,
                format!(
                    "MPM reported stopped (line {}) while {worker} (pid {}, line {}) had not stopped or failed",
                    mpm_stopped + 1,
                    lines[index].pid().unwrap_or(-1),
                    index + 1
                ),
                vec![index, mpm_stopped],
            ));
        }
    }
    violations
}

/// The shield's promise: no service began stopping before the last service's start had
/// finished (`started` or `failed`): a request during the start is acted on only once the
/// start is complete.
pub fn no_stop_before_start_completed(lines: &[Event]) -> Vec<Violation> {
    // Where each service's start ended: the first `started` or `failed` after its
    // `starting` (a `failed` logged by a forced exit later does not count).
    let start_ends = lines.iter().enumerate().filter_map(|(index, event)| {
        let component = event.component().filter(|&c| c != "app" && event.is_main())?;
        if event.phase() != Some("starting") {
            return None;
        }
        first(lines, component, &["started", "failed"], index + 1)
    });
    let last_start = start_ends.max();
    let first_stop = lines
        .iter()
        .position(|e| e.is_main() && e.phase() == Some("stopping"));
    match (last_start, first_stop) {
        (Some(last_start), Some(first_stop)) if first_stop < last_start => vec![Violation::new(
            Invariant::StopOrder,
            format!(
                "a stop began (line {}) before the start had completed (line {})",
                first_stop + 1,
                last_start + 1
            ),
            vec![first_stop, last_start],
        )],
        _ => Vec::new(),
    }
}

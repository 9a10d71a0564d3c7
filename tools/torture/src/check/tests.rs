//! The checks on synthetic runs: each contract breach they must catch, and the contracted
//! oddities (a silent death before intake, a forced third Ctrl+C, a worker's restart) they
//! must let pass.

use std::time::Duration;

use super::{Invariant, check};
use crate::env::{EnvKind, Environment};
use crate::plan::{PlanSettings, TrialPlan};
use crate::run::Ended;
use crate::scenario::{Binary, Scenario, Signal};
use crate::trial::{Leftover, Observation, Sent, Target};

const SIGINT: i32 = 2;

/// A JSON line with the contract's keys; `fields` is the rest of the object.
fn line(process: &str, pid: u32, fields: &str) -> String {
    let comma = if fields.is_empty() { "" } else { "," };
    format!(
        r#"{{"timestamp":"t","level":"INFO","target":"lifecycle","process":"{process}","pid":{pid},"thread":"main","message":"m"{comma}{fields}}}"#
    )
}

fn main_event(component: &str, phase: &str) -> String {
    line(
        "main",
        100,
        &format!(r#""component":"{component}","phase":"{phase}""#),
    )
}

fn worker_event(n: u32, pid: u32, phase: &str) -> String {
    line(
        &format!("worker-{n}"),
        pid,
        &format!(r#""component":"worker-{n}","phase":"{phase}""#),
    )
}

fn signal(action: &str, count: u32) -> String {
    line(
        "main",
        100,
        &format!(r#""signal":"SIGINT","action":"{action}","count":{count}"#),
    )
}

fn exit_by_sigint() -> String {
    line(
        "main",
        100,
        r#""component":"app","phase":"exit","status":130,"signal":"SIGINT""#,
    )
}

/// A plan for `binary`/`scenario`; its random parts do not matter to the checks.
fn plan(binary: Binary, scenario: Scenario) -> TrialPlan {
    TrialPlan::new(
        &PlanSettings {
            seed: 1,
            binaries: vec![binary],
            scenarios: vec![scenario],
            stop_timeout: Duration::from_secs(3),
            inject_fault: None,
            moment: None,
            environments: vec![EnvKind::Plain],
            limit_available: false,
        },
        0,
    )
}

/// An observation of `lines` (one ms apart), `signals` sent at 1 ms, ended as `ended`.
fn observed(
    binary: Binary,
    scenario: Scenario,
    lines: &[String],
    signals: &[(Signal, Target)],
    ended: Ended,
) -> Observation {
    let count = lines.len() as u64;
    Observation {
        plan: plan(binary, scenario),
        main_pid: 100,
        lines: lines
            .iter()
            .enumerate()
            .map(|(i, raw)| logread::parse_at(raw.clone(), Duration::from_millis(i as u64 + 2)))
            .collect(),
        stdout: Vec::new(),
        sent: signals
            .iter()
            .map(|(sig, target)| Sent {
                at: Duration::from_millis(1),
                sig: *sig,
                target: target.clone(),
            })
            .collect(),
        notes: Vec::new(),
        ended: Some((Duration::from_millis(count + 3), ended)),
        stderr_end: Some(Duration::from_millis(count + 3)),
        hung: false,
        leftovers: Vec::new(),
        phase: None,
        tool_error: None,
        duration: Duration::from_millis(count + 4),
        stall: None,
        held_stopped: None,
    }
}

/// `simple` stopped by one Ctrl+C while running: the contract's happy path.
fn clean_simple_stop() -> Vec<String> {
    vec![
        line("main", 100, r#""message2":"main: begin""#),
        main_event("app", "starting"),
        main_event("AsyncService1", "starting"),
        main_event("AsyncService1", "started"),
        main_event("AsyncService2", "starting"),
        main_event("AsyncService2", "started"),
        main_event("app", "started"),
        signal("shutdown", 1),
        main_event("app", "stopping"),
        main_event("AsyncService2", "stopping"),
        main_event("AsyncService2", "stopped"),
        main_event("AsyncService1", "stopping"),
        main_event("AsyncService1", "stopped"),
        main_event("app", "stopped"),
        exit_by_sigint(),
    ]
}

fn invariants(observation: &Observation) -> Vec<Invariant> {
    let mut found: Vec<Invariant> = check(observation).into_iter().map(|v| v.invariant).collect();
    found.dedup();
    found
}

fn sigint_group() -> [(Signal, Target); 1] {
    [(Signal::Int, Target::Group)]
}

#[test]
fn a_clean_stop_passes() {
    let observation = observed(
        Binary::Simple,
        Scenario::SigintGroup,
        &clean_simple_stop(),
        &sigint_group(),
        Ended::Signal(SIGINT),
    );
    assert_eq!(invariants(&observation), vec![]);
}

#[test]
fn ending_by_another_signal_or_a_code_is_caught() {
    for ended in [Ended::Signal(libc::SIGTERM), Ended::Code(0), Ended::Code(130)] {
        let observation = observed(
            Binary::Simple,
            Scenario::SigintGroup,
            &clean_simple_stop(),
            &sigint_group(),
            ended,
        );
        assert!(
            invariants(&observation).contains(&Invariant::ExitStatus),
            "{ended:?}"
        );
    }
}

/// Contracted: a signal before intake kills silently by its default action.
#[test]
fn a_silent_death_before_intake_passes() {
    let observation = observed(
        Binary::Simple,
        Scenario::SigintGroup,
        &[],
        &sigint_group(),
        Ended::Signal(SIGINT),
    );
    assert_eq!(invariants(&observation), vec![]);
    // ... but not once the process has spoken: then it must log the signal and exit cleanly.
    let spoke = observed(
        Binary::Simple,
        Scenario::SigintGroup,
        &clean_simple_stop()[..3],
        &sigint_group(),
        Ended::Signal(SIGINT),
    );
    let found = invariants(&spoke);
    assert!(found.contains(&Invariant::ExitLast), "{found:?}");
    assert!(found.contains(&Invariant::Lifecycle), "{found:?}");
}

/// A Ctrl+C sent, never logged, and the run exiting 0; returns it and the exit event's index.
fn an_unlogged_ctrl_c_then_exit_0() -> (Observation, usize) {
    let mut lines = clean_simple_stop();
    lines.retain(|l| !l.contains(r#""action""#));
    let last = lines.len() - 1;
    lines[last] = line("main", 100, r#""component":"app","phase":"exit","status":0"#);
    let observation = observed(
        Binary::Simple,
        Scenario::SigintGroup,
        &lines,
        &sigint_group(),
        Ended::Code(0),
    );
    (observation, last)
}

#[test]
fn a_signal_never_logged_is_lost() {
    let (mut observation, last) = an_unlogged_ctrl_c_then_exit_0();
    assert_eq!(invariants(&observation), vec![]);
    // Sent long before the exit event and never logged: lost.
    observation.lines[last].at = Duration::from_secs(2);
    assert_eq!(invariants(&observation), vec![Invariant::ExitStatus]);
}

#[test]
fn a_signal_sent_while_the_process_was_held_stopped_counts_from_the_sigcont() {
    let (mut observation, last) = an_unlogged_ctrl_c_then_exit_0();
    // Sent at 1 ms into a stop from 0 to 1,999 ms; the run ended by itself as it went on.
    observation.held_stopped = Some((Duration::ZERO, Duration::from_millis(1_999)));
    observation.lines[last].at = Duration::from_secs(2);
    assert_eq!(invariants(&observation), vec![]);
    // Still lost when the exit comes long after the SIGCONT.
    observation.lines[last].at = Duration::from_secs(3);
    assert_eq!(invariants(&observation), vec![Invariant::ExitStatus]);
}

#[test]
fn a_line_after_the_exit_event_is_caught() {
    let mut lines = clean_simple_stop();
    lines.push(line("worker-1", 200, r#""message2":"late""#));
    let observation = observed(
        Binary::Simple,
        Scenario::SigintGroup,
        &lines,
        &sigint_group(),
        Ended::Signal(SIGINT),
    );
    assert_eq!(invariants(&observation), vec![Invariant::ExitLast]);
}

#[test]
fn a_component_that_never_stops_is_caught() {
    let mut lines = clean_simple_stop();
    lines.retain(|l| !l.contains(r#""AsyncService1","phase":"stopped""#));
    let observation = observed(
        Binary::Simple,
        Scenario::SigintGroup,
        &lines,
        &sigint_group(),
        Ended::Signal(SIGINT),
    );
    assert_eq!(invariants(&observation), vec![Invariant::Lifecycle]);
}

#[test]
fn services_stopping_in_start_order_are_caught() {
    let mut lines = clean_simple_stop();
    // AsyncService1 stops first: the order of a careless loop.
    lines.swap(9, 11);
    lines.swap(10, 12);
    let observation = observed(
        Binary::Simple,
        Scenario::SigintGroup,
        &lines,
        &sigint_group(),
        Ended::Signal(SIGINT),
    );
    assert_eq!(invariants(&observation), vec![Invariant::StopOrder]);
}

/// `complex` with one worker, the worker's end placed at `worker_end` among the lines.
fn complex_stop(worker_end_after_mpm: bool) -> Vec<String> {
    let mut lines = vec![
        main_event("app", "starting"),
        main_event("AsyncService1", "starting"),
        main_event("MPM", "starting"),
        worker_event(1, 200, "starting"),
        worker_event(1, 200, "started"),
        main_event("MPM", "started"),
        main_event("AsyncService1", "started"),
        main_event("app", "started"),
        signal("shutdown", 1),
        main_event("app", "stopping"),
        main_event("AsyncService1", "stopping"),
        main_event("MPM", "stopping"),
    ];
    let worker_end = [worker_event(1, 200, "stopping"), worker_event(1, 200, "stopped")];
    if !worker_end_after_mpm {
        lines.extend(worker_end.clone());
    }
    lines.push(main_event("MPM", "stopped"));
    if worker_end_after_mpm {
        lines.extend(worker_end);
    }
    lines.extend([
        main_event("AsyncService1", "stopped"),
        main_event("app", "stopped"),
        exit_by_sigint(),
    ]);
    lines
}

#[test]
fn a_worker_stopping_after_the_manager_is_caught() {
    let good = observed(
        Binary::Complex,
        Scenario::SigintGroup,
        &complex_stop(false),
        &sigint_group(),
        Ended::Signal(SIGINT),
    );
    assert_eq!(invariants(&good), vec![]);
    let bad = observed(
        Binary::Complex,
        Scenario::SigintGroup,
        &complex_stop(true),
        &sigint_group(),
        Ended::Signal(SIGINT),
    );
    assert_eq!(invariants(&bad), vec![Invariant::StopOrder]);
}

/// A killed worker is reported failed by the manager (naming its pid), then replaced under
/// the same name; the replacement (a new pid) stops in its place.
#[test]
fn a_restarted_worker_pairs_up() {
    let replacement_ends = |l: String| {
        let end = l.contains(r#""phase":"stopping""#) || l.contains(r#""phase":"stopped""#);
        if end && l.contains(r#""pid":200"#) {
            l.replace(r#""pid":200"#, r#""pid":201"#)
        } else {
            l
        }
    };
    let mut lines: Vec<String> = complex_stop(false).into_iter().map(replacement_ends).collect();
    let restart = [
        line(
            "main",
            100,
            r#""component":"worker-1","phase":"failed","cause":"worker-1 (pid 200) killed by SIGKILL""#,
        ),
        worker_event(1, 201, "starting"),
        worker_event(1, 201, "started"),
    ];
    lines.splice(8..8, restart);
    let killed = [
        (Signal::Kill, Target::Worker("worker-1".into(), 200)),
        (Signal::Int, Target::Group),
    ];
    let observation = observed(
        Binary::Complex,
        Scenario::KillWorker,
        &lines,
        &killed,
        Ended::Signal(SIGINT),
    );
    assert_eq!(invariants(&observation), vec![]);
    // Without the manager's `failed`, the first incarnation is never accounted for: not at
    // all, and not before MPM reported stopped.
    lines.remove(8);
    let observation = observed(
        Binary::Complex,
        Scenario::KillWorker,
        &lines,
        &killed,
        Ended::Signal(SIGINT),
    );
    assert_eq!(
        invariants(&observation),
        vec![Invariant::Lifecycle, Invariant::StopOrder]
    );
}

#[test]
fn only_the_force_after_th_signal_may_force_the_exit() {
    let forced = |lines_before_force: &[String], sent: usize| {
        let mut lines = clean_simple_stop()[..10].to_vec();
        lines.extend_from_slice(lines_before_force);
        lines.extend([
            line(
                "main",
                100,
                r#""component":"app","cause":"whatever the wording","unfinished":"app""#,
            ),
            main_event("AsyncService2", "failed"),
            main_event("AsyncService1", "failed"),
            main_event("app", "failed"),
            exit_by_sigint(),
        ]);
        let signals = vec![(Signal::Int, Target::Group); sent];
        invariants(&observed(
            Binary::Simple,
            Scenario::SigintThrice,
            &lines,
            &signals,
            Ended::Signal(SIGINT),
        ))
    };
    let third = [signal("counted", 2), signal("forced", 3)];
    assert_eq!(forced(&third, 3), vec![]);
    // The stop timeout forced it: no `action=forced` signal before the forced-exit event.
    assert_eq!(forced(&[signal("counted", 2)], 3), vec![Invariant::StopTimeout]);
    // Forced by a count the tool never reached.
    assert_eq!(forced(&third, 2), vec![Invariant::StopTimeout]);
}

#[test]
fn junk_on_the_output_is_caught() {
    for junk in [
        "thread 'main' panicked at src/main.rs:1:1:",
        "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace",
        r#"{"process":"main"}"#,
        // A field named `pid` overwrote the writer's pid (the manager's "spawned" line did).
        &line("main", 4242, r#""worker":"worker-1""#),
    ] {
        let mut lines = clean_simple_stop();
        lines.insert(3, junk.to_owned());
        let observation = observed(
            Binary::Simple,
            Scenario::SigintGroup,
            &lines,
            &sigint_group(),
            Ended::Signal(SIGINT),
        );
        assert_eq!(invariants(&observation), vec![Invariant::CleanOutput], "{junk}");
    }
}

#[test]
fn leftovers_and_a_killed_main_are_judged_apart() {
    let mut lines = complex_stop(false)[..9].to_vec();
    lines.truncate(8);
    let killed = [(Signal::Kill, Target::Main)];
    let mut observation = observed(
        Binary::Complex,
        Scenario::KillMain,
        &lines,
        &killed,
        Ended::Signal(libc::SIGKILL),
    );
    // The worker's stop cannot be seen (its lines went through the killed main process):
    // only its leaving is judged.
    assert_eq!(invariants(&observation), vec![]);
    observation.leftovers.push(Leftover {
        pid: 200,
        state: 'S',
        cmdline: "complex worker --index 1".into(),
    });
    assert_eq!(invariants(&observation), vec![Invariant::NoLeftovers]);
}

// ---------------------------------------------------------------------------------------
// The environment axis: what a stalled sink may lose, and what it may not.

/// A clean `simple` stop with its `stopped` lines lost to a stalled sink (and said so).
fn stop_with_dropped_lines() -> Vec<String> {
    let mut lines: Vec<String> = clean_simple_stop()
        .into_iter()
        .filter(|l| !l.contains(r#""phase":"stopped""#))
        .collect();
    let exit = lines.pop().expect("the exit event");
    lines.push(line("main", 100, r#""event":"log-dropped","dropped":7"#));
    lines.push(exit);
    lines
}

/// Lines dropped and counted: the lifecycle cannot be judged, the rest can.
#[test]
fn dropped_lines_relax_the_lifecycle_but_not_the_exit_event() {
    let lines = stop_with_dropped_lines();
    let observation = observed(
        Binary::Simple,
        Scenario::SigintGroup,
        &lines,
        &[(Signal::Int, Target::Group)],
        Ended::Signal(SIGINT),
    );
    assert_eq!(invariants(&observation), Vec::<Invariant>::new());

    let mut late = lines.clone();
    let exit = late.remove(late.len() - 1);
    late.insert(late.len() - 1, exit);
    let observation = observed(
        Binary::Simple,
        Scenario::SigintGroup,
        &late,
        &[(Signal::Int, Target::Group)],
        Ended::Signal(SIGINT),
    );
    assert_eq!(invariants(&observation), vec![Invariant::ExitLast]);
}

/// The tool's own stall outlasted the process: the end of the log may be gone, the exit
/// event too; the status must still be one a signal sent explains.
#[test]
fn a_stall_past_the_exit_relaxes_the_end_of_the_log_but_not_the_status() {
    let lines: Vec<String> = clean_simple_stop().into_iter().take(6).collect();
    let mut observation = observed(
        Binary::Simple,
        Scenario::SigintGroup,
        &lines,
        &[(Signal::Int, Target::Group)],
        Ended::Signal(SIGINT),
    );
    observation.plan.environment = Environment::StallReader {
        at: Duration::ZERO,
        length: Duration::from_secs(5),
    };
    assert_eq!(invariants(&observation), Vec::<Invariant>::new());

    observation.ended = Some((Duration::from_millis(9), Ended::Signal(libc::SIGTERM)));
    assert_eq!(invariants(&observation), vec![Invariant::ExitStatus]);
}

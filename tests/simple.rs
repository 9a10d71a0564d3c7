//! The `simple` binary through real signals: each test starts it, waits for a lifecycle
//! event, sends a signal at that moment, and checks the whole run against the contract
//! (docs/contract.md).
//!
//! `--time-scale 0.2` makes each start and stop last 200 ms: short enough to keep the suite
//! quick, long enough that a signal sent right after `AsyncService1: starting` is observed
//! reliably lands inside that start, even on a loaded machine. The tests never sleep to
//! synchronise: they wait for the log event, and every wait is bounded.

mod support;

use support::{Event, PATIENCE, Run, Signal, event, phase, signal_event};

const SIMPLE: &str = env!("CARGO_BIN_EXE_simple");

/// 200 ms per start and per stop.
const SCALE: &str = "0.2";

/// The services, in the order `simple` starts them.
const SERVICES: [&str; 2] = ["AsyncService1", "AsyncService2"];

/// The lifecycle of a run that started completely and stopped completely, whatever asked
/// for the stop: start in order, stop in reverse, then the final exit event.
const FULL_RUN: [&str; 13] = [
    "app starting",
    "AsyncService1 starting",
    "AsyncService1 started",
    "AsyncService2 starting",
    "AsyncService2 started",
    "app started",
    "app stopping",
    "AsyncService2 stopping",
    "AsyncService2 stopped",
    "AsyncService1 stopping",
    "AsyncService1 stopped",
    "app stopped",
    "app exit",
];

fn simple(args: &[&str]) -> Run {
    Run::spawn(SIMPLE, args)
}

/// A shutdown signal during a service's start, the shield's case (lesson 1, the
/// reference's `DelayedKeyboardInterrupt`).
fn signal_during_start(service: &'static str, signal: Signal, to_group: bool) {
    let mut run = simple(&["--time-scale", SCALE]);
    run.wait_for(phase(service, "starting"), PATIENCE);
    if to_group {
        run.signal_group(signal);
    } else {
        run.signal(signal);
    }
    let event = run.next_signal_event(signal);
    // An unshielded start would log `shutdown` here.
    run.assert_signal_event(&event, "delayed", 1);
    run.assert_graceful_end_by(signal, &SERVICES);
    // The request was kept (never lost) and acted on only after the whole start: a runner
    // that aborted the start or stopped mid-start changes this list.
    run.assert_lifecycle(&FULL_RUN);
    run.assert_order(&[
        phase(service, "starting"),
        signal_event(signal.name(), "delayed"),
        phase(service, "started"),
        phase("app", "started"),
        phase("app", "stopping"),
    ]);
}

/// Lesson 1 (Shield): Ctrl+C during AsyncService1's start is delayed; the start completes,
/// then the stop runs at once, and the process ends by SIGINT.
#[test]
fn ctrl_c_during_async_service1_start_is_delayed_until_the_start_completes() {
    signal_during_start("AsyncService1", Signal::Int, true);
}

/// Lesson 1 (Shield): the shield covers the *whole* start, the last service's too.
#[test]
fn ctrl_c_during_async_service2_start_is_delayed_until_the_start_completes() {
    signal_during_start("AsyncService2", Signal::Int, true);
}

/// Lesson 1 (Shield), any shutdown signal: SIGHUP (the terminal went away) during a start
/// is delayed like Ctrl+C, and the process ends by SIGHUP (a shell sees 129).
#[test]
fn sighup_during_start_is_delayed_and_the_process_ends_by_sighup() {
    signal_during_start("AsyncService1", Signal::Hup, false);
}

/// A shutdown signal while running: acted on at once (`action=shutdown`), then the
/// shielded stop in reverse start order, then the process ends by the same signal.
fn signal_while_running(signal: Signal, to_group: bool) {
    let mut run = simple(&["--time-scale", SCALE]);
    run.wait_for(phase("app", "started"), PATIENCE);
    if to_group {
        run.signal_group(signal);
    } else {
        run.signal(signal);
    }
    let event = run.next_signal_event(signal);
    run.assert_signal_event(&event, "shutdown", 1);
    run.assert_graceful_end_by(signal, &SERVICES);
    run.assert_lifecycle(&FULL_RUN);
    run.assert_order(&[
        phase("app", "started"),
        signal_event(signal.name(), "shutdown"),
        phase("app", "stopping"),
        phase("AsyncService2", "stopped"),
        phase("AsyncService1", "stopping"),
    ]);
}

/// Lesson 2 (control the cancellation order): Ctrl+C while running stops AsyncService2,
/// then AsyncService1, and the process ends by SIGINT (a shell sees 130).
#[test]
fn ctrl_c_while_running_stops_in_reverse_order_and_ends_by_sigint() {
    signal_while_running(Signal::Int, true);
}

/// SIGTERM (`kill PID`, an init system) is a shutdown signal like Ctrl+C; the process ends
/// by SIGTERM (143), which is what systemd reads as a clean stop.
#[test]
fn sigterm_while_running_stops_gracefully_and_ends_by_sigterm() {
    signal_while_running(Signal::Term, false);
}

/// A signal during a stop that `--run-for` began: counted (every signal counts, from the
/// first), not a second stop; the stop completes and the process still ends by the signal
/// the user sent, so a calling shell script learns it was interrupted.
fn signal_during_run_for_stop(service: &'static str) {
    let mut run = simple(&["--time-scale", SCALE, "--run-for", "200ms"]);
    run.wait_for(phase(service, "stopping"), PATIENCE);
    run.signal_group(Signal::Int);
    let event = run.next_signal_event(Signal::Int);
    run.assert_signal_event(&event, "counted", 1);
    if event.int("remaining") != Some(2) {
        run.fail(&format!(
            "expected remaining=2 (forced at the 3rd signal); got {}",
            event.raw
        ));
    }
    run.assert_graceful_end_by(Signal::Int, &SERVICES);
    run.assert_lifecycle(&FULL_RUN);
    run.assert_order(&[
        phase(service, "stopping"),
        signal_event("SIGINT", "counted"),
        phase(service, "stopped"),
    ]);
}

/// Lesson 1 (Shield covers the stop): Ctrl+C during AsyncService2's stop neither interrupts
/// it nor starts another stop; it is counted and the stop completes in order.
#[test]
fn ctrl_c_during_async_service2_stop_is_counted_and_the_stop_completes() {
    signal_during_run_for_stop("AsyncService2");
}

/// Lesson 1 (Shield covers the stop): the same during the last service's stop.
#[test]
fn ctrl_c_during_async_service1_stop_is_counted_and_the_stop_completes() {
    signal_during_run_for_stop("AsyncService1");
}

/// Starts a run, stops it with one Ctrl+C while running, and returns once AsyncService2
/// is stopping, with the first signal's event checked.
fn stopping_after_first_ctrl_c() -> Run {
    let mut run = simple(&["--time-scale", SCALE]);
    run.wait_for(phase("app", "started"), PATIENCE);
    run.signal_group(Signal::Int);
    let first = run.next_signal_event(Signal::Int);
    run.assert_signal_event(&first, "shutdown", 1);
    run.wait_for(phase("AsyncService2", "stopping"), PATIENCE);
    run
}

/// Escalation (tokio #7905: a second Ctrl+C is not free): the second Ctrl+C during the stop
/// is `counted`, says one more forces the exit, and the stop still completes cleanly.
#[test]
fn second_ctrl_c_during_the_stop_is_counted_and_the_stop_completes() {
    let mut run = stopping_after_first_ctrl_c();
    run.signal_group(Signal::Int);
    let second = run.next_signal_event(Signal::Int);
    run.assert_signal_event(&second, "counted", 2);
    if second.int("remaining") != Some(1) {
        run.fail(&format!("expected remaining=1; got {}", second.raw));
    }
    run.assert_graceful_end_by(Signal::Int, &SERVICES);
    run.assert_lifecycle(&FULL_RUN);
    if !run.all(&|e: &Event| e.str("action") == Some("forced")).is_empty() {
        run.fail("two signals must not force the exit (--force-after defaults to 3)");
    }
}

/// Escalation: the third Ctrl+C forces the exit. Nothing is left half-said: every
/// component that had not stopped logs `failed` with the reason, the exit event is still
/// the last line, and the process still ends by SIGINT.
#[test]
fn third_ctrl_c_during_the_stop_forces_the_exit() {
    let mut run = stopping_after_first_ctrl_c();
    // One at a time: two SIGINTs sent together may merge into one pending signal.
    run.signal_group(Signal::Int);
    let second = run.next_signal_event(Signal::Int);
    run.assert_signal_event(&second, "counted", 2);
    run.signal_group(Signal::Int);
    let third = run.next_signal_event(Signal::Int);
    run.assert_signal_event(&third, "forced", 3);

    run.wait_exit();
    run.assert_ended_by(Signal::Int);
    run.assert_last_line_is_exit(Signal::Int.shell_status(), Some(Signal::Int));
    run.assert_every_component_finished();
    run.assert_reverse_stop_order(&SERVICES);
    run.assert_clean_output();
    run.assert_nothing_left();

    // Whoever had not stopped when the exit was forced is marked failed after it; nothing
    // stops (or begins stopping) once the exit is forced.
    let forced = run
        .position(&signal_event("SIGINT", "forced"), 0)
        .expect("the forced event was waited for");
    for component in ["app", "AsyncService1", "AsyncService2"] {
        let stopped_before = run.log()[..forced].iter().any(|e| e.is(component, "stopped"));
        let failed_after = run.log()[forced..].iter().any(|e| e.is(component, "failed"));
        if stopped_before == failed_after {
            run.fail(&format!(
                "{component}: expected either `stopped` before the forced exit or `failed` after \
                 it (stopped before: {stopped_before}, failed after: {failed_after})"
            ));
        }
    }
    let after_force = run.log()[forced..]
        .iter()
        .find(|e| matches!(e.phase(), Some("stopping" | "stopped")));
    if let Some(event) = after_force {
        run.fail(&format!(
            "nothing may stop after the forced exit; got {}",
            event.raw
        ));
    }
    // AsyncService1 only begins stopping after AsyncService2's 200 ms stop: it cannot have
    // stopped, so the forced path is really exercised.
    run.assert_order(&[
        signal_event("SIGINT", "forced"),
        phase("AsyncService1", "failed"),
        phase("app", "failed"),
        phase("app", "exit"),
    ]);
}

/// `--run-for` elapsed and the stop was clean: exit status 0, no signal, full lifecycle.
#[test]
fn run_for_elapsed_stops_cleanly_and_exits_0() {
    let mut run = simple(&["--time-scale", SCALE, "--run-for", "200ms"]);
    run.wait_exit();
    run.assert_exit_code(0);
    run.assert_last_line_is_exit(0, None);
    run.assert_lifecycle(&FULL_RUN);
    run.assert_every_component_finished();
    run.assert_reverse_stop_order(&SERVICES);
    run.assert_clean_output();
    run.assert_nothing_left();
    if let Some(event) = run.log().iter().find(|e| e.str("action").is_some()) {
        run.fail(&format!("no signal was sent, yet: {}", event.raw));
    }
}

/// A failed start stops what had started, in reverse, and exits 1 (the reference's
/// `start()` failure path): AsyncService2 fails, AsyncService1 stops after it.
#[test]
fn failed_start_stops_what_had_started_and_exits_1() {
    let mut run = simple(&["--time-scale", SCALE, "--fail-start", "AsyncService2"]);
    run.wait_exit();
    run.assert_exit_code(1);
    run.assert_last_line_is_exit(1, None);
    run.assert_lifecycle(&[
        "app starting",
        "AsyncService1 starting",
        "AsyncService1 started",
        "AsyncService2 starting",
        "AsyncService2 failed",
        "AsyncService1 stopping",
        "AsyncService1 stopped",
        "app failed",
        "app exit",
    ]);
    run.assert_every_component_finished();
    run.assert_no_stop_before_start_completed();
    run.assert_clean_output();
    run.assert_nothing_left();
}

/// `--stop-timeout` bounds the whole stop: past it the exit is forced, the log names the
/// components that had not finished, each is marked failed, and the process still ends by
/// the signal that began the stop. With `--time-scale 1` a stop takes 1 s, far past 100 ms.
#[test]
fn stop_timeout_forces_the_exit_and_names_the_unfinished_components() {
    let mut run = simple(&["--time-scale", "1", "--stop-timeout", "100ms"]);
    run.wait_for(phase("app", "started"), PATIENCE);
    run.signal(Signal::Term);
    let received = run.next_signal_event(Signal::Term);
    run.assert_signal_event(&received, "shutdown", 1);
    let forcing = run.wait_for(|e: &Event| e.str("unfinished").is_some(), PATIENCE);
    let unfinished = forcing.str("unfinished").unwrap_or_default();
    if !SERVICES.iter().all(|s| unfinished.contains(s)) {
        run.fail(&format!(
            "the forced exit must name {SERVICES:?} as unfinished; got {}",
            forcing.raw
        ));
    }

    run.wait_exit();
    run.assert_ended_by(Signal::Term);
    run.assert_last_line_is_exit(Signal::Term.shell_status(), Some(Signal::Term));
    run.assert_lifecycle(&[
        "app starting",
        "AsyncService1 starting",
        "AsyncService1 started",
        "AsyncService2 starting",
        "AsyncService2 started",
        "app started",
        "app stopping",
        "AsyncService2 stopping",
        "AsyncService2 failed",
        "AsyncService1 failed",
        "app failed",
        "app exit",
    ]);
    for failed in run.all(&|e: &Event| e.phase() == Some("failed")) {
        if !failed.str("cause").is_some_and(|c| c.contains("stop-timeout")) {
            run.fail(&format!(
                "a forced `failed` must give the reason (--stop-timeout): {}",
                failed.raw
            ));
        }
    }
    // The report, written by the forced exit, says who the deadline caught.
    assert_stop_report(
        &run,
        &[("AsyncService2", "forced"), ("AsyncService1", "forced")],
        "AsyncService2, AsyncService1",
    );
    run.assert_order(&[phase("app", "failed"), event("stop-report"), phase("app", "exit")]);
    run.assert_every_component_finished();
    run.assert_reverse_stop_order(&SERVICES);
    run.assert_clean_output();
    run.assert_nothing_left();
}

/// The run's one stop report, checked to name each of `expected` (in stop order) with its
/// outcome, and to list `timed_out`.
#[track_caller]
fn assert_stop_report(run: &Run, expected: &[(&str, &str)], timed_out: &str) -> Event {
    let reports = run.all(&event("stop-report"));
    let [report] = reports[..] else {
        run.fail(&format!("expected one stop report, found {}", reports.len()))
    };
    let components = report.str("components").unwrap_or_default();
    let named: Vec<(&str, &str)> = components
        .split(", ")
        .filter_map(|entry| {
            let mut words = entry.split(' ');
            Some((words.next()?, words.next()?))
        })
        .collect();
    if named != expected || report.str("timed_out") != Some(timed_out) || report.int("stop_ms").is_none() {
        run.fail(&format!(
            "expected a stop report naming {expected:?}, timed out: {timed_out}; got {}",
            report.raw
        ));
    }
    report.clone()
}

/// The stop report: at the end of the stop, before the exit event, one line with the
/// stop's duration and each service's stop and how it ended, so "was a timeout hit, and
/// by whom" is one line of the log.
#[test]
fn the_stop_report_names_each_service_before_the_exit_event() {
    let mut run = simple(&["--time-scale", SCALE]);
    run.wait_for(phase("app", "started"), PATIENCE);
    run.signal(Signal::Term);
    run.assert_graceful_end_by(Signal::Term, &SERVICES);
    let report = assert_stop_report(
        &run,
        &[("AsyncService2", "stopped"), ("AsyncService1", "stopped")],
        "none",
    );
    // Two stops of 200 ms each, one after the other.
    if report.int("stop_ms").is_none_or(|ms| ms < 400) {
        run.fail(&format!("the stop took at least 400 ms; got {}", report.raw));
    }
    run.assert_order(&[
        phase("app", "stopped"),
        event("stop-report"),
        phase("app", "exit"),
    ]);
}

/// A bad command line exits 2 with clap's message (which names the culprit) and starts
/// nothing: no log event, no process left.
#[test]
fn bad_command_lines_exit_2_with_clap_message() {
    let cases: [(&[&str], &str); 5] = [
        (&["--time-scale", "-1"], "-1"),
        (&["--time-scale=-1"], "out of range"),
        (&["--fail-start", "nope"], "nope"),
        (&["--bogus"], "--bogus"),
        (&["--stop-timeout", "xyz"], "xyz"),
    ];
    for (args, culprit) in cases {
        let mut run = simple(args);
        run.wait_exit();
        let context = format!("simple {}", args.join(" "));
        run.assert_exit_code(2);
        let text: Vec<&str> = run.log().iter().map(|e| e.raw.as_str()).collect();
        let text = text.join("\n");
        if !text.starts_with("error:") || !text.contains(culprit) || !text.contains("--help") {
            run.fail(&format!(
                "{context}: expected clap's `error: ...` naming {culprit:?}"
            ));
        }
        if run.log().iter().any(Event::is_json) || text.contains("panicked at") {
            run.fail(&format!("{context}: nothing but clap's message may be printed"));
        }
        run.assert_nothing_left();
    }
}

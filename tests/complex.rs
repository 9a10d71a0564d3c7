//! The `complex` binary through real signals: each test starts it, waits for the log event
//! that marks the moment it wants (a worker just spawned, an update under way, a call in
//! a worker's hands), acts at that moment (Ctrl+C to the whole group as a terminal does,
//! SIGTERM to the parent alone, SIGKILL to a worker or to the parent), and then checks the
//! whole run against the contract (docs/contract.md).
//!
//! Every graceful run is checked the same way ([`assert_graceful_end`]): the exit status, the
//! main process's exact lifecycle, the order inside AsyncService1's stop (update task, busy
//! tasks, MPM with every worker's `stopped` before its own, pool), every worker process's
//! own `starting started stopping stopped`, no `failed` anywhere, no forced exit, no panic
//! text, and, by pid and by process group, nothing left running.
//!
//! The tests never sleep to synchronise: they wait for log events, and every wait is
//! bounded (a bound that fires is a failure, printed with the whole log). `--time-scale`
//! is chosen per test so that the moment a test aims at lasts long enough to be hit on a
//! loaded machine, and no longer.

#[path = "complex/checks.rs"]
mod checks;
mod support;

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use checks::*;
use support::{
    Event, Matcher, Options, PATIENCE, Run, Signal, event, fields, mentions_pid, phase, signal_event,
    worker_event,
};

// ---------------------------------------------------------------------------------------
// Ctrl+C at each moment of a run.

/// Ctrl+C during the workers' handshake, right after `at`: delayed by the shield; the start
/// completes, then the whole stop runs in order and the process ends by SIGINT.
///
/// Eight workers rather than four: they are spawned one after the other, so the longer the
/// spawning goes on, the likelier the signal finds one between its spawn and its handlers
/// (the window the lesson is about). With the window left open on purpose (no signals
/// blocked at spawn), this test alone caught it in 10 runs out of 10 with eight workers and
/// in 5 with four; each of the two tests below catches it in most runs of the suite.
fn ctrl_c_during_the_handshake(at: impl Matcher) {
    let shape = Shape {
        workers: 8,
        ..DEFAULTS
    };
    let workers = shape.workers.to_string();
    let mut run = complex(&["--time-scale", HANDSHAKE_SCALE, "--workers", &workers]);
    run.wait_for(at, PATIENCE);
    let running = workers_running_now(&run);
    run.signal_group(Signal::Int);
    let event = run.next_signal_event(Signal::Int);
    // An unshielded start would log `shutdown` and stop mid-handshake.
    run.assert_signal_event(&event, "delayed", 1);
    assert_graceful_end(&mut run, Signal::Int, shape, &[]);
    run.assert_order(&[
        phase("MPM", "starting"),
        signal_event("SIGINT", "delayed"),
        phase("MPM", "started"),
        phase("AsyncService1", "started"),
        phase("AsyncService2", "started"),
        phase("app", "stopping"),
    ]);
    if running.is_empty() {
        run.fail("the signal was meant to reach at least one worker already spawned");
    }
    // A worker killed by the Ctrl+C in its first moments (before its handlers were in
    // place) would never log this, and its parent would report it failed.
    assert_workers_ignored(&run, Signal::Int, &running);
}

/// Lessons 1 and 7 (Shield; a signal between spawn and the worker's handlers): Ctrl+C the
/// moment worker-1 is spawned, before it could install its handlers, is delayed in the parent,
/// ignored by worker-1 once it can (not fatal to it), and the start completes before the stop.
#[test]
fn ctrl_c_as_the_first_worker_is_spawned_is_delayed_and_does_not_kill_it() {
    ctrl_c_during_the_handshake(worker_event("spawned", "worker-1"));
}

/// Lessons 1 and 5 (Shield; workers leave the decision to the parent): Ctrl+C mid-handshake,
/// when worker-1 is starting, is delayed; every worker running logs it ignored; the handshake
/// and the start complete, then the ordered stop.
#[test]
fn ctrl_c_during_the_worker_handshake_is_delayed_until_the_start_completes() {
    ctrl_c_during_the_handshake(phase("worker-1", "starting"));
}

/// Lesson 2 (control the cancellation order) and the shielded update: Ctrl+C while an
/// update runs in every worker; AsyncService1's stop waits for the update in hand, then
/// cancels the busy tasks, stops MPM and the pool.
#[test]
fn ctrl_c_during_an_update_lets_the_shielded_update_finish_first() {
    let mut run = complex(&["--time-scale", UPDATE_SCALE]);
    // The run's first update: every worker's `method=update` line below belongs to it.
    run.wait_for(event("update-started"), PATIENCE);
    let running = workers_running_now(&run);
    run.signal_group(Signal::Int);
    let received = run.next_signal_event(Signal::Int);
    run.assert_signal_event(&received, "shutdown", 1);
    assert_graceful_end(&mut run, Signal::Int, DEFAULTS, &[]);
    run.assert_sequence(&[
        &event("update-started"),
        &signal_event("SIGINT", "shutdown"),
        &phase("AsyncService1", "stopping"),
        &event("update-finished"),
        &fields(&[
            ("event", "cancelled"),
            ("task", "update"),
            ("in_hand", "finished"),
        ]),
        &phase("MPM", "stopping"),
    ]);
    for worker in &running {
        if !worker_worked_on(&run, worker, "update") {
            run.fail(&format!("{} never logged the update it was given", worker.name));
        }
    }
    if summary(&run, "updates") < 1 {
        run.fail("the update in hand finished, so the summary must count it");
    }
    assert_workers_ignored(&run, Signal::Int, &running);
}

/// Lesson 3 (shielded calls): Ctrl+C with a call in a worker's hands; each busy task
/// finishes the call in hand (none is abandoned, none fails) before MPM stops.
#[test]
fn ctrl_c_with_calls_in_flight_finishes_the_calls_in_hand() {
    let mut run = complex(&["--time-scale", FAST]);
    run.wait_for(phase("app", "started"), PATIENCE);
    run.wait_for(worker_processing, PATIENCE);
    let running = workers_running_now(&run);
    run.signal_group(Signal::Int);
    let received = run.next_signal_event(Signal::Int);
    run.assert_signal_event(&received, "shutdown", 1);
    assert_graceful_end(&mut run, Signal::Int, DEFAULTS, &[]);
    assert_workers_ignored(&run, Signal::Int, &running);
    if summary(&run, "calls_ok") < 1 || summary(&run, "calls_failed") != 0 {
        run.fail("shielded: every call must have succeeded (calls_ok >= 1, calls_failed == 0)");
    }
    for name in ["abandoned", "stranded", "result-dropped"] {
        if let Some(at) = run.position(&event(name), 0) {
            run.fail(&format!(
                "shielded tasks abandon nothing; line {} is event={name}",
                at + 1
            ));
        }
    }
}

/// Lesson 2: Ctrl+C with no busy task at all: the same ordered stop, and no call made.
#[test]
fn ctrl_c_while_idle_stops_in_order() {
    let mut run = complex(&["--time-scale", FAST, "--busy-tasks", "0"]);
    run.wait_for(phase("app", "started"), PATIENCE);
    let running = workers_running_now(&run);
    run.signal_group(Signal::Int);
    let event = run.next_signal_event(Signal::Int);
    run.assert_signal_event(&event, "shutdown", 1);
    let shape = Shape {
        busy_tasks: 0,
        ..DEFAULTS
    };
    assert_graceful_end(&mut run, Signal::Int, shape, &[]);
    assert_workers_ignored(&run, Signal::Int, &running);
    if summary(&run, "calls_ok") != 0 || summary(&run, "calls_failed") != 0 {
        run.fail("with --busy-tasks 0 no call is made");
    }
}

/// SIGTERM to the parent alone (`kill PID`, an init system): the workers are not signalled
/// and log nothing about it; they stop on their parent's stop command; the process ends by
/// SIGTERM.
#[test]
fn sigterm_to_the_parent_alone_stops_the_workers_by_command() {
    let mut run = complex(&["--time-scale", FAST]);
    run.wait_for(phase("app", "started"), PATIENCE);
    run.signal(Signal::Term);
    let event = run.next_signal_event(Signal::Term);
    run.assert_signal_event(&event, "shutdown", 1);
    assert_graceful_end(&mut run, Signal::Term, DEFAULTS, &[]);
    if let Some(event) = run
        .log()
        .iter()
        .find(|e| e.process() != Some("main") && e.str("signal").is_some())
    {
        run.fail(&format!(
            "SIGTERM went to the parent only, yet a worker says: {}",
            event.raw
        ));
    }
    for worker in workers(&run) {
        if !worker_did(&run, &worker, "stop-command") {
            run.fail(&format!("{} must stop on its parent's stop command", worker.name));
        }
    }
}

/// SIGHUP to the whole group (the terminal was closed): its default action would kill every
/// worker on the spot; instead the parent stops in order, each worker logs it ignored and
/// waits for its stop command, and the process ends by SIGHUP.
#[test]
fn sighup_to_the_group_is_ignored_by_the_workers_and_ends_the_run_by_sighup() {
    let mut run = complex(&["--time-scale", FAST]);
    run.wait_for(phase("app", "started"), PATIENCE);
    let running = workers_running_now(&run);
    run.signal_group(Signal::Hup);
    let event = run.next_signal_event(Signal::Hup);
    run.assert_signal_event(&event, "shutdown", 1);
    assert_graceful_end(&mut run, Signal::Hup, DEFAULTS, &[]);
    assert_workers_ignored(&run, Signal::Hup, &running);
}

/// Starts a run at `scale`, sends Ctrl+C as the first update starts, and returns once
/// AsyncService1 is stopping: its stop then waits for the update in hand (5 s times `scale`,
/// less AsyncService2's 1 s stop), so the next signal surely lands during the stop, with
/// every worker still running.
fn stopping_during_an_update(scale: &str) -> Run {
    let mut run = complex(&["--time-scale", scale]);
    run.wait_for(event("update-started"), PATIENCE);
    run.signal_group(Signal::Int);
    let first = run.next_signal_event(Signal::Int);
    run.assert_signal_event(&first, "shutdown", 1);
    run.wait_for(phase("AsyncService1", "stopping"), PATIENCE);
    run
}

/// Escalation (tokio #7905: a second Ctrl+C is not free): the second Ctrl+C during the stop
/// is `counted` with one more to force; the workers ignore it too, and the stop completes.
#[test]
fn second_ctrl_c_during_the_stop_is_counted_and_the_stop_completes() {
    let mut run = stopping_during_an_update(UPDATE_SCALE);
    let running = workers_running_now(&run);
    run.signal_group(Signal::Int);
    let second = run.next_signal_event(Signal::Int);
    run.assert_signal_event(&second, "counted", 2);
    if second.int("remaining") != Some(1) {
        run.fail(&format!("expected remaining=1; got {}", second.raw));
    }
    assert_graceful_end(&mut run, Signal::Int, DEFAULTS, &[]);
    run.assert_order(&[
        signal_event("SIGINT", "shutdown"),
        phase("AsyncService1", "stopping"),
        signal_event("SIGINT", "counted"),
        phase("MPM", "stopping"),
    ]);
    assert_workers_ignored(&run, Signal::Int, &running);
}

/// Escalation: the third Ctrl+C, while AsyncService1's stop waits for an update in every
/// worker, forces the exit: every component not yet stopped (app, AsyncService1, MPM, pool)
/// logs `failed` after it, every worker is gone (reported failed by its parent), the exit
/// event is still the last line, and the process still ends by SIGINT.
#[test]
fn third_ctrl_c_during_the_stop_forces_the_exit_and_leaves_no_worker() {
    // At 0.2 the update lasts 1 s: the two signals land well inside it.
    let mut run = stopping_during_an_update("0.2");
    let running = workers_running_now(&run);
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
    assert_no_pid_left(&mut run);
    assert_workers_ignored(&run, Signal::Int, &running);

    let forced = run
        .position(&signal_event("SIGINT", "forced"), 0)
        .expect("the forced event was waited for");
    let in_main = |e: &&Event| e.process() == Some("main");
    for (component, stopped_first) in [
        ("AsyncService2", true),
        ("MPM", false),
        ("pool", false),
        ("AsyncService1", false),
        ("app", false),
    ] {
        let stopped_before = run.log()[..forced]
            .iter()
            .filter(in_main)
            .any(|e| e.is(component, "stopped"));
        let failed_after = run.log()[forced..]
            .iter()
            .filter(in_main)
            .any(|e| e.is(component, "failed"));
        if stopped_before != stopped_first || failed_after == stopped_first {
            run.fail(&format!(
                "{component}: expected {} (stopped before the forced exit: {stopped_before}, failed after \
                 it: {failed_after})",
                if stopped_first {
                    "`stopped` before the forced exit"
                } else {
                    "`failed` after the forced exit"
                }
            ));
        }
    }
    if let Some(event) = run.log()[forced..]
        .iter()
        .filter(in_main)
        .find(|e| matches!(e.phase(), Some("stopping" | "stopped")))
    {
        run.fail(&format!(
            "nothing may stop after the forced exit; got {}",
            event.raw
        ));
    }
    // The workers were mid-update: none could have stopped before the forced exit.
    for worker in &running {
        match end_of(&run, worker) {
            Some(end) if end > forced => {}
            _ => run.fail(&format!(
                "{} (pid {}) was busy with the update: it must end after the forced exit",
                worker.name, worker.pid
            )),
        }
    }
    run.assert_order(&[
        signal_event("SIGINT", "forced"),
        phase("AsyncService1", "failed"),
        phase("app", "failed"),
        phase("app", "exit"),
    ]);
}

// ---------------------------------------------------------------------------------------
// Crashes: a worker's, then the parent's.

/// SIGKILLs the worker process that logged `started`, waits for its parent to report it
/// failed (naming its pid, saying SIGKILL), and returns the killed worker.
#[track_caller]
fn kill_worker(run: &mut Run, started: &Event) -> Worker {
    let victim = worker_from(run, started);
    run.sigkill(victim.pid());
    let report = wait_for_parents_report(run, &victim);
    if !report.str("cause").is_some_and(|c| c.contains("SIGKILL")) {
        run.fail(&format!(
            "the parent must say how the worker ended (SIGKILL): {}",
            report.raw
        ));
    }
    victim
}

/// Waits for the parent's report that `worker` ended: its `failed` line naming the pid.
#[track_caller]
fn wait_for_parents_report(run: &mut Run, worker: &Worker) -> Event {
    let (pid, name) = (worker.pid, worker.name.clone());
    run.wait_for(
        move |e: &Event| {
            e.process() == Some("main")
                && e.is(&name, "failed")
                && e.str("cause").is_some_and(|c| mentions_pid(c, pid))
        },
        PATIENCE,
    )
}

/// Waits for the parent to restart `killed` (restart number `restart`), for the replacement's
/// own `started` (a new pid) and for the parent's `MPM: worker-N replaced (pid P)`; returns the
/// `started` event.
///
/// The last two come from two processes writing to one pipe, so either may be read first:
/// the test waits for whichever comes, then for the other.
#[track_caller]
fn wait_for_replacement(run: &mut Run, killed: &Worker, restart: usize) -> Event {
    let (name, old) = (killed.name.clone(), killed.pid);
    let restarting = name.clone();
    let restart = i64::try_from(restart).expect("a restart count fits in i64");
    run.wait_for(
        move |e: &Event| {
            e.event() == Some("restarting")
                && e.str("worker") == Some(restarting.as_str())
                && e.int("restart") == Some(restart)
        },
        PATIENCE,
    );
    let replaced_name = name.clone();
    let is_started = move |e: &Event| {
        e.process() == Some(name.as_str()) && e.is(&name, "started") && e.int("pid") != Some(old)
    };
    let is_replaced = move |e: &Event| {
        e.process() == Some("main")
            && e.event() == Some("replaced")
            && e.str("worker") == Some(replaced_name.as_str())
    };
    let (first_started, first_replaced) = (is_started.clone(), is_replaced.clone());
    let first = run.wait_for(move |e: &Event| first_started(e) || first_replaced(e), PATIENCE);
    let (started, replaced) = if is_started(&first) {
        (first.clone(), run.wait_for(is_replaced, PATIENCE))
    } else {
        (run.wait_for(is_started, PATIENCE), first)
    };
    let new = started.int("pid").unwrap_or(-1);
    if replaced.int("worker_pid") != Some(new) {
        run.fail(&format!(
            "the parent must name the replacement's pid {new}: {}",
            replaced.raw
        ));
    }
    started
}

/// Supervision (OTP's restart intensity): a worker SIGKILLed is reported failed by its
/// parent, a replacement with a new pid starts and serves calls while the app keeps running;
/// a later Ctrl+C stops everything in order.
#[test]
fn a_worker_killed_is_replaced_and_the_app_keeps_running() {
    let mut run = complex(&["--time-scale", FAST]);
    run.wait_for(phase("app", "started"), PATIENCE);
    let started = worker_2_started(&run);
    let killed = kill_worker(&mut run, &started);
    let started = wait_for_replacement(&mut run, &killed, 1);
    let replacement = worker_from(&run, &started);
    let serving = replacement.clone();
    run.wait_for(
        move |e: &Event| serving.logged(e) && worker_processing(e),
        PATIENCE,
    );

    run.signal_group(Signal::Int);
    let event = run.next_signal_event(Signal::Int);
    run.assert_signal_event(&event, "shutdown", 1);
    assert_graceful_end(&mut run, Signal::Int, DEFAULTS, std::slice::from_ref(&killed));
    // The crash did not stop the app: only the Ctrl+C did.
    run.assert_order(&[
        phase("app", "started"),
        phase("worker-2", "failed"),
        signal_event("SIGINT", "shutdown"),
        phase("app", "stopping"),
    ]);
    if summary(&run, "restarts") != 1 {
        run.fail("the summary must count the one restart");
    }
}

/// A panic in a worker (`--inject-fault worker-panics`: the worker given busy task 0's first
/// call panics on it) is one JSON `event=panic` line from that worker, never panic text. The
/// worker says it failed and exits 1 (not 101, and its log flushed); its parent reports that
/// status and replaces it, and a later Ctrl+C stops everything in order.
#[test]
fn a_worker_that_panics_exits_1_with_one_panic_event_and_is_replaced() {
    let mut run = complex(&["--time-scale", FAST, "--inject-fault", "worker-panics"]);
    run.expect_panics(1);
    let panicked = run.wait_for(
        |e: &Event| e.process().is_some_and(|p| p.starts_with("worker-")) && e.event() == Some("panic"),
        PATIENCE,
    );
    let victim = worker_from(&run, &panicked);
    let (own, name) = (victim.clone(), victim.name.clone());
    run.wait_for(move |e: &Event| own.logged(e) && e.is(&name, "failed"), PATIENCE);
    let report = wait_for_parents_report(&mut run, &victim);
    if !report.str("cause").is_some_and(|c| c.ends_with("exit status 1")) {
        run.fail(&format!("a worker that panicked must exit 1: {}", report.raw));
    }
    wait_for_replacement(&mut run, &victim, 1);
    // Busy task 0's first call goes out while AsyncService2 may still be starting.
    if run.position(&phase("app", "started"), 0).is_none() {
        run.wait_for(phase("app", "started"), PATIENCE);
    }

    run.signal_group(Signal::Int);
    let event = run.next_signal_event(Signal::Int);
    run.assert_signal_event(&event, "shutdown", 1);
    assert_graceful_end(&mut run, Signal::Int, DEFAULTS, std::slice::from_ref(&victim));
    if summary(&run, "restarts") != 1 || summary(&run, "calls_failed") != 1 {
        run.fail("the summary must count the one restart and the one failed call");
    }
}

/// Supervision: past the restart budget (`--restart-limit 3`), the fourth crash of worker-2
/// is not repaired: the parent says the budget is exhausted, stops the application in order,
/// and exits 1, with no signal sent.
#[test]
fn a_worker_killed_four_times_exhausts_the_restart_budget_and_exits_1() {
    let mut run = complex(&["--time-scale", FAST, "--restart-limit", "3"]);
    run.wait_for(phase("app", "started"), PATIENCE);
    let mut started = worker_2_started(&run);
    let mut killed = Vec::new();
    for restart in 1..=3 {
        let victim = kill_worker(&mut run, &started);
        started = wait_for_replacement(&mut run, &victim, restart);
        killed.push(victim);
    }
    killed.push(kill_worker(&mut run, &started));
    run.wait_for(event("restart-budget-exhausted"), PATIENCE);

    run.wait_exit();
    run.assert_exit_code(1);
    run.assert_last_line_is_exit(1, None);
    assert_orderly_run(&mut run, DEFAULTS, &killed);
    run.assert_reverse_stop_order(&SERVICES);
    run.assert_sequence(&[
        &phase("app", "started"),
        &event("restart-budget-exhausted"),
        &phase("app", "stopping"),
    ]);
    if let Some(event) = run.log().iter().find(|e| e.str("signal").is_some()) {
        run.fail(&format!("no signal was sent, yet: {}", event.raw));
    }
    if summary(&run, "restarts") != 3 {
        run.fail("the summary must count 3 restarts");
    }
    if run
        .log()
        .iter()
        .any(|e| e.event() == Some("restarting") && e.int("restart").is_some_and(|r| r >= 4))
    {
        run.fail("a fourth restart is past the budget");
    }
}

/// Lesson 6 (no orphan, even after SIGKILL): the parent killed outright, no stop command
/// ever sent: every worker notices (EOF on its stdin), logs "the parent is gone", finishes
/// the item in hand and exits, all within 5 s.
#[test]
fn the_parent_killed_leaves_no_worker_behind() {
    let mut run = complex(&["--time-scale", FAST]);
    run.wait_for(phase("app", "started"), PATIENCE);
    run.wait_for(worker_processing, PATIENCE);
    let running = workers_running_now(&run);
    let pids: Vec<i32> = running.iter().map(Worker::pid).collect();
    if pids.len() != DEFAULTS.workers {
        run.fail(&format!(
            "expected {} workers running, saw {running:?}",
            DEFAULTS.workers
        ));
    }
    run.sigkill(run.pid());
    run.wait_gone(&pids, Duration::from_secs(5));

    let status = run.wait_exit();
    if status.signal() != Some(libc::SIGKILL) {
        run.fail(&format!("the parent was SIGKILLed, yet it ended with {status}"));
    }
    // What a worker logs after its parent died cannot be seen: its lines travel through the
    // parent, the run's one writer. That every worker noticed is proven by their exits.
    run.assert_clean_output();
    assert_no_pid_left(&mut run);
}

/// Lesson 7 (a failed start kills every spawned worker): worker-2 refuses to start; every
/// other worker is killed and reaped, MPM, AsyncService1 and the app fail, AsyncService2
/// never starts, and the process exits 1 with nothing left.
#[test]
fn a_worker_failing_its_start_fails_the_start_and_exits_1() {
    let mut run = complex(&["--time-scale", FAST, "--fail-start", "worker-2"]);
    run.wait_exit();
    run.assert_exit_code(1);
    run.assert_last_line_is_exit(1, None);
    assert_main_lifecycle(
        &run,
        &[
            "app starting",
            "AsyncService1 starting",
            "pool starting",
            "pool started",
            "MPM starting",
            "MPM failed",
            "pool stopping",
            "pool stopped",
            "AsyncService1 failed",
            "app failed",
            "app exit",
        ],
    );
    let worker_2 = workers(&run)
        .into_iter()
        .find(|w| w.name == "worker-2")
        .unwrap_or_else(|| run.fail("worker-2 logged nothing"));
    if worker_2.phases(&run) != ["starting", "failed"] {
        run.fail("worker-2 must log its own `starting` then `failed`");
    }
    let mpm_failed = run.position(&phase("MPM", "failed"), 0).unwrap_or_default();
    for worker in workers(&run) {
        if end_of(&run, &worker).is_none_or(|end| end > mpm_failed) {
            run.fail(&format!("{} must have ended before `MPM: failed`", worker.name));
        }
    }
    // The exact lifecycle above also pins the order: AsyncService1 stops the pool it had
    // started (a nested stop inside its failed start) and nothing else stops.
    run.assert_every_component_finished();
    run.assert_clean_output();
    assert_no_pid_left(&mut run);
}

// ---------------------------------------------------------------------------------------
// The blocking pool.

/// Lesson 3 (a full pool must not starve `stop()`): 16 busy tasks on 2 pool threads, Ctrl+C
/// while they call: the stop does not queue behind their jobs; it completes in well under a
/// second's work, not forced, with every busy task's cancellation logged.
#[test]
fn ctrl_c_with_the_pool_full_still_stops_promptly() {
    let mut run = complex(&["--time-scale", FAST, "--busy-tasks", "16", "--pool-threads", "2"]);
    run.wait_for(phase("app", "started"), PATIENCE);
    run.wait_for(worker_processing, PATIENCE);
    let sent = Instant::now();
    run.signal_group(Signal::Int);
    run.wait_exit();
    let took = sent.elapsed();
    let shape = Shape {
        busy_tasks: 16,
        ..DEFAULTS
    };
    assert_graceful_end(&mut run, Signal::Int, shape, &[]);
    // The stop's own work is ~0.1 s at this scale; a stop queued behind 16 tasks' jobs, or
    // one forced by --stop-timeout (30 s), would take far longer.
    if took > Duration::from_secs(3) {
        run.fail(&format!("the stop took {took:?} from the signal to the exit"));
    }
    if summary(&run, "calls_failed") != 0 {
        run.fail("shielded: no call may fail");
    }
}

/// Lesson 3 (a cancelled await does not stop the job): `--unshielded` tasks abandon the call
/// in hand; the pool and MPM release what was abandoned, and the stop still completes, not
/// forced, nothing left.
#[test]
fn unshielded_ctrl_c_with_calls_in_flight_abandons_them_and_stops_cleanly() {
    let mut run = complex(&["--time-scale", FAST, "--unshielded"]);
    run.wait_for(phase("app", "started"), PATIENCE);
    run.wait_for(worker_processing, PATIENCE);
    run.signal_group(Signal::Int);
    let event = run.next_signal_event(Signal::Int);
    run.assert_signal_event(&event, "shutdown", 1);
    assert_graceful_end(&mut run, Signal::Int, DEFAULTS, &[]);
    if run
        .position(&fields(&[("event", "cancelled"), ("in_hand", "finished")]), 0)
        .is_some()
    {
        run.fail("--unshielded tasks must not wait for the call in hand");
    }
}

// ---------------------------------------------------------------------------------------
// The hidden subcommand.

/// A pseudo-terminal: (controller, terminal). The terminal end is what a person's shell
/// would give as stdin.
fn pty() -> (OwnedFd, OwnedFd) {
    let (mut controller, mut terminal) = (-1, -1);
    // SAFETY: openpty(3) writes two fds into the pointers; name, termios and winsize may be null.
    let rc = unsafe {
        libc::openpty(
            &mut controller,
            &mut terminal,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty failed: {}", std::io::Error::last_os_error());
    // SAFETY: both fds were just opened by openpty and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(controller), OwnedFd::from_raw_fd(terminal)) }
}

/// The worker subcommand run by hand (stdin a terminal) says what it is and exits 2 at once,
/// instead of waiting forever for frames nobody will send.
#[test]
fn the_worker_subcommand_run_by_hand_exits_2_with_a_clear_message() {
    let (_controller, terminal) = pty();
    let mut child = Command::new(COMPLEX)
        .args(["worker", "--index", "1"])
        .process_group(0)
        .stdin(Stdio::from(terminal))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("failed to spawn complex worker");
    let pid = i32::try_from(child.id()).expect("a pid fits in i32");
    if !support::wait_exited(pid, PATIENCE) {
        let _ = child.kill();
        let _ = child.wait();
        panic!("`complex worker` with a terminal for stdin was still running after {PATIENCE:?}");
    }
    let status = child.wait().expect("failed to wait for complex worker");
    let mut stderr = String::new();
    let mut stdout = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        pipe.read_to_string(&mut stderr).expect("stderr is readable");
    }
    if let Some(mut pipe) = child.stdout.take() {
        pipe.read_to_string(&mut stdout).expect("stdout is readable");
    }
    let context = format!("status {status}\n--- stderr ---\n{stderr}--- stdout ---\n{stdout}");
    assert_eq!(status.code(), Some(2), "expected exit status 2; {context}");
    assert!(
        stderr.starts_with("error:"),
        "expected an `error:` message on stderr; {context}"
    );
    assert!(
        stderr.contains("complex") && stderr.lines().count() <= 3,
        "the message must say, briefly, what to run instead; {context}"
    );
    assert!(
        !stderr.contains("panicked at") && !stderr.contains('{') && stdout.is_empty(),
        "nothing but the message may be printed (no panic, no log event, no frame); {context}"
    );
}

// ---------------------------------------------------------------------------------------
// What a worker gets, and what it runs.

/// A descriptor the main process inherited without close-on-exec (fd 7, opened by the shell
/// that execs `complex`), and the service manager's variables: no worker gets either.
#[test]
fn a_worker_inherits_no_descriptor_but_its_pipes_nor_the_service_manager_s_variables() {
    let dir = std::env::temp_dir().join(format!("graceful-inherit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Nothing listens on the socket: the main process says so and goes on.
    let (marker, socket) = (dir.join("handed-down"), dir.join("notify"));
    std::fs::write(&marker, b"").unwrap();
    let options = Options {
        env: vec![
            ("NOTIFY_SOCKET".into(), socket.display().to_string()),
            ("WATCHDOG_USEC".into(), "60000000".into()),
            ("WATCHDOG_PID".into(), "1".into()),
        ],
        wrapper: vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("exec \"$0\" \"$@\" 7<'{}'", marker.display()),
        ],
        ..Options::default()
    };
    let mut run = Run::spawn_with(COMPLEX, &["--time-scale", FAST], &options);
    run.wait_for(phase("app", "started"), PATIENCE);
    let handed_down = |pid: i32| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|fds| {
                fds.flatten()
                    .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|to| to == marker))
            })
            .unwrap_or(false)
    };
    if !handed_down(run.pid()) {
        run.fail("the main process must hold fd 7 as handed down (the test's premise)");
    }
    for worker in workers_running_now(&run) {
        if handed_down(worker.pid()) {
            run.fail(&format!("{} (pid {}) inherited fd 7", worker.name, worker.pid));
        }
        let environ = std::fs::read(format!("/proc/{}/environ", worker.pid)).unwrap_or_default();
        for variable in ["NOTIFY_SOCKET=", "WATCHDOG_USEC=", "WATCHDOG_PID="] {
            if environ
                .split(|&b| b == 0)
                .any(|pair| pair.starts_with(variable.as_bytes()))
            {
                run.fail(&format!(
                    "{} (pid {}) has {variable} in its environment",
                    worker.name, worker.pid
                ));
            }
        }
    }
    run.signal_group(Signal::Int);
    run.wait_exit();
    run.assert_ended_by(Signal::Int);
    assert_no_pid_left(&mut run);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The program's file deleted while it runs (a package upgrade removes it): a worker killed
/// then is replaced all the same, by the program that is running, and the run stops in order.
#[test]
fn a_worker_is_replaced_by_the_running_program_once_its_file_is_deleted() {
    let dir = std::env::temp_dir().join(format!("graceful-deleted-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("complex");
    std::fs::copy(COMPLEX, &copy).unwrap();
    let mut run = Run::spawn(copy.to_str().unwrap(), &["--time-scale", FAST]);
    run.wait_for(phase("app", "started"), PATIENCE);
    std::fs::remove_dir_all(&dir).unwrap();
    let started = worker_2_started(&run);
    let victim = kill_worker(&mut run, &started);
    wait_for_replacement(&mut run, &victim, 1);
    run.signal_group(Signal::Int);
    assert_graceful_end(&mut run, Signal::Int, DEFAULTS, std::slice::from_ref(&victim));
}

/// Restarts back off: the first at once, the second 250 ms later, the third 500 ms later;
/// each wait is announced (`event=restart-backoff`) before it is waited.
#[test]
fn restarts_back_off_and_say_when_the_next_try_is() {
    let mut run = complex(&["--time-scale", FAST, "--restart-limit", "3"]);
    run.wait_for(phase("app", "started"), PATIENCE);
    let mut started = worker_2_started(&run);
    let mut killed = Vec::new();
    for restart in 1..=3 {
        let victim = kill_worker(&mut run, &started);
        let reported = Instant::now();
        started = wait_for_replacement(&mut run, &victim, restart);
        let delay = match restart {
            1 => Duration::ZERO,
            later => Duration::from_millis(250 << (later - 2)),
        };
        if reported.elapsed() < delay {
            run.fail(&format!("restart {restart} came before its {delay:?} backoff"));
        }
        killed.push(victim);
    }
    let delays: Vec<i64> = run
        .all(&event("restart-backoff"))
        .iter()
        .filter_map(|e| e.int("delay_ms"))
        .collect();
    if delays != [250, 500] {
        run.fail(&format!("expected backoffs of 250 and 500 ms, saw {delays:?}"));
    }
    run.signal_group(Signal::Int);
    assert_graceful_end(&mut run, Signal::Int, DEFAULTS, &killed);
}

/// Workers cost processes, not threads: the main process runs as many threads with 64
/// workers as with one (a single loop watches every worker's pipes).
#[test]
fn the_main_process_s_threads_do_not_grow_with_the_workers() {
    let threads = |workers: &str| {
        let mut run = complex(&["--time-scale", FAST, "--workers", workers]);
        run.wait_for(phase("app", "started"), PATIENCE);
        let status = std::fs::read_to_string(format!("/proc/{}/status", run.pid())).unwrap_or_default();
        let threads = status
            .lines()
            .find_map(|line| line.strip_prefix("Threads:"))
            .and_then(|count| count.trim().parse::<u32>().ok());
        run.signal_group(Signal::Int);
        run.wait_exit();
        run.assert_ended_by(Signal::Int);
        assert_no_pid_left(&mut run);
        threads.unwrap_or_else(|| run.fail("no thread count in /proc/<pid>/status"))
    };
    let (one, many) = (threads("1"), threads("64"));
    assert_eq!(one, many, "threads with 1 worker, with 64");
}

/// worker-2's own `started` line, which a run that has started holds.
fn worker_2_started(run: &Run) -> Event {
    run.log()
        .iter()
        .find(|e| e.process() == Some("worker-2") && e.is("worker-2", "started"))
        .cloned()
        .unwrap_or_else(|| run.fail("worker-2 must have started before the app did"))
}

//! What `tests/complex.rs` reads from a run's log about worker processes, and the checks
//! its tests share: the contract's rules for `complex`, written once.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::{Event, Run, Signal, mentions_pid, phase};

pub(crate) const COMPLEX: &str = env!("CARGO_BIN_EXE_complex");

/// Calls of 15-25 ms, an update every 500 ms lasting 250 ms, AsyncService2's start and stop
/// 50 ms each: a whole run in a fraction of a second.
pub(crate) const FAST: &str = "0.05";

/// Twice as slow: the update lasts 500 ms, AsyncService2's stop 100 ms, so a signal sent
/// when the update starts reaches AsyncService1's stop with the update still in hand.
pub(crate) const UPDATE_SCALE: &str = "0.1";

/// AsyncService2's start lasts 200 ms: a signal sent as the first worker is spawned surely
/// lands inside the start, even on a loaded machine.
pub(crate) const HANDSHAKE_SCALE: &str = "0.2";

/// The services, in the order `complex` starts them.
pub(crate) const SERVICES: [&str; 2] = ["AsyncService1", "AsyncService2"];

/// How a run was started, as far as the checks care.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    /// `--workers`
    pub(crate) workers: usize,
    /// `--busy-tasks`
    pub(crate) busy_tasks: usize,
}

/// The defaults of `complex`.
pub(crate) const DEFAULTS: Shape = Shape {
    workers: 4,
    busy_tasks: 2,
};

/// The main process's lifecycle in a run that started completely and stopped completely,
/// worker components left out (each worker process logs its own; see [`Worker`]).
pub(crate) const FULL_RUN: [&str; 21] = [
    "app starting",
    "AsyncService1 starting",
    "pool starting",
    "pool started",
    "MPM starting",
    "MPM started",
    "AsyncService1 started",
    "AsyncService2 starting",
    "AsyncService2 started",
    "app started",
    "app stopping",
    "AsyncService2 stopping",
    "AsyncService2 stopped",
    "AsyncService1 stopping",
    "MPM stopping",
    "MPM stopped",
    "pool stopping",
    "pool stopped",
    "AsyncService1 stopped",
    "app stopped",
    "app exit",
];

/// A worker process's own lifecycle when it starts and is stopped by its parent.
pub(crate) const WORKER_RUN: [&str; 4] = ["starting", "started", "stopping", "stopped"];

pub(crate) fn complex(args: &[&str]) -> Run {
    Run::spawn(COMPLEX, args)
}

// ---------------------------------------------------------------------------------------
// What a run's log says about its worker processes.

/// One worker process: a name (`worker-2`) and a pid. A replacement has the same name and
/// a new pid, so it is another `Worker`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Worker {
    pub(crate) name: String,
    pub(crate) pid: i64,
}

impl Worker {
    pub(crate) fn of(event: &Event) -> Option<Self> {
        let name = event.process().filter(|&p| p != "main")?;
        Some(Self {
            name: name.to_owned(),
            pid: event.int("pid")?,
        })
    }

    /// Whether `event` was logged by this worker process itself.
    pub(crate) fn logged(&self, event: &Event) -> bool {
        Self::of(event).as_ref() == Some(self)
    }

    pub(crate) fn pid(&self) -> i32 {
        i32::try_from(self.pid).expect("a pid fits in i32")
    }

    /// The phases it logged about itself, in order.
    pub(crate) fn phases<'a>(&self, run: &'a Run) -> Vec<&'a str> {
        run.log()
            .iter()
            .filter(|e| self.logged(e) && e.component() == Some(self.name.as_str()))
            .filter_map(Event::phase)
            .collect()
    }
}

/// Every worker process that logged anything, in the order each first spoke.
pub(crate) fn workers(run: &Run) -> Vec<Worker> {
    let mut seen = Vec::new();
    for worker in run.log().iter().filter_map(Worker::of) {
        if !seen.contains(&worker) {
            seen.push(worker);
        }
    }
    seen
}

/// The worker whose `started` the test last waited for, from that event.
#[track_caller]
pub(crate) fn worker_from(run: &Run, started: &Event) -> Worker {
    Worker::of(started).unwrap_or_else(|| run.fail(&format!("not a worker's event: {}", started.raw)))
}

/// The pids `event` names besides its writer's own: a `worker_pid` field, or `pid N` in its
/// message or cause (`MPM: spawned worker-2 (pid 4242)`).
pub(crate) fn pids_mentioned(event: &Event) -> BTreeSet<i32> {
    let mut pids: BTreeSet<i32> = event
        .int("worker_pid")
        .and_then(|p| i32::try_from(p).ok())
        .into_iter()
        .collect();
    for text in [event.str("message"), event.str("cause")].into_iter().flatten() {
        for (at, _) in text.match_indices("pid ") {
            let digits: String = text[at + 4..].chars().take_while(char::is_ascii_digit).collect();
            pids.extend(digits.parse::<i32>().ok());
        }
    }
    pids
}

/// Every pid the log names: each writer's own `pid`, and those its lines mention. A worker
/// killed before it could log is still named by its parent.
pub(crate) fn pids_named(events: &[Event]) -> BTreeSet<i32> {
    let mut pids = BTreeSet::new();
    for event in events {
        pids.extend(event.int("pid").and_then(|p| i32::try_from(p).ok()));
        pids.extend(pids_mentioned(event));
    }
    pids
}

/// Where `worker` ended: its own `stopped`/`failed`, or its parent's `failed` naming its pid.
pub(crate) fn end_of(run: &Run, worker: &Worker) -> Option<usize> {
    run.log().iter().position(|e| {
        e.component() == Some(worker.name.as_str())
            && matches!(e.phase(), Some("stopped" | "failed"))
            && (worker.logged(e)
                || (e.process() == Some("main")
                    && e.str("cause").is_some_and(|c| mentions_pid(c, worker.pid))))
    })
}

/// A worker's own log line with `event=name` (`stop-command`, `parent-gone`, ...).
pub(crate) fn worker_did(run: &Run, worker: &Worker, name: &str) -> bool {
    run.log()
        .iter()
        .any(|e| worker.logged(e) && e.event() == Some(name))
}

/// Whether `worker` logged that it began work on `method` (`event=work`).
pub(crate) fn worker_worked_on(run: &Run, worker: &Worker, method: &str) -> bool {
    run.log()
        .iter()
        .any(|e| worker.logged(e) && e.event() == Some("work") && e.str("method") == Some(method))
}

/// A worker's `event=work` line for a `process_*` method: a call in that worker's hands.
pub(crate) fn worker_processing(event: &Event) -> bool {
    event.process() != Some("main")
        && event.event() == Some("work")
        && event.str("method").is_some_and(|m| m.starts_with("process_"))
}

// ---------------------------------------------------------------------------------------
// Checks shared by the tests.

/// The main process's lifecycle without the worker components it reports.
pub(crate) fn main_lifecycle(run: &Run) -> Vec<String> {
    run.lifecycle()
        .into_iter()
        .filter(|label| !label.starts_with("worker-"))
        .collect()
}

#[track_caller]
pub(crate) fn assert_main_lifecycle(run: &Run, expected: &[&str]) {
    let seen = main_lifecycle(run);
    if seen != expected {
        run.fail(&format!(
            "the main process's lifecycle differs\n expected: {expected:?}\n     seen: {seen:?}"
        ));
    }
}

/// The `MPM.stop: summary` event's integer `field`.
#[track_caller]
pub(crate) fn summary(run: &Run, field: &str) -> i64 {
    let event = run
        .log()
        .iter()
        .find(|e| e.process() == Some("main") && e.event() == Some("summary"))
        .unwrap_or_else(|| run.fail("no `MPM.stop: summary` event"));
    event
        .int(field)
        .unwrap_or_else(|| run.fail(&format!("the summary has no integer {field}: {}", event.raw)))
}

/// Asserts no worker logged a signal event other than `ignored` (a worker never acts on a
/// signal: its parent decides), and every worker in `must_have_seen` logged `signal` ignored.
#[track_caller]
pub(crate) fn assert_workers_ignored(run: &Run, signal: Signal, must_have_seen: &[Worker]) {
    let acted = run.all(&|e: &Event| {
        e.process() != Some("main") && e.str("signal").is_some() && e.str("action") != Some("ignored")
    });
    if let Some(event) = acted.first() {
        run.fail(&format!("a worker must only ever ignore a signal: {}", event.raw));
    }
    for worker in must_have_seen {
        let ignored = run
            .log()
            .iter()
            .any(|e| worker.logged(e) && e.is_signal(signal.name(), "ignored"));
        if !ignored {
            run.fail(&format!(
                "{} (pid {}) was running when {} was sent to the group, and never logged it ignored",
                worker.name,
                worker.pid,
                signal.name()
            ));
        }
    }
}

/// Asserts the only `failed` events are the parent's reports of the workers in `killed`.
#[track_caller]
pub(crate) fn assert_no_failures_but(run: &Run, killed: &[Worker]) {
    // The parent's report of each one's end, and the worker's own word if it panicked.
    let expected = |e: &Event| {
        killed.iter().any(|w| {
            e.component() == Some(w.name.as_str())
                && (e.process() == Some("main") && e.str("cause").is_some_and(|c| mentions_pid(c, w.pid))
                    || w.logged(e) && e.str("cause").is_some_and(|c| c.starts_with("panicked")))
        })
    };
    if let Some(event) = run
        .log()
        .iter()
        .find(|e| e.phase() == Some("failed") && !expected(e))
    {
        run.fail(&format!("nothing may fail in this run: {}", event.raw));
    }
}

#[track_caller]
pub(crate) fn assert_not_forced(run: &Run) {
    if let Some(event) = run
        .log()
        .iter()
        .find(|e| e.str("action") == Some("forced") || e.str("unfinished").is_some())
    {
        run.fail(&format!("the exit must not be forced: {}", event.raw));
    }
}

/// Asserts every worker process started and was stopped by its parent: its own
/// `starting started stopping stopped`, except those in `killed`, which only started (a
/// worker killed says nothing more; one that failed by itself, a panic, says `failed`).
#[track_caller]
pub(crate) fn assert_workers_stopped(run: &Run, workers_expected: usize, killed: &[Worker]) {
    const FAILED_BY_ITSELF: [&str; 3] = ["starting", "started", "failed"];
    let all = workers(run);
    let names: BTreeSet<&str> = all.iter().map(|w| w.name.as_str()).collect();
    if names.len() != workers_expected {
        run.fail(&format!("expected {workers_expected} workers, saw {names:?}"));
    }
    for worker in &all {
        let phases = worker.phases(run);
        let expected: &[&str] = if killed.contains(worker) {
            if phases == FAILED_BY_ITSELF {
                continue;
            }
            &WORKER_RUN[..2]
        } else {
            &WORKER_RUN
        };
        if phases != expected {
            run.fail(&format!(
                "{} (pid {}): expected its own phases {expected:?}, saw {phases:?}",
                worker.name, worker.pid
            ));
        }
    }
}

/// Asserts the order inside AsyncService1's stop (the reference's, and docs/contract.md's): the
/// update task, then each of the `busy_tasks` tasks, then MPM (every worker's end before
/// MPM's `stopped`), then the pool; all of it after AsyncService2 stopped.
#[track_caller]
pub(crate) fn assert_async_service1_stop_order(run: &Run, busy_tasks: usize) {
    // A task's end: `cancelled`, or `abandoned` when an unshielded task left its call.
    let ended = |e: &Event| matches!(e.event(), Some("cancelled" | "abandoned"));
    let update_task_ended = |e: &Event| ended(e) && e.str("task") == Some("update");
    run.assert_sequence(&[
        &phase("AsyncService2", "stopped"),
        &phase("AsyncService1", "stopping"),
        &update_task_ended,
    ]);
    let update_cancelled = run.position(&update_task_ended, 0).unwrap_or_default();
    let mpm_stopping = run.position(&phase("MPM", "stopping"), 0).unwrap_or_default();
    for index in 0..busy_tasks {
        let at = run.position(
            &|e: &Event| ended(e) && e.str("task") == Some("busy") && e.int("index") == Some(index as i64),
            0,
        );
        match at {
            Some(at) if update_cancelled < at && at < mpm_stopping => {}
            Some(at) => run.fail(&format!(
                "busy task {index}'s cancellation (line {}) must come after the update task's (line {}) \
                 and before `MPM: stopping` (line {})",
                at + 1,
                update_cancelled + 1,
                mpm_stopping + 1
            )),
            None => run.fail(&format!(
                "busy task {index} never logged its end (event=cancelled or abandoned, task=busy, \
                 index={index})"
            )),
        }
    }
    // Every worker's end before MPM's `stopped`: a rule of the contract, checked where the
    // torture tool checks it too.
    run.assert_reverse_stop_order(&SERVICES);
    run.assert_sequence(&[
        &phase("MPM", "stopping"),
        &phase("MPM", "stopped"),
        &phase("pool", "stopping"),
        &phase("pool", "stopped"),
        &phase("AsyncService1", "stopped"),
        &phase("app", "stopped"),
        &phase("app", "exit"),
    ]);
}

/// Asserts no pid the log names, worker or parent, is still alive (beyond the harness's
/// check of the `pid` keys and the process group: a worker killed before it logged a line
/// is only named in its parent's messages).
#[track_caller]
pub(crate) fn assert_no_pid_left(run: &mut Run) {
    run.assert_nothing_left();
    let pids: Vec<i32> = pids_named(run.log()).into_iter().collect();
    run.wait_gone(&pids, Duration::ZERO);
}

/// Everything a complete, orderly run ended by `signal` promises: see the module docs.
/// `killed` are the workers the test SIGKILLed (reported failed by the parent, replaced).
#[track_caller]
pub(crate) fn assert_graceful_end(run: &mut Run, signal: Signal, shape: Shape, killed: &[Worker]) {
    run.assert_graceful_end_by(signal, &SERVICES);
    assert_orderly_run(run, shape, killed);
}

/// The checks of [`assert_graceful_end`] that do not depend on how the run was ended.
#[track_caller]
pub(crate) fn assert_orderly_run(run: &mut Run, shape: Shape, killed: &[Worker]) {
    if killed.is_empty() {
        // Nothing was killed, so the parent reported no worker: its lifecycle is exactly this.
        run.assert_lifecycle(&FULL_RUN);
    } else {
        assert_main_lifecycle(run, &FULL_RUN);
    }
    assert_async_service1_stop_order(run, shape.busy_tasks);
    assert_workers_stopped(run, shape.workers, killed);
    assert_no_failures_but(run, killed);
    assert_not_forced(run);
    run.assert_every_component_finished();
    run.assert_clean_output();
    assert_no_pid_left(run);
}

/// The workers known to be running at this moment: every worker process whose line the test
/// has read, and every one the parent said it spawned. A signal sent now reaches them all.
pub(crate) fn workers_running_now(run: &Run) -> Vec<Worker> {
    let mut running = workers(run);
    for event in run.log().iter().filter(|e| e.process() == Some("main")) {
        if event.event() != Some("spawned") {
            continue;
        }
        let Some(name) = event.str("worker").map(str::to_owned) else {
            continue;
        };
        for pid in pids_mentioned(event) {
            let worker = Worker {
                name: name.clone(),
                pid: i64::from(pid),
            };
            if !running.contains(&worker) {
                running.push(worker);
            }
        }
    }
    running.retain(|w| end_of(run, w).is_none());
    running
}

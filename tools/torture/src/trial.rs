//! One trial: spawn the binary, act at the planned moment, wait for the end, hunt leftovers,
//! and hand back everything observed for the checks.
//!
//! Every wait is on an event of the run (a line, the exit, the end of stderr) with a bound;
//! the only deliberate delays are the plan's: the moment, the gap between escalating
//! signals, and the pause between killing a worker and the Ctrl+C.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::env::Environment;
use crate::phase::{Phase, PhaseTracker};
use crate::plan::TrialPlan;
use crate::procs;
use crate::run::{Controls, Ended, Event, Run};
use crate::scenario::{Scenario, Signal};
use crate::stall;
use logread::Event as Line;

/// The longest a start may take before the run is considered hung: the manager's own
/// bootstrap timeout (5 s) with room to spare.
const START_BOUND: Duration = Duration::from_secs(8);
/// After the main process is reaped, how long its workers may take to be gone. They should
/// be gone already (the manager reaps them); a worker SIGKILLed by a forced exit may still
/// be tearing down.
const GRACE_AFTER_EXIT: Duration = Duration::from_millis(250);
/// How long a process seen in the middle of exiting may take to be gone.
const SETTLE: Duration = Duration::from_millis(200);
/// How long killing the leftovers may take.
const CLEANUP_BOUND: Duration = Duration::from_secs(3);

/// Where a signal went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The whole process group (Ctrl+C).
    Group,
    /// The main process alone.
    Main,
    /// One worker, by its name and pid.
    Worker(String, i32),
}

/// A signal the tool sent.
#[derive(Clone, Debug)]
pub struct Sent {
    /// Since the spawn.
    pub at: Duration,
    /// Which.
    pub sig: Signal,
    /// To whom.
    pub target: Target,
}

/// A process of the run still alive when it should not be.
#[derive(Clone, Debug)]
pub struct Leftover {
    /// Its pid.
    pub pid: i32,
    /// Its state letter (`S`, `R`, ...).
    pub state: char,
    /// Its command line.
    pub cmdline: String,
}

/// Everything a trial observed.
#[derive(Debug)]
pub struct Observation {
    /// What was planned.
    pub plan: TrialPlan,
    /// The main process's pid (and group id); 0 if the spawn failed.
    pub main_pid: i32,
    /// stderr, every process's lines, in pipe order.
    pub lines: Vec<Line>,
    /// The main process's stdout (should be empty).
    pub stdout: Vec<Line>,
    /// The signals sent, in order.
    pub sent: Vec<Sent>,
    /// The tool's own account of the trial, for the failure report.
    pub notes: Vec<(Duration, String)>,
    /// When and how the main process ended (reaped), since the spawn.
    pub ended: Option<(Duration, Ended)>,
    /// When stderr ended: every process of the run had exited.
    pub stderr_end: Option<Duration>,
    /// The main process outlived every bound and was killed by the tool.
    pub hung: bool,
    /// Processes of the run alive after the main process's end (and its grace).
    pub leftovers: Vec<Leftover>,
    /// Where in the run's life the scenario acted; `None` for `run-for`.
    pub phase: Option<Phase>,
    /// Something went wrong in the tool itself (the spawn, the wait).
    pub tool_error: Option<String>,
    /// How long the trial took, wall clock.
    pub duration: Duration,
    /// The longest stall of the tool's own scheduling during the trial (see `stall.rs`):
    /// a large one makes the machine, not the suite, the first suspect of a late stop.
    pub stall: Option<Duration>,
    /// When the environment held the main process stopped (SIGSTOP, then SIGCONT), since
    /// the spawn: a signal sent meanwhile reaches it only at the SIGCONT.
    pub held_stopped: Option<(Duration, Duration)>,
}

impl Observation {
    /// The SIGKILL that the `kill-main` scenario sent, if it went out before the end.
    pub fn main_killed(&self) -> bool {
        self.sent
            .iter()
            .any(|s| s.sig == Signal::Kill && s.target == Target::Main)
    }

    /// From the decisive signal (the one the stop answers) to the main process's reaping;
    /// for `kill-main`, from the SIGKILL to the last worker gone (the end of stderr).
    pub fn latency(&self) -> Option<Duration> {
        let decisive = self
            .sent
            .iter()
            .find(|s| matches!(s.target, Target::Group | Target::Main))?;
        let end = if self.main_killed() {
            self.stderr_end?
        } else {
            self.ended?.0
        };
        end.checked_sub(decisive.at)
    }
}

/// RLIMIT_NPROC counts every process and thread of the user, machine-wide: two limited
/// trials at once would take each other's share. One at a time.
static LIMITED: Mutex<()> = Mutex::new(());

/// Runs the trial `plan` with the binaries in `bin_dir`.
pub fn run(plan: TrialPlan, bin_dir: &Path) -> Observation {
    let environment = plan.environment;
    let _limited = matches!(environment, Environment::ProcessLimit { .. })
        .then(|| LIMITED.lock().unwrap_or_else(|p| p.into_inner()));
    let hog = CpuHog::start(environment);
    let started = Instant::now();
    let program = bin_dir.join(plan.binary.name());
    let mut observation = Observation {
        plan,
        main_pid: 0,
        lines: Vec::new(),
        stdout: Vec::new(),
        sent: Vec::new(),
        notes: Vec::new(),
        ended: None,
        stderr_end: None,
        hung: false,
        leftovers: Vec::new(),
        phase: None,
        tool_error: None,
        duration: Duration::ZERO,
        stall: None,
        held_stopped: None,
    };
    match Run::spawn(&program, &observation.plan.args(), &environment.wrapper()) {
        Ok(run) => {
            procs::register_group(run.pid);
            observation.main_pid = run.pid;
            let driver = Driver::start(environment, run.controls(), run.spawned);
            let mut trial = Trial {
                run,
                program: program.display().to_string(),
                obs: observation,
                tracker: PhaseTracker::default(),
                stderr_ended: false,
            };
            trial.act();
            trial.await_end();
            if trial.obs.ended.is_none() {
                // The waiter failed: nothing else will end this run.
                trial.send(Signal::Kill, Target::Group);
            }
            trial.clean_up();
            procs::unregister_group(trial.run.pid);
            observation = trial.obs;
            if let Some(driver) = driver {
                let (notes, held_stopped) = driver.finish();
                observation.notes.extend(notes);
                observation.notes.sort_by_key(|(at, _)| *at);
                observation.held_stopped = held_stopped;
            }
        }
        Err(error) => {
            observation.tool_error = Some(format!("cannot spawn {}: {error}", program.display()));
        }
    }
    drop(hog);
    observation.duration = started.elapsed();
    observation.stall = stall::longest_between(started, Instant::now());
    observation
}

/// The `cpu-hog` environment: threads spinning until the trial ends (dropped).
struct CpuHog {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl CpuHog {
    fn start(environment: Environment) -> Option<Self> {
        let Environment::CpuHog { threads } = environment else {
            return None;
        };
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..threads)
            .filter_map(|n| {
                let stop = stop.clone();
                std::thread::Builder::new()
                    .name(format!("torture-hog-{n}"))
                    .spawn(move || {
                        let mut x = 0_u64;
                        while !stop.load(Ordering::Relaxed) {
                            x = std::hint::black_box(
                                x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1),
                            );
                        }
                    })
                    .ok()
            })
            .collect();
        Some(Self { stop, threads })
    }
}

impl Drop for CpuHog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// The environment's timed actions (`stall-reader`, `stop-main`, `stop-group`), on a thread
/// of their own so the trial's own moment and waits go on meanwhile. Its delays are the
/// plan's, like the scenario's moment.
struct Driver {
    cancel: Sender<()>,
    thread: JoinHandle<DriverLog>,
}

/// What the environment's driver did: its notes, and the span it held the main process
/// stopped (SIGSTOP to SIGCONT, since the spawn), if it did.
type DriverLog = (Vec<(Duration, String)>, Option<(Duration, Duration)>);

impl Driver {
    fn start(environment: Environment, controls: Controls, spawned: Instant) -> Option<Self> {
        let (at, length) = match environment {
            Environment::StallReader { at, length } | Environment::Stop { at, length, .. } => (at, length),
            _ => return None,
        };
        let (cancel, cancelled) = channel::<()>();
        let thread = std::thread::Builder::new()
            .name("torture-environment".into())
            .spawn(move || {
                let mut notes = Vec::new();
                let since = |t: Instant| t.saturating_duration_since(spawned);
                // Waits until `deadline`; false if the trial ended first.
                let wait = |deadline: Instant| {
                    matches!(
                        cancelled.recv_timeout(deadline.saturating_duration_since(Instant::now())),
                        Err(RecvTimeoutError::Timeout)
                    )
                };
                let mut held = None;
                if !wait(spawned + at) {
                    return (notes, held);
                }
                match environment {
                    Environment::StallReader { .. } => {
                        controls.stall_reading(true);
                        notes.push((since(Instant::now()), "environment: stderr no longer read".into()));
                        wait(Instant::now() + length);
                        controls.stall_reading(false);
                        notes.push((since(Instant::now()), "environment: stderr read again".into()));
                    }
                    Environment::Stop { group, .. } => {
                        let whom = if group { "the group" } else { "the main process" };
                        let Some(stopped) = controls.signal(Signal::Stop, group) else {
                            notes.push((
                                since(Instant::now()),
                                format!("environment: SIGSTOP to {whom} not sent: the run had ended"),
                            ));
                            return (notes, held);
                        };
                        notes.push((since(stopped), format!("environment: SIGSTOP to {whom}")));
                        wait(stopped + length);
                        match controls.signal(Signal::Cont, group) {
                            Some(at) => {
                                held = Some((since(stopped), since(at)));
                                notes.push((since(at), format!("environment: SIGCONT to {whom}")));
                            }
                            None => notes.push((
                                since(Instant::now()),
                                "environment: SIGCONT not sent: the run had ended".into(),
                            )),
                        }
                    }
                    _ => {}
                }
                (notes, held)
            })
            .ok()?;
        Some(Self { cancel, thread })
    }

    /// Ends the driver (resuming whatever it held: the reader, a stopped process) and
    /// returns what it did.
    fn finish(self) -> DriverLog {
        let _ = self.cancel.send(());
        self.thread.join().unwrap_or_default()
    }
}

struct Trial {
    run: Run,
    /// The executable, as its processes' command lines begin.
    program: String,
    obs: Observation,
    tracker: PhaseTracker,
    stderr_ended: bool,
}

impl Trial {
    fn exited(&self) -> bool {
        self.obs.ended.is_some() || self.obs.tool_error.is_some()
    }

    fn note(&mut self, text: String) {
        self.obs.notes.push((self.run.elapsed(), text));
    }

    fn handle(&mut self, event: Event) {
        let since = |at: Instant| at.saturating_duration_since(self.run.spawned);
        match event {
            Event::Stderr(at, text) => {
                let line = logread::parse_at(text, since(at));
                self.tracker.observe(&line);
                self.obs.lines.push(line);
            }
            Event::Stdout(at, text) => self.obs.stdout.push(logread::parse_at(text, since(at))),
            Event::StderrEnd(at) => {
                self.stderr_ended = true;
                self.obs.stderr_end = Some(since(at));
            }
            Event::StdoutEnd => {}
            Event::Exited(at, ended) => self.obs.ended = Some((since(at), ended)),
            Event::WaitFailed(error) => self.obs.tool_error = Some(error),
        }
    }

    /// Handles events until `done` holds or `deadline` passes; returns whether `done` held.
    fn pump_until(&mut self, deadline: Instant, done: impl Fn(&Self) -> bool) -> bool {
        loop {
            if done(self) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.run.events.recv_timeout(left) {
                Ok(event) => self.handle(event),
                Err(RecvTimeoutError::Timeout) => return done(self),
                Err(RecvTimeoutError::Disconnected) => return done(self),
            }
        }
    }

    /// Takes in whatever has already arrived, so the phase is as fresh as it can be.
    fn drain(&mut self) {
        while let Ok(event) = self.run.events.try_recv() {
            self.handle(event);
        }
    }

    /// A random delay of the plan (the point of the tool), still taking events in.
    fn pause(&mut self, delay: Duration) {
        self.pump_until(Instant::now() + delay, Self::exited);
    }

    fn send(&mut self, sig: Signal, target: Target) {
        let at = match &target {
            Target::Group => self.run.signal_group(sig),
            Target::Main => self.run.signal_main(sig),
            Target::Worker(_, pid) => self.run.kill_member(*pid),
        };
        match at {
            Some(at) => self.obs.sent.push(Sent {
                at: at.saturating_duration_since(self.run.spawned),
                sig,
                target,
            }),
            None => self.note(format!(
                "{} to {target:?} not sent: the process had ended",
                sig.name()
            )),
        }
    }

    fn act(&mut self) {
        let plan = self.obs.plan.clone();
        self.pump_until(self.run.spawned + plan.moment, Self::exited);
        if plan.scenario == Scenario::RunFor {
            return;
        }
        self.drain();
        if self.exited() {
            self.obs.phase = Some(Phase::AfterExit);
            self.note("the moment came after the exit: nothing sent".into());
            return;
        }
        self.obs.phase = Some(self.tracker.current());
        match plan.scenario {
            Scenario::SigintGroup => self.send(Signal::Int, Target::Group),
            Scenario::SigtermMain => self.send(Signal::Term, Target::Main),
            Scenario::SighupMain => self.send(Signal::Hup, Target::Main),
            Scenario::SigintTwice | Scenario::SigintThrice => {
                let count = if plan.scenario == Scenario::SigintTwice {
                    2
                } else {
                    3
                };
                for n in 0..count {
                    if n > 0 {
                        self.pause(plan.signal_gap);
                    }
                    self.send(Signal::Int, Target::Group);
                }
            }
            Scenario::KillWorker => {
                self.kill_a_worker(plan.victim_pick);
                self.pause(plan.follow_up);
                self.send(Signal::Int, Target::Group);
            }
            Scenario::KillMain => self.send(Signal::Kill, Target::Main),
            Scenario::RunFor => {}
        }
    }

    /// SIGKILLs a live worker. Before any worker has started, waits for one (bounded by the
    /// handshake's own timeout); once the stop is under way there may be none left.
    fn kill_a_worker(&mut self, pick: u64) {
        let stop_begun = |t: &Self| t.tracker.current() >= Phase::Stop;
        if live_workers(&self.obs.lines).is_empty() && !stop_begun(self) {
            self.pump_until(Instant::now() + START_BOUND, |t| {
                t.exited() || stop_begun(t) || !live_workers(&t.obs.lines).is_empty()
            });
        }
        let live: Vec<(String, i32)> = live_workers(&self.obs.lines).into_iter().collect();
        if live.is_empty() {
            self.note("no live worker to kill (the stop had begun or the run had ended)".into());
            return;
        }
        let (name, pid) = live[(pick % live.len() as u64) as usize].clone();
        self.send(Signal::Kill, Target::Worker(name, pid));
    }

    fn await_end(&mut self) {
        let plan = &self.obs.plan;
        let bound = START_BOUND
            + plan.run_for
            + plan.stop_timeout
            + Duration::from_secs(2)
            + plan.environment.extra_time();
        let deadline = self.run.spawned + plan.moment + bound;
        if self.pump_until(deadline, Self::exited) {
            return;
        }
        self.obs.hung = true;
        self.note(format!(
            "still running {bound:?} after the moment: killing the group"
        ));
        self.send(Signal::Kill, Target::Group);
        if !self.pump_until(Instant::now() + CLEANUP_BOUND, Self::exited) {
            self.obs.tool_error = Some("the main process survived SIGKILL".into());
        }
    }

    /// Waits for every process of the run to be gone, records any that is not, kills and
    /// reaps them.
    fn clean_up(&mut self) {
        let Some((ended_at, _)) = self.obs.ended else {
            return;
        };
        let grace = if self.obs.main_killed() {
            self.obs.plan.orphan_bound()
        } else {
            GRACE_AFTER_EXIT
        };
        // A stalled reader reads the pipe's end only once it reads again.
        let read_again = self.obs.plan.environment.stall_end().unwrap_or_default();
        let until = self.run.spawned + (ended_at + grace).max(read_again + grace);
        self.pump_until(until, |t| t.stderr_ended);
        // The end of stderr says only that the main process is gone (the workers' lines
        // travel through it): the workers get the rest of the grace, waited on their pidfds.
        self.obs.leftovers = self.find_leftovers(until.max(Instant::now() + SETTLE));
        if !self.obs.leftovers.is_empty() {
            let pids: Vec<i32> = self.obs.leftovers.iter().map(|l| l.pid).collect();
            self.note(format!("leftover processes {pids:?}: killing them"));
            let survivors = procs::kill_group_members(self.run.pid, CLEANUP_BOUND);
            for leftover in &self.obs.leftovers {
                if let Some(fd) = procs::Pidfd::open(leftover.pid) {
                    let _ = fd.send(Signal::Kill);
                }
            }
            if !survivors.is_empty() {
                self.obs.tool_error = Some(format!("leftovers survived SIGKILL: {survivors:?}"));
            }
            self.pump_until(Instant::now() + CLEANUP_BOUND, |t| t.stderr_ended);
        }
        procs::reap_group_zombies(self.run.pid);
        self.drain();
    }

    /// The run's processes still alive: members of its group (unless the group id was
    /// reused, which needs the group to have emptied), and pids from its logs that left it.
    fn find_leftovers(&self, settle_until: Instant) -> Vec<Leftover> {
        let pgid = self.run.pid;
        let mut found: BTreeMap<i32, procs::Stat> = BTreeMap::new();
        // Our leader is reaped: a live /proc entry under its pid is somebody new.
        let reused = procs::stat(pgid).is_some();
        if !reused && !procs::group_is_gone(pgid) {
            for member in procs::group_members(pgid)
                .into_iter()
                .filter(procs::Stat::is_alive)
            {
                found.insert(member.pid, member);
            }
        }
        for pid in logged_pids(&self.obs.lines) {
            if pid == pgid || found.contains_key(&pid) {
                continue;
            }
            let Some(stat) = procs::stat(pid) else { continue };
            // Outside the group, only a process of this run's executable (the round's private
            // copy), started after it and in no other trial's group: never a stranger that
            // happens to hold a pid from our log.
            let ours = stat.start_time >= self.run.start_time
                && !procs::is_other_trials_group(stat.pgrp, pgid)
                && procs::cmdline(pid).starts_with(&self.program);
            if stat.is_alive() && ours {
                found.insert(pid, stat);
            }
        }
        // A process closes its files a moment before it is gone, and an orphaned worker
        // finishes the item in hand first: each is waited for on its pidfd until
        // `settle_until` before it is called left.
        procs::alive_after(found.into_values().collect(), settle_until)
            .into_iter()
            .map(|s| Leftover {
                pid: s.pid,
                state: s.state,
                cmdline: procs::cmdline(s.pid),
            })
            .collect()
    }
}

/// Workers that logged `started` and nothing final since: name → pid.
pub fn live_workers(lines: &[Line]) -> BTreeMap<String, i32> {
    let mut live = BTreeMap::new();
    for line in lines {
        let (Some(component), Some(phase)) = (line.component(), line.phase()) else {
            continue;
        };
        if !component.starts_with("worker-") {
            continue;
        }
        match phase {
            // The worker's own line: its `pid` is the worker's.
            "started" if line.process() == Some(component) => {
                if let Some(pid) = line.int("pid") {
                    live.insert(component.to_owned(), pid as i32);
                }
            }
            "stopping" | "stopped" | "failed" => {
                live.remove(component);
            }
            _ => {}
        }
    }
    live
}

/// Every pid the run's lines mention in their `pid` key.
fn logged_pids(lines: &[Line]) -> Vec<i32> {
    let mut pids: Vec<i32> = lines
        .iter()
        .filter_map(|l| l.int("pid"))
        .map(|p| p as i32)
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(json: &str) -> Line {
        logread::parse(json)
    }

    /// The victim of `kill-worker` comes from the workers' own `started` lines; a worker the
    /// manager reported failed is not live, its replacement is, under its new pid.
    #[test]
    fn live_workers_follow_restarts() {
        let lines = [
            line(r#"{"process":"worker-1","pid":11,"component":"worker-1","phase":"started"}"#),
            line(r#"{"process":"worker-2","pid":12,"component":"worker-2","phase":"started"}"#),
            line(r#"{"process":"main","pid":10,"component":"worker-1","phase":"failed"}"#),
            line(r#"{"process":"worker-1","pid":13,"component":"worker-1","phase":"starting"}"#),
            line(r#"{"process":"worker-1","pid":13,"component":"worker-1","phase":"started"}"#),
            line(r#"{"process":"worker-2","pid":12,"component":"worker-2","phase":"stopping"}"#),
        ];
        let live = live_workers(&lines);
        assert_eq!(
            live.into_iter().collect::<Vec<_>>(),
            vec![("worker-1".to_owned(), 13)]
        );
    }
}

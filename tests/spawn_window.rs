//! A worker stopped between its spawn and its exec is killed by the forced exit, and the
//! third Ctrl+C ends the process at once.
//!
//! `complex` spawns a worker with `posix_spawn`, which on Linux clones with `CLONE_VFORK`:
//! the spawning thread is suspended until the child execs. A child stopped before its exec
//! (a SIGSTOP to the process group at that moment) has no handle yet, and it holds its
//! spawning thread, and through it the reaper's registry, so the stop cannot finish: only the
//! forced exit ends the run, and it must not leave that child behind, stopped, holding the
//! log's pipe. `Mpm::kill_all` kills every child the kernel lists for that reason, not only
//! the workers it has handles to.
//!
//! **Why ptrace.** The window lasts microseconds: no signal sent from outside lands in it
//! reliably. So the test traces the main process's threads (`PTRACE_O_TRACEVFORK`) and
//! kills a worker: when its replacement is spawned, the kernel stops the spawning thread at
//! the vfork event and the new child in its first stop, before it runs an instruction of its
//! own. The test queues a SIGSTOP to the child and lets every task go (it detaches them
//! all): the child stops for good before its exec, as a job-control stop would leave it, and
//! the spawning thread waits in the kernel for it. Nothing is traced once the signals are
//! sent.
//!
//! The test process makes itself a child subreaper, so the main process's orphans come to it
//! rather than to init: that keeps the verdict the main process's own. A process group that
//! becomes orphaned with a stopped member is sent SIGHUP and SIGCONT by the kernel; the child,
//! continued, would exec and end by itself, and hide a forced exit that left it behind.

#[allow(
    dead_code,
    reason = "the checks shared with tests/complex.rs; this file uses some of them"
)]
#[path = "complex/checks.rs"]
mod checks;
mod support;

use std::collections::HashSet;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::ptrace::{self, Options};
use nix::sys::signal::{Signal as Sig, kill, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::Pid;

use checks::{COMPLEX, FAST, Worker, assert_no_pid_left};
use support::{Event, PATIENCE, Run, Signal, phase, signal_event, wait_exited};

/// How long the forced exit may take, from the third SIGINT to the end of the main process
/// and of the stopped child: a bound that fails a hung run only (a passing run takes a few
/// milliseconds), and far below `--stop-timeout` (30 s), whose forced exit would end the
/// process with status 1, not by SIGINT.
const FORCED_EXIT_BOUND: Duration = Duration::from_secs(5);

/// worker-2 killed, its replacement stopped before its exec, then Ctrl+C three times: the
/// stop begins and cannot finish; the third forces the exit, which kills the stopped child
/// and ends the process by SIGINT at once, nothing left behind.
#[test]
#[cfg_attr(
    missing_ptrace,
    ignore = "needs ptrace: kernel.yama.ptrace_scope is 3, or 2 and this is not root"
)]
fn a_worker_stopped_in_its_spawn_window_is_killed_by_the_forced_exit() {
    become_subreaper();
    let mut run = Run::spawn(
        COMPLEX,
        &["--time-scale", FAST, "--workers", "2", "--busy-tasks", "0"],
    );
    run.wait_for(phase("app", "started"), PATIENCE);
    let victim = worker_2(&run);
    let complex = Pid::from_raw(run.pid());

    // worker-2 killed, its replacement's spawn caught in the window, and everything let go.
    let mut tracer = Tracer::seize(&run, complex);
    run.sigkill(victim.pid());
    let Window { spawner, child } = tracer.catch_a_spawn(&run);
    tracer.let_go(&run);
    drop(tracer);
    run.wait_for(
        |e: &Event| {
            e.is_main()
                && e.event() == Some("restarting")
                && e.str("worker") == Some("worker-2")
                && e.int("restart") == Some(1)
        },
        PATIENCE,
    );

    // The state claimed: the child is stopped and has not exec'd; its spawning thread, a
    // monitor's, waits for it in the kernel.
    let spawner_comm = read(&run, &format!("/proc/{complex}/task/{spawner}/comm"));
    if !spawner_comm.starts_with("MPM-end-worker") {
        run.fail(&format!(
            "the spawn caught was meant to be worker-2's replacement, spawned by its monitor \
             thread; thread {spawner} is {spawner_comm:?}"
        ));
    }
    wait_until(
        &run,
        &format!("child {child} stopped (T) and thread {spawner} waiting for it (D)"),
        || {
            state(&format!("/proc/{child}/stat")) == Some('T')
                && state(&format!("/proc/{complex}/task/{spawner}/stat")) == Some('D')
        },
    );
    // Before its exec the child is a copy of its spawning thread, in its parent's memory.
    let child_comm = read(&run, &format!("/proc/{child}/comm"));
    let child_cmdline = read(&run, &format!("/proc/{child}/cmdline"));
    if child_comm != spawner_comm || child_cmdline != read(&run, &format!("/proc/{complex}/cmdline")) {
        run.fail(&format!(
            "child {child} has exec'd: its name is {child_comm:?} (its spawning thread's is \
             {spawner_comm:?}), its command line {child_cmdline:?}"
        ));
    }

    // Ctrl+C three times: the stop begins, cannot finish (the stopped spawn holds a monitor),
    // and the third signal forces the exit.
    run.signal_group(Signal::Int);
    let first = run.next_signal_event(Signal::Int);
    run.assert_signal_event(&first, "shutdown", 1);
    run.wait_for(phase("MPM", "stopping"), PATIENCE);
    run.signal_group(Signal::Int);
    let second = run.next_signal_event(Signal::Int);
    run.assert_signal_event(&second, "counted", 2);
    run.signal_group(Signal::Int);
    let forced_at = Instant::now();
    let third = run.next_signal_event(Signal::Int);
    run.assert_signal_event(&third, "forced", 3);
    let left = || FORCED_EXIT_BOUND.saturating_sub(forced_at.elapsed());
    if !run.exited_within(left()) {
        run.fail(&format!(
            "the main process did not end within {FORCED_EXIT_BOUND:?} of its forced exit"
        ));
    }
    if !wait_exited(child.as_raw(), left()) {
        run.fail(&format!(
            "child {child}, stopped before its exec, was still alive {FORCED_EXIT_BOUND:?} after the \
             forced exit"
        ));
    }
    // Its end comes to the test (the subreaper) unless the main process reaped it first.
    match waitid(Id::Pid(child), WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG) {
        Ok(WaitStatus::Signaled(_, Sig::SIGKILL, _)) | Err(Errno::ECHILD) => {}
        other => run.fail(&format!(
            "child {child} was meant to be killed by SIGKILL: {other:?}"
        )),
    }

    run.wait_exit();
    run.assert_ended_by(Signal::Int);
    run.assert_last_line_is_exit(Signal::Int.shell_status(), Some(Signal::Int));
    run.assert_every_component_finished();
    run.assert_clean_output();
    assert_no_pid_left(&mut run);
    run.assert_order(&[
        phase("worker-2", "failed"),
        signal_event("SIGINT", "forced"),
        phase("MPM", "failed"),
        phase("app", "exit"),
    ]);
    if let Some(at) = run.position(&phase("MPM", "stopped"), 0) {
        run.fail(&format!(
            "the stop cannot finish while a spawn holds a monitor; line {} says MPM stopped",
            at + 1
        ));
    }
    // The spawn returned only once the child was killed: its `spawned` line, if the process
    // lived long enough to log it, comes after the forced exit began, and names the child.
    let killed = run
        .position(&|e: &Event| e.is_main() && e.is("worker-2", "failed"), 0)
        .unwrap_or_else(|| run.fail("the parent must report worker-2's end"));
    let forced = run
        .position(&signal_event("SIGINT", "forced"), 0)
        .unwrap_or_else(|| run.fail("the forced exit was waited for"));
    let replacement =
        |e: &Event| e.is_main() && e.event() == Some("spawned") && e.str("worker") == Some("worker-2");
    for (at, spawned) in run.log().iter().enumerate().skip(killed) {
        if replacement(spawned)
            && (at < forced || spawned.int("worker_pid") != Some(i64::from(child.as_raw())))
        {
            run.fail(&format!(
                "line {}: worker-2's replacement (pid {child}) cannot have been spawned before \
                 the forced exit killed it: {}",
                at + 1,
                spawned.raw
            ));
        }
    }
}

/// worker-2, from its own `started` line, which a run that has started holds.
fn worker_2(run: &Run) -> Worker {
    run.log()
        .iter()
        .find(|e| e.process() == Some("worker-2") && e.is("worker-2", "started"))
        .and_then(Worker::of)
        .unwrap_or_else(|| run.fail("worker-2 must have started before the app did"))
}

/// Makes this process a child subreaper: see the module docs.
fn become_subreaper() {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes one integer argument and touches no memory (nix
    // has no wrapper for it).
    let set = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
    assert_eq!(
        set,
        0,
        "PR_SET_CHILD_SUBREAPER: {}",
        std::io::Error::last_os_error()
    );
}

/// A spawn caught in its window: the thread suspended in it, and the child before its exec.
struct Window {
    spawner: Pid,
    child: Pid,
}

/// The main process's threads, traced from this thread (ptrace requests come from the
/// thread that attached), and every task they create meanwhile, traced from its creation.
struct Tracer {
    complex: Pid,
    /// The tasks traced now.
    traced: HashSet<Pid>,
    /// Every task traced at some point: one whose first stop is reported before its
    /// creator's event is not taken twice.
    known: HashSet<Pid>,
    /// Tasks in their first stop whose creator's event has not been seen yet: a thread is
    /// let go once known as one, the child of a spawn is kept.
    unclaimed: HashSet<Pid>,
    deadline: Instant,
    /// Disarms the watchdog when dropped.
    _watchdog: mpsc::Sender<()>,
}

impl Tracer {
    /// Seizes every thread of `complex`, without stopping any, with the options that trace
    /// what they create. A thread created meanwhile by one not yet seized is found on the next
    /// pass; one created by a thread already seized is traced by the kernel.
    fn seize(run: &Run, complex: Pid) -> Self {
        let deadline = Instant::now() + PATIENCE;
        let mut tracer = Self {
            complex,
            traced: HashSet::new(),
            known: HashSet::new(),
            unclaimed: HashSet::new(),
            deadline,
            _watchdog: watchdog(complex, deadline),
        };
        let options = Options::PTRACE_O_TRACECLONE | Options::PTRACE_O_TRACEVFORK;
        loop {
            let mut seized = 0;
            for tid in threads(run, complex) {
                if tracer.known.contains(&tid) {
                    continue;
                }
                match ptrace::seize(tid, options) {
                    Ok(()) => {}
                    Err(Errno::ESRCH) => continue,
                    Err(Errno::EPERM) if traced_by_this_process(complex, tid) => {}
                    Err(error) => run.fail(&format!(
                        "PTRACE_SEIZE of thread {tid} of {complex}: {error} (is ptrace forbidden \
                         here, by Yama or a seccomp profile?)"
                    )),
                }
                tracer.take(tid);
                seized += 1;
            }
            if seized == 0 {
                return tracer;
            }
        }
    }

    /// Lets the traced tasks run until one spawns a child (the vfork event), then leaves
    /// the child stopped before its exec and its spawning thread suspended in the spawn,
    /// neither of them traced any more. Every other stop is passed on as it came.
    fn catch_a_spawn(&mut self, run: &Run) -> Window {
        let mut spawn: Option<Window> = None;
        let mut child_held = false;
        loop {
            if let Some(Window { spawner, child }) = spawn {
                if child_held {
                    // Pending when the child is let go: it stops before running on.
                    kill(child, Sig::SIGSTOP)
                        .unwrap_or_else(|error| run.fail(&format!("SIGSTOP to {child}: {error}")));
                    self.detach(run, child, None);
                    self.detach(run, spawner, None);
                    return Window { spawner, child };
                }
            }
            match self.wait(run) {
                WaitStatus::PtraceEvent(tid, _, libc::PTRACE_EVENT_VFORK) => {
                    if spawn.is_some() {
                        run.fail(&format!("thread {tid} spawns too, while the first spawn is held"));
                    }
                    let child = self.created(run, tid);
                    child_held = self.unclaimed.remove(&child);
                    spawn = Some(Window { spawner: tid, child });
                }
                WaitStatus::PtraceEvent(tid, _, libc::PTRACE_EVENT_CLONE | libc::PTRACE_EVENT_FORK) => {
                    let new = self.created(run, tid);
                    if self.unclaimed.remove(&new) {
                        self.resume(run, new, None);
                    }
                    self.resume(run, tid, None);
                }
                WaitStatus::PtraceEvent(tid, _, libc::PTRACE_EVENT_STOP) => {
                    if spawn.as_ref().is_some_and(|window| window.child == tid) {
                        child_held = true;
                    } else if !self.known.contains(&tid) {
                        // A first stop reported before its creator's event.
                        self.take(tid);
                        self.unclaimed.insert(tid);
                    } else {
                        self.resume(run, tid, None);
                    }
                }
                WaitStatus::PtraceEvent(tid, _, _) | WaitStatus::PtraceSyscall(tid) => {
                    self.resume(run, tid, None);
                }
                // A signal on its way to the thread: delivered as it would have been.
                WaitStatus::Stopped(tid, signal) => self.resume(run, tid, Some(signal)),
                WaitStatus::Exited(tid, _) | WaitStatus::Signaled(tid, _, _) => self.ended(run, tid),
                WaitStatus::Continued(_) | WaitStatus::StillAlive => {}
            }
        }
    }

    /// Detaches from every task still traced: each is stopped (`PTRACE_INTERRUPT`, unless
    /// it already is), then detached, a signal it was stopped for delivered. A task created
    /// meanwhile is detached at its first stop.
    fn let_go(&mut self, run: &Run) {
        for tid in std::mem::take(&mut self.unclaimed) {
            self.detach(run, tid, None);
        }
        for &tid in &self.traced {
            match ptrace::interrupt(tid) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(error) => run.fail(&format!("PTRACE_INTERRUPT of {tid}: {error}")),
            }
        }
        while !self.traced.is_empty() {
            match self.wait(run) {
                WaitStatus::PtraceEvent(tid, _, event) => {
                    if matches!(
                        event,
                        libc::PTRACE_EVENT_CLONE | libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK
                    ) {
                        // Traced until its first stop, unless that came first.
                        self.created(run, tid);
                    }
                    // A first stop reported before its creator's event.
                    if !self.known.contains(&tid) {
                        self.take(tid);
                    }
                    self.detach(run, tid, None);
                }
                WaitStatus::PtraceSyscall(tid) => self.detach(run, tid, None),
                WaitStatus::Stopped(tid, signal) => self.detach(run, tid, Some(signal)),
                WaitStatus::Exited(tid, _) | WaitStatus::Signaled(tid, _, _) => self.ended(run, tid),
                WaitStatus::Continued(_) | WaitStatus::StillAlive => {}
            }
        }
    }

    /// The next stop or end of a traced task. Bounded by the watchdog, which ends the run
    /// at the deadline: every traced task then reports its end.
    fn wait(&self, run: &Run) -> WaitStatus {
        loop {
            let waited = waitpid(None::<Pid>, Some(WaitPidFlag::__WALL));
            if Instant::now() >= self.deadline {
                run.fail(&format!(
                    "the tracing of {} did not reach its end within {PATIENCE:?} (last: {waited:?})",
                    self.complex
                ));
            }
            match waited {
                Ok(status) => return status,
                Err(Errno::EINTR) => {}
                Err(error) => run.fail(&format!("waitpid while tracing {}: {error}", self.complex)),
            }
        }
    }

    /// The task `tid` just created (its clone, fork or vfork event), traced by the kernel
    /// from its creation.
    fn created(&mut self, run: &Run, tid: Pid) -> Pid {
        let new = ptrace::getevent(tid)
            .ok()
            .and_then(|message| i32::try_from(message).ok())
            .unwrap_or_else(|| run.fail(&format!("PTRACE_GETEVENTMSG of {tid} failed")));
        let new = Pid::from_raw(new);
        if !self.known.contains(&new) {
            self.take(new);
        }
        new
    }

    fn take(&mut self, tid: Pid) {
        self.known.insert(tid);
        self.traced.insert(tid);
    }

    fn resume(&self, run: &Run, tid: Pid, signal: Option<Sig>) {
        match ptrace::cont(tid, signal) {
            // Killed meanwhile: its end is reported next.
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(error) => run.fail(&format!("PTRACE_CONT of {tid}: {error}")),
        }
    }

    fn detach(&mut self, run: &Run, tid: Pid, signal: Option<Sig>) {
        match ptrace::detach(tid, signal) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(error) => run.fail(&format!("PTRACE_DETACH of {tid}: {error}")),
        }
        self.traced.remove(&tid);
    }

    fn ended(&mut self, run: &Run, tid: Pid) {
        self.traced.remove(&tid);
        self.unclaimed.remove(&tid);
        if tid == self.complex {
            run.fail(&format!("the main process {tid} ended while traced"));
        }
    }
}

/// Kills the run's process group at `deadline` unless the returned sender is dropped first:
/// a traced task that never stops again would hold `waitpid` forever.
fn watchdog(group: Pid, deadline: Instant) -> mpsc::Sender<()> {
    let (disarm, disarmed) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Err(RecvTimeoutError::Timeout) = disarmed.recv_timeout(left) {
            let _ = killpg(group, Sig::SIGKILL);
        }
    });
    disarm
}

/// The threads of process `pid`, now.
fn threads(run: &Run, pid: Pid) -> Vec<Pid> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap_or_else(|error| run.fail(&format!("cannot list the threads of {pid}: {error}")));
    tasks
        .flatten()
        .filter_map(|task| task.file_name().to_str()?.parse().ok())
        .map(Pid::from_raw)
        .collect()
}

/// Whether thread `tid` of `pid` is traced by this process (the kernel traced it as it was
/// created, by a thread already seized).
fn traced_by_this_process(pid: Pid, tid: Pid) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("TracerPid:"))
        .is_some_and(|tracer| tracer.trim() == std::process::id().to_string())
}

/// The state letter of `/proc/.../stat` (`R`, `S`, `D`, `T`, `t`, `Z`...).
fn state(stat: &str) -> Option<char> {
    let stat = std::fs::read_to_string(stat).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

fn read(run: &Run, path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|text| text.trim_end_matches('\n').to_owned())
        .unwrap_or_else(|error| run.fail(&format!("cannot read {path}: {error}")))
}

/// Waits until `condition`, a state only `/proc` shows (a stop taking hold after the
/// detach), holds; fails naming `what` after [`PATIENCE`].
fn wait_until(run: &Run, what: &str, condition: impl Fn() -> bool) {
    if !spawning::wait_proc_state(PATIENCE, condition) {
        run.fail(&format!("waited {PATIENCE:?} for {what}"));
    }
}

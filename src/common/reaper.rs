//! PID 1's duty: reap adopted orphans, without stealing the exit status of a child of ours.
//!
//! **Problem.** As PID 1 of a container (or a child subreaper), a process inherits every
//! orphan of its PID namespace: a process whose parent died is re-parented to it, and when
//! that orphan ends it stays a zombie until someone waits for it. Nobody else will. The
//! usual fix, a `waitpid(-1)` loop, races the code that waits for its own children: here
//! the manager's monitors, which read each worker's exit status to report how it ended. A
//! status reaped by the loop is a crash reported as "its end could not be observed".
//!
//! **Fix.** Reap only what is not ours. Our own children are spawned through
//! [`spawn_owned`] (or [`own`]), which records their pids under the lock the reaper holds
//! while it decides. The reaper finds ended children two ways and reaps, without blocking,
//! only those not recorded: it peeks at the next zombie with `waitid(WNOWAIT)` (which sees
//! every zombie, but only one at a time), and it lists this process's children from
//! `/proc/self/task/*/children` (which sees past a zombie of ours, but which the kernel
//! documents as exact only while the children are stopped). Neither alone cannot miss; a
//! pass of both on every SIGCHLD, and one every [`BACKSTOP`] whatever happens, leaves no
//! orphan a zombie for longer than that. A child's owner calls [`forget`] once it has reaped
//! it (its pid may be reused by an orphan later).
//!
//! The reaper is a thread of its own, started only when the process is PID 1 or a child
//! subreaper, and woken by the signal intake ([`crate::signals`]) on SIGCHLD. Not the
//! intake's thread itself: the reaper takes the owners' lock, which a spawn holds, and the
//! intake must always be free to force the exit.

use crate::sync::LockUnpoisoned;
use std::collections::BTreeSet;
use std::io;
use std::process::{Child, Command};
use std::sync::Mutex;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::Duration;

use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::Pid;

/// How often the reaper looks for zombies even without a SIGCHLD (a signal coalesced with
/// another, a child the children list did not show): the longest an orphan stays a zombie.
pub const BACKSTOP: Duration = Duration::from_secs(1);

/// Pids of the children this process spawned and reaps itself. Process-wide because
/// children are: any thread's spawn must be recorded before the reaper can see the child.
static OWNED: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

/// Spawns `command` as a child whose status its owner reads: the reaper leaves it alone
/// until [`forget`] is called with its pid.
pub fn spawn_owned(command: &mut Command) -> io::Result<Child> {
    own(|| command.spawn(), Child::id)
}

/// Runs `spawn`, which starts a child some other way than [`spawn_owned`], and records the
/// child (whose pid `pid_of` tells) as one whose status its owner reads.
pub fn own<T>(spawn: impl FnOnce() -> io::Result<T>, pid_of: impl FnOnce(&T) -> u32) -> io::Result<T> {
    let mut owned = OWNED.lock_unpoisoned();
    let child = spawn()?;
    owned.insert(pid_of(&child));
    Ok(child)
}

/// The owner of `pid` has reaped it: from now on the pid is not ours.
pub fn forget(pid: u32) {
    OWNED.lock_unpoisoned().remove(&pid);
}

/// Whether this process must reap orphans: it is PID 1, or a child subreaper.
pub fn is_needed() -> bool {
    std::process::id() == 1 || is_subreaper()
}

fn is_subreaper() -> bool {
    let mut flag: libc::c_int = 0;
    // SAFETY: PR_GET_CHILD_SUBREAPER writes one int to the pointer given (nix has no
    // wrapper for it).
    let read = unsafe { libc::prctl(libc::PR_GET_CHILD_SUBREAPER, &mut flag as *mut libc::c_int) };
    read == 0 && flag != 0
}

/// The running reaper: wake it when a child ended.
pub(crate) struct Reaper {
    wake: Sender<()>,
}

impl Reaper {
    /// Starts the reaper thread when [`is_needed`]; it reaps at once, then at every
    /// [`wake`](Self::wake) and every [`BACKSTOP`].
    pub(crate) fn start() -> io::Result<Option<Self>> {
        if !is_needed() {
            return Ok(None);
        }
        let (wake, woken) = mpsc::channel();
        std::thread::Builder::new().name("reaper".into()).spawn(move || {
            loop {
                reap_orphans();
                if woken.recv_timeout(BACKSTOP) == Err(RecvTimeoutError::Disconnected) {
                    return;
                }
            }
        })?;
        tracing::info!(
            event = "reaper",
            "pid {} reaps adopted orphans (PID 1 or a child subreaper)",
            std::process::id()
        );
        Ok(Some(Self { wake }))
    }

    /// A child ended (SIGCHLD): look now.
    pub(crate) fn wake(&self) {
        let _ = self.wake.send(());
    }
}

/// Reaps every ended child that is not ours; returns how many.
pub fn reap_orphans() -> usize {
    let owned = OWNED.lock_unpoisoned();
    let is_ours = |pid: u32| owned.contains(&pid);
    let mut reaped = 0;
    // The next zombie, whoever it is, left in place: reaped here only if it is not ours.
    while let Ok(status) = waitid(
        Id::All,
        WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT,
    ) {
        let Some(pid) = status.pid() else { break };
        if is_ours(pid.as_raw().unsigned_abs()) || !reap(pid) {
            break;
        }
        reaped += 1;
    }
    // Past a zombie of ours (left to its owner), the children list finds the rest.
    for pid in children() {
        if !is_ours(pid) && reap(Pid::from_raw(pid as libc::pid_t)) {
            reaped += 1;
        }
    }
    reaped
}

/// Reaps `pid` if it has ended; returns whether it did.
fn reap(pid: Pid) -> bool {
    match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::StillAlive) | Err(_) => false,
        Ok(_) => {
            tracing::debug!(
                event = "orphan-reaped",
                orphan_pid = pid.as_raw(),
                "reaped adopted orphan {pid}"
            );
            true
        }
    }
}

/// This process's children, from every thread's list (a child belongs to the thread that
/// forked it, or that inherited it).
pub(crate) fn children() -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for task in tasks.flatten() {
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            pids.extend(list.split_whitespace().filter_map(|pid| pid.parse::<u32>().ok()));
        }
    }
    pids
}

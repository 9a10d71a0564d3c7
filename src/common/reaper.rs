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
//! [`spawn_owned`] (or [`own`]), which records their pids under the lock the reaper holds while it
//! decides; the reaper lists this process's children (`/proc/self/task/*/children`) and
//! waits, without blocking, only for those not recorded. A child's owner calls [`forget`]
//! once it has reaped it (its pid may be reused by an orphan later). The reaper is a thread
//! woken by SIGCHLD, started only when the process is PID 1 or a child subreaper.

use crate::sync::LockUnpoisoned;
use std::collections::HashSet;
use std::io;
use std::process::{Child, Command};
use std::sync::Mutex;

/// Pids of the children this process spawned and reaps itself.
static OWNED: Mutex<Option<HashSet<u32>>> = Mutex::new(None);

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
    owned.get_or_insert_with(HashSet::new).insert(pid_of(&child));
    Ok(child)
}

/// The owner of `pid` has reaped it: from now on the pid is not ours.
pub fn forget(pid: u32) {
    if let Some(owned) = OWNED.lock_unpoisoned().as_mut() {
        owned.remove(&pid);
    }
}

/// Whether this process must reap orphans: it is PID 1, or a child subreaper.
pub fn is_needed() -> bool {
    std::process::id() == 1 || is_subreaper()
}

#[cfg(target_os = "linux")]
fn is_subreaper() -> bool {
    let mut flag: libc::c_int = 0;
    // SAFETY: PR_GET_CHILD_SUBREAPER writes one int to the pointer given.
    let read = unsafe { libc::prctl(libc::PR_GET_CHILD_SUBREAPER, &mut flag as *mut libc::c_int) };
    read == 0 && flag != 0
}

#[cfg(not(target_os = "linux"))]
fn is_subreaper() -> bool {
    false
}

/// Starts the reaper thread (when [`is_needed`]); it reaps orphans at once and then at
/// every SIGCHLD. Returns whether it runs.
pub fn start() -> io::Result<bool> {
    if !is_needed() {
        return Ok(false);
    }
    let mut signals = signal_hook::iterator::Signals::new([libc::SIGCHLD])?;
    std::thread::Builder::new().name("reaper".into()).spawn(move || {
        reap_orphans();
        for _ in signals.forever() {
            reap_orphans();
        }
    })?;
    tracing::info!(
        event = "reaper",
        "pid {} reaps adopted orphans (PID 1 or a child subreaper)",
        std::process::id()
    );
    Ok(true)
}

/// Reaps every ended child that is not ours; returns how many.
pub fn reap_orphans() -> usize {
    let owned = OWNED.lock_unpoisoned();
    let mut reaped = 0;
    for pid in children() {
        if owned.as_ref().is_some_and(|o| o.contains(&pid)) {
            continue;
        }
        let Ok(raw) = libc::pid_t::try_from(pid) else {
            continue;
        };
        let mut status = 0;
        // SAFETY: waitpid on a child of ours with WNOHANG: returns at once, reaping it only
        // if it has ended.
        if unsafe { libc::waitpid(raw, &mut status, libc::WNOHANG) } == raw {
            reaped += 1;
            tracing::debug!(
                event = "orphan-reaped",
                orphan_pid = pid,
                "reaped adopted orphan {pid}"
            );
        }
    }
    reaped
}

/// This process's children, from every thread's list (a child belongs to the thread that
/// forked it, or that inherited it).
fn children() -> Vec<u32> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owned_child_is_left_to_its_owner() {
        let mut child =
            spawn_owned(Command::new("true").stdin(std::process::Stdio::null())).expect("spawn true");
        let pid = child.id();
        // Wait until it is a zombie, then let the reaper look: it must not take it.
        while std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| !stat.contains(") Z"))
            .unwrap_or(false)
        {
            std::thread::yield_now();
        }
        reap_orphans();
        let status = child.wait().expect("the owner still reaps its child");
        assert!(status.success());
        forget(pid);
    }
}

//! The threads in the middle of a spawn, so that the forced exit can kill their children.
//!
//! **Problem.** `posix_spawn` on Linux clones with `CLONE_VFORK`: the spawning thread waits
//! until the child calls `exec`. A child stopped before that (SIGSTOP sent to it, or to a
//! pid guessed by whoever watches `/proc`) holds the spawning thread, and its pid is not
//! known yet: `posix_spawn` has not returned. The forced exit must still end it, or the
//! exit would leave a stopped child behind.
//!
//! **Fix.** A spawning thread says so here (its thread id) for the length of the spawn, and
//! the forced exit kills every child of those threads: the kernel lists a thread's
//! children in `/proc/self/task/<tid>/children`, reliably so for a stopped child. No lock is
//! held across the spawn itself.

use std::sync::Mutex;

use graceful::sync::LockUnpoisoned;
use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, gettid};

/// The thread ids of the threads spawning now.
#[derive(Default)]
pub(super) struct Spawning(Mutex<Vec<Pid>>);

/// Held by a thread for the length of its spawn.
pub(super) struct Spawner<'a>(&'a Spawning, Pid);

impl Spawning {
    /// This thread spawns until the returned guard is dropped.
    pub(super) fn enter(&self) -> Spawner<'_> {
        let tid = gettid();
        self.0.lock_unpoisoned().push(tid);
        Spawner(self, tid)
    }

    /// SIGKILLs every child of every thread in a spawn: not reaped by anyone yet (its
    /// spawn has not returned, or has just returned to a thread not yet done), so the pid
    /// is still that child's.
    pub(super) fn kill_children(&self) {
        let spawners = self.0.lock_unpoisoned().clone();
        for tid in spawners {
            let path = format!("/proc/self/task/{tid}/children");
            let Ok(children) = std::fs::read_to_string(path) else {
                continue;
            };
            for pid in children.split_whitespace().filter_map(|p| p.parse().ok()) {
                tracing::warn!(
                    event = "killing",
                    worker_pid = pid,
                    "MPM: killing pid {pid}, a worker still in its spawn"
                );
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

impl Drop for Spawner<'_> {
    fn drop(&mut self) {
        self.0.0.lock_unpoisoned().retain(|&tid| tid != self.1);
    }
}

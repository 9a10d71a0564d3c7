//! Watching a run's processes from outside, on events where the kernel offers them: a
//! pidfd says when a process ends; `/proc` says what it is doing (a pending signal, a
//! blocked `write`), which no notification reports, so those are read when asked.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

/// Waits until process `pid` has exited (a zombie counts) or `timeout` passes; returns
/// whether it exited. A Linux pidfd becomes readable when its process ends, so this is an
/// event wait, not a poll of the process table. A pid already gone (ESRCH) has exited.
pub fn wait_exited(pid: i32, timeout: Duration) -> bool {
    // SAFETY: pidfd_open(2) takes a pid and no flags; it returns a new descriptor or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if raw < 0 {
        return match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::ESRCH) => true,
            // No pidfds here (an old kernel, a strict sandbox): watch the process table.
            _ => poll_until_gone(pid, timeout),
        };
    }
    // SAFETY: `raw` was just returned by pidfd_open and nothing else owns it.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw as i32) };
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut exited = libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd for a descriptor we own.
        match unsafe { libc::poll(&mut exited, 1, millis) } {
            0 => return false,
            n if n > 0 => return true,
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => continue,
            _ => return false,
        }
    }
}

/// The fallback of [`wait_exited`] where pidfds are unavailable.
fn poll_until_gone(pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while is_alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Whether `target` (a pid, or minus a process group id) names a live process.
///
/// kill(2) with signal 0 checks without sending (EPERM: it exists but is not ours). A
/// zombie also "exists" for kill(2): a worker that died after its parent is reparented to
/// PID 1, which in a container may be slow to reap it, or never do. It is dead all the
/// same, so on Linux `/proc` is asked whether every match is a zombie (or dead).
pub fn is_alive(target: i32) -> bool {
    // SAFETY: signal 0 performs the existence and permission checks only.
    let rc = unsafe { libc::kill(target, 0) };
    if rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
        return false;
    }
    match proc_states() {
        Some(states) => states.iter().any(|&(pid, pgrp, state)| {
            !matches!(state, 'Z' | 'X')
                && if target > 0 {
                    pid == target
                } else {
                    pgrp == -target
                }
        }),
        // No /proc: trust kill(2).
        None => true,
    }
}

/// `(pid, process group, state)` of every process, from `/proc/*/stat`; `None` without
/// a readable `/proc`.
fn proc_states() -> Option<Vec<(i32, i32, char)>> {
    let mut states = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // The process may vanish between read_dir and read: then it is not alive anyway.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so parse
        // from the last ')'.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next());
        let pgrp = fields.nth(1).and_then(|s| s.parse().ok());
        if let (Some(state), Some(pgrp)) = (state, pgrp) {
            states.push((pid, pgrp, state));
        }
    }
    Some(states)
}

/// Whether a thread of process `pid` is blocked in `write(2)` (or `writev`) on the pipe
/// whose `/proc/*/fd` link is `pipe` (any descriptor when `None`).
pub(crate) fn blocked_writing(pid: i32, pipe: Option<&Path>) -> bool {
    let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    threads.flatten().any(|thread| {
        let Ok(syscall) = std::fs::read_to_string(thread.path().join("syscall")) else {
            return false;
        };
        let mut fields = syscall.split_whitespace();
        let number = fields.next().and_then(|n| n.parse::<i64>().ok());
        if !matches!(number, Some(n) if n == libc::SYS_write || n == libc::SYS_writev) {
            return false;
        }
        let Some(fd) = fields
            .next()
            .and_then(|a| i64::from_str_radix(a.trim_start_matches("0x"), 16).ok())
        else {
            return false;
        };
        match pipe {
            Some(pipe) => std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).is_ok_and(|l| l == pipe),
            None => true,
        }
    })
}

/// Whether `signal` is pending for process `pid` (shared or for its main thread).
fn signal_pending(pid: i32, signal: i32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let bit = 1_u64 << (signal - 1);
    status.lines().any(|line| {
        let Some((key, value)) = line.split_once(':') else {
            return false;
        };
        matches!(key, "SigPnd" | "ShdPnd")
            && u64::from_str_radix(value.trim(), 16).is_ok_and(|mask| mask & bit != 0)
    })
}

/// Waits until `signal` is no longer pending for process `pid` (a handler took it, or its
/// disposition discarded it), so that the next one sent cannot merge with it; returns
/// whether that happened within `timeout`.
pub fn wait_signal_taken(pid: i32, signal: i32, timeout: Duration) -> bool {
    wait_proc_state(timeout, || !signal_pending(pid, signal))
}

/// Waits until `condition`, a state only `/proc` shows, holds; returns whether it did
/// within `timeout`. No notification says so: it is read every millisecond.
pub fn wait_proc_state(timeout: Duration, condition: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !condition() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

//! The process table: who of a run is still alive, and signalling them without hitting a
//! stranger.
//!
//! **Problem.** Thousands of trials, several at once, on a machine whose `pid_max` may be
//! 32768: pids are reused within minutes. A pid read from a log, or a process group whose
//! leader is gone, may name somebody else's process by the time we signal it. And zombies
//! (ended, not reaped) still answer `kill(pid, 0)`, so "is it alive" needs `/proc`.
//!
//! **Fix.**
//! - A group is never signalled after its leader was reaped: the trial holds the leader
//!   unreaped while it sends (see `run.rs`), and a pid that is some group's id is not
//!   reused while that group has members.
//! - A single process is signalled through a pidfd, opened *before* checking that the
//!   process is in the run's group: the check and the signal then name the same process.
//! - The tool is a child subreaper, so a run's orphans become our children, not PID 1's:
//!   we can reap them (no zombie piles up over thousands of trials) and nothing escapes.
//! - "Alive" means present in `/proc` and not a zombie (`Z`) or dead (`X`).

use std::collections::HashSet;
use std::io;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::scenario::Signal;

/// A process as `/proc/<pid>/stat` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    /// Its pid.
    pub pid: i32,
    /// The executable's name, as the kernel truncates it.
    pub comm: String,
    /// `R`, `S`, `D`, `Z`, ...
    pub state: char,
    /// Its parent.
    pub ppid: i32,
    /// Its process group.
    pub pgrp: i32,
    /// Since boot, in clock ticks: tells a reused pid from the process we knew.
    pub start_time: u64,
}

impl Stat {
    /// Neither a zombie nor dead: it still runs (or sleeps), so it is "left".
    pub fn is_alive(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }

    /// Parses a `stat` line; `comm` may hold spaces and parentheses, so split at the last `)`.
    pub fn parse(text: &str) -> Option<Self> {
        let open = text.find('(')?;
        let close = text.rfind(')')?;
        let pid = text[..open].trim().parse().ok()?;
        let comm = text[open + 1..close].to_owned();
        let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
        // Fields 3.. of proc(5): state, ppid, pgrp, session, ..., starttime is field 22.
        Some(Self {
            pid,
            comm,
            state: rest.first()?.chars().next()?,
            ppid: rest.get(1)?.parse().ok()?,
            pgrp: rest.get(2)?.parse().ok()?,
            start_time: rest.get(19)?.parse().ok()?,
        })
    }
}

/// The process `pid`, if it exists (even as a zombie).
pub fn stat(pid: i32) -> Option<Stat> {
    Stat::parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Its command line, for the report (arguments joined by spaces).
pub fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|&b| b == 0)
                .filter(|part| !part.is_empty())
                .map(|part| String::from_utf8_lossy(part).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// Every process (zombies included) whose process group is `pgid`.
pub fn group_members(pgid: i32) -> Vec<Stat> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(stat)
        .filter(|s| s.pgrp == pgid)
        .collect()
}

/// Whether the group `pgid` has no member at all, zombies included (`kill(-pgid, 0)` says
/// ESRCH). Sends nothing, so it is safe whoever the group belongs to.
pub fn group_is_gone(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission; no signal is delivered.
    let result = unsafe { libc::kill(-pgid, 0) };
    result == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// Sends `sig` to the process group `pgid`. The caller guarantees the group is the run's
/// (its leader is not yet reaped).
pub fn signal_group(pgid: i32, sig: Signal) -> io::Result<()> {
    // SAFETY: kill(2) with a negative pid signals a group; no memory is involved.
    if unsafe { libc::kill(-pgid, sig.number()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sends `sig` to the process `pid`. The caller guarantees `pid` is not reaped yet.
pub fn signal_pid(pid: i32, sig: Signal) -> io::Result<()> {
    // SAFETY: kill(2) on one pid; no memory is involved.
    if unsafe { libc::kill(pid, sig.number()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A pidfd: a handle on one process that a reused pid cannot redirect.
pub struct Pidfd {
    fd: i32,
    pid: i32,
}

impl Pidfd {
    /// Opens a handle on `pid`; `None` if no such process exists (any more).
    pub fn open(pid: i32) -> Option<Self> {
        // SAFETY: pidfd_open(2) takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        (fd >= 0).then_some(Self { fd: fd as i32, pid })
    }

    /// The process it names, re-read *after* opening: if it is in `pgid` now, it is the
    /// run's process, and the signal below reaches this one and no other.
    pub fn stat_in_group(&self, pgid: i32) -> Option<Stat> {
        stat(self.pid).filter(|s| s.pgrp == pgid)
    }

    /// Sends `sig` to exactly this process.
    pub fn send(&self, sig: Signal) -> io::Result<()> {
        // SAFETY: pidfd_send_signal(2) with a valid pidfd, a signal number, no siginfo
        // (null) and no flags.
        let result = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd,
                sig.number(),
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if result == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Waits until the process ends (a pidfd becomes readable then), at most until
    /// `deadline`; returns whether it ended.
    pub fn wait_ended(&self, deadline: Instant) -> bool {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut pollfd = libc::pollfd {
                fd: self.fd,
                events: libc::POLLIN,
                revents: 0,
            };
            let millis = left.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd, count 1, a bounded timeout.
            let ready = unsafe { libc::poll(&mut pollfd, 1, millis) };
            if ready > 0 {
                return true;
            }
            let interrupted = ready < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted;
            if !interrupted || left.is_zero() {
                return false;
            }
        }
    }
}

impl Drop for Pidfd {
    fn drop(&mut self) {
        // SAFETY: closes the fd this value owns, once.
        unsafe {
            libc::close(self.fd);
        }
    }
}

/// Those of `processes` still alive at `deadline`, each waited for on a pidfd opened while
/// it still matched (same pid, same start time), so a reused pid is never mistaken for it.
pub fn alive_after(processes: Vec<Stat>, deadline: Instant) -> Vec<Stat> {
    processes
        .into_iter()
        .filter_map(|known| {
            let fd = Pidfd::open(known.pid)?;
            let now = stat(known.pid).filter(|s| s.start_time == known.start_time && s.is_alive())?;
            (!fd.wait_ended(deadline)).then_some(now)
        })
        .collect()
}

/// SIGKILLs every live process of group `pgid` (each through a pidfd) and waits for them
/// to end, at most `bound`. Returns those that did not end.
pub fn kill_group_members(pgid: i32, bound: Duration) -> Vec<Stat> {
    let deadline = Instant::now() + bound;
    let handles: Vec<(Pidfd, Stat)> = group_members(pgid)
        .into_iter()
        .filter(Stat::is_alive)
        .filter_map(|s| {
            let fd = Pidfd::open(s.pid)?;
            let now = fd.stat_in_group(pgid)?;
            Some((fd, now))
        })
        .collect();
    for (fd, _) in &handles {
        // It may have ended meanwhile (ESRCH): then there is nothing to kill.
        let _ = fd.send(Signal::Kill);
    }
    handles
        .into_iter()
        .filter(|(fd, _)| !fd.wait_ended(deadline))
        .map(|(_, s)| s)
        .collect()
}

/// Reaps the zombies of group `pgid` that are our children (orphans of a run, adopted as
/// its subreaper). By pid, never `waitpid(-pgid)`: that could take the status of another
/// trial's main process, which its own waiter is waiting for.
pub fn reap_group_zombies(pgid: i32) {
    // SAFETY: getpid(2) has no preconditions.
    let me = unsafe { libc::getpid() };
    for zombie in group_members(pgid)
        .into_iter()
        .filter(|s| s.ppid == me && !s.is_alive())
    {
        let mut status = 0;
        // SAFETY: waitpid(2) on one pid that is our zombie child; WNOHANG never blocks.
        unsafe {
            libc::waitpid(zombie.pid, &mut status, libc::WNOHANG);
        }
    }
}

/// Makes this process the reaper of its descendants' orphans (prctl(2),
/// PR_SET_CHILD_SUBREAPER), so a run's workers never escape to PID 1.
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER and an integer argument.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The process groups of the trials running now, so a leftover hunt never touches another
/// trial's processes (a pid seen in one run's log may be reused in another's).
static LIVE_GROUPS: Mutex<Option<HashSet<i32>>> = Mutex::new(None);

/// Registers a trial's group while it runs.
pub fn register_group(pgid: i32) {
    LIVE_GROUPS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashSet::new)
        .insert(pgid);
}

/// Forgets a trial's group once it is cleaned up.
pub fn unregister_group(pgid: i32) {
    if let Some(groups) = LIVE_GROUPS.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        groups.remove(&pgid);
    }
}

/// Whether `pgid` is another live trial's group.
pub fn is_other_trials_group(pgid: i32, ours: i32) -> bool {
    pgid != ours
        && LIVE_GROUPS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|groups| groups.contains(&pgid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_awkward_names_parse() {
        let line =
            "4242 (complex (w) 1) S 4200 4200 4100 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 987654 1000 10";
        let stat = Stat::parse(line).expect("parses");
        assert_eq!(stat.pid, 4242);
        assert_eq!(stat.comm, "complex (w) 1");
        assert_eq!((stat.state, stat.ppid, stat.pgrp), ('S', 4200, 4200));
        assert_eq!(stat.start_time, 987654);
        assert!(stat.is_alive());
        assert!(!Stat { state: 'Z', ..stat }.is_alive());
    }

    #[test]
    fn our_own_stat_reads() {
        // SAFETY: getpid(2) has no preconditions.
        let me = unsafe { libc::getpid() };
        let stat = stat(me).expect("our own /proc entry");
        assert_eq!(stat.pid, me);
        assert!(stat.is_alive());
    }
}

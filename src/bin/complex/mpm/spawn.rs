//! Starting a worker process whose shutdown signals are blocked from its first instruction.
//!
//! **Problem.** std's `Command::spawn` empties the child's signal mask, so a mask set in the
//! parent does not reach the child, and a `pre_exec` hook that blocks the signals again runs
//! after a window in which a Ctrl+C meant for the group would run this process's handlers
//! in the forked copy. A `pre_exec` hook also makes std fork (copying every page table of
//! a multi-threaded parent) instead of using `posix_spawn`.
//!
//! **Fix.** `posix_spawn` with `POSIX_SPAWN_SETSIGMASK`: the C library gives the new
//! process the mask we ask for before it runs any code of its own, and on Linux it spawns
//! with `CLONE_VFORK`, which is what makes `complex`'s launch-to-ready fit its target (see
//! the README's benchmark). The price is a small process handle of our own ([`Process`])
//! instead of std's `Child`: a pid that is killed and reaped by whoever holds it.
//!
//! Everything else is as std does it: stdin, stdout and stderr are pipes (every other
//! descriptor of ours is close-on-exec), SIGPIPE is back to its default in the child, and
//! the environment is this process's, less the service manager's variables
//! ([`graceful::notify::VARIABLES`]): only the main process speaks to the manager.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;

use graceful::signals::ShutdownSignal;
use nix::fcntl::OFlag;
use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags, posix_spawn};
use nix::sys::signal::{SigSet, Signal};

/// A process we spawned, until it is reaped.
#[derive(Debug)]
pub struct Process {
    pid: libc::pid_t,
}

/// A spawned process and this end of its three pipes.
#[must_use = "the process runs until it is killed and reaped"]
pub struct Spawned {
    /// The process.
    pub process: Process,
    /// Its stdin.
    pub stdin: std::fs::File,
    /// Its stdout.
    pub stdout: std::fs::File,
    /// Its stderr.
    pub stderr: std::fs::File,
}

impl Process {
    /// The OS process id.
    pub fn id(&self) -> u32 {
        self.pid.unsigned_abs()
    }

    /// SIGKILL. The pid is still ours (this handle exists, so it is not reaped yet).
    pub fn kill(&self) -> io::Result<()> {
        // SAFETY: kill(2) with a pid we spawned and have not reaped: it cannot name another
        // process.
        if unsafe { libc::kill(self.pid, libc::SIGKILL) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Waits for the process to end and reaps it.
    pub fn wait(self) -> io::Result<ExitStatus> {
        let mut status = 0;
        loop {
            // SAFETY: waitpid(2) on our own child, writing one int.
            if unsafe { libc::waitpid(self.pid, &mut status, 0) } == self.pid {
                return Ok(ExitStatus::from_raw(status));
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
    }
}

/// Waits until process `pid` has ended, without reaping it: until its owner reaps it, the
/// pid stays a zombie of ours, so killing it meanwhile cannot reach another process. Only
/// for a child of this process that nobody else reaps.
pub fn wait_until_ended(pid: u32) -> io::Result<()> {
    let pid = libc::id_t::from(pid);
    loop {
        // SAFETY: waitid(2) on our own child, writing into a zeroed siginfo_t.
        let waited = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED | libc::WNOWAIT)
        };
        if waited == 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Spawns `exe args` with SIGINT, SIGTERM and SIGHUP blocked in the new process from its
/// start, and its stdin, stdout and stderr piped to this process. (The manager spawns
/// through `handshake::spawn_with_signals_blocked`, which also registers the child with the
/// PID-1 reaper.)
pub(super) fn spawn_with_signals_blocked(exe: &Path, args: &[String]) -> io::Result<Spawned> {
    let (stdin_child, stdin) = pipe()?;
    let (stdout, stdout_child) = pipe()?;
    let (stderr, stderr_child) = pipe()?;

    let mut actions = PosixSpawnFileActions::init()?;
    for (fd, onto) in [(&stdin_child, 0), (&stdout_child, 1), (&stderr_child, 2)] {
        actions.add_dup2(fd.as_raw_fd(), onto)?;
    }
    let mut attributes = PosixSpawnAttr::init()?;
    let blocked: SigSet = ShutdownSignal::ALL
        .iter()
        .map(|signal| Signal::try_from(signal.number()))
        .collect::<Result<_, _>>()?;
    attributes.set_sigmask(&blocked)?;
    attributes.set_sigdefault(&SigSet::from(Signal::SIGPIPE))?;
    attributes.set_flags(PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK | PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF)?;

    let program = c_string(exe.as_os_str())?;
    let mut argv = vec![program.clone()];
    for arg in args {
        argv.push(c_string(OsStr::new(arg))?);
    }
    // Ours, less what a service manager meant for the main process alone.
    let environment = std::env::vars_os()
        .filter(|(key, _)| !graceful::notify::VARIABLES.iter().any(|v| key == v))
        .map(|(key, value)| {
            let mut pair = key.into_encoded_bytes();
            pair.push(b'=');
            pair.extend(value.as_encoded_bytes());
            CString::new(pair).map_err(|_| nul_inside())
        })
        .collect::<io::Result<Vec<_>>>()?;
    let pid = posix_spawn(program.as_c_str(), &actions, &attributes, &argv, &environment)?;
    // The child's ends are the child's alone: ours close here, so its end of file is seen.
    drop((stdin_child, stdout_child, stderr_child));
    Ok(Spawned {
        process: Process { pid: pid.as_raw() },
        stdin: stdin.into(),
        stdout: stdout.into(),
        stderr: stderr.into(),
    })
}

/// A close-on-exec pipe, `(read end, write end)`, neither of them descriptor 0, 1 or 2 (a
/// parent started with a standard stream closed would hand one out, and the child's dup2
/// onto it would then clobber another of its pipes).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    Ok((above_stdio(read)?, above_stdio(write)?))
}

fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        Ok(fd)
    } else {
        // try_clone duplicates onto the lowest free number from 3, close-on-exec.
        fd.try_clone()
    }
}

fn c_string(text: &OsStr) -> io::Result<CString> {
    CString::new(text.as_bytes()).map_err(|_| nul_inside())
}

fn nul_inside() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "an argument or variable contains a NUL byte",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn run(program: &str, args: &[&str], input: &[u8]) -> String {
        let args: Vec<String> = args.iter().map(|&a| a.into()).collect();
        let mut spawned = spawn_with_signals_blocked(Path::new(program), &args).expect(program);
        spawned.stdin.write_all(input).unwrap();
        drop(spawned.stdin);
        let mut output = String::new();
        spawned.stdout.read_to_string(&mut output).unwrap();
        let status = spawned.process.wait().unwrap();
        assert!(status.success(), "{program}: {status:?}");
        output
    }

    #[test]
    fn the_child_starts_with_the_shutdown_signals_blocked_and_sigpipe_default() {
        // No shell in between: a shell may change its own mask as it starts.
        let status = run("/bin/grep", &["-E", "^Sig(Blk|Ign)", "/proc/self/status"], b"");
        let field = |name: &str| {
            let line = status.lines().find(|l| l.starts_with(name)).expect(name);
            u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
        };
        let bit = |signal: i32| 1u64 << (signal - 1);
        let shutdown = bit(libc::SIGINT) | bit(libc::SIGTERM) | bit(libc::SIGHUP);
        assert_eq!(field("SigBlk:") & shutdown, shutdown, "{status}");
        assert_eq!(field("SigIgn:") & bit(libc::SIGPIPE), 0, "{status}");
    }

    #[test]
    fn stdin_and_stdout_are_pipes_to_the_parent() {
        assert_eq!(run("/bin/cat", &[], b"through the pipe\n"), "through the pipe\n");
    }

    #[test]
    fn waiting_for_the_end_leaves_the_pid_ours_to_kill_and_reap() {
        let spawned = spawn_with_signals_blocked(Path::new("/bin/sleep"), &["60".into()]).unwrap();
        let pid = spawned.process.id();
        let waiter = std::thread::spawn(move || wait_until_ended(pid));
        spawned.process.kill().unwrap();
        waiter.join().unwrap().unwrap();
        // Not reaped by the wait: the owner still reads how it ended.
        let status = spawned.process.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn a_missing_program_is_an_error_and_a_killed_child_says_so() {
        assert!(spawn_with_signals_blocked(Path::new("/nonexistent/worker"), &[]).is_err());
        let spawned = spawn_with_signals_blocked(Path::new("sleep"), &["60".into()]);
        // posix_spawn does not search PATH: "sleep" is not found either.
        assert!(spawned.is_err());
        let spawned = spawn_with_signals_blocked(Path::new("/bin/sleep"), &["60".into()]).unwrap();
        spawned.process.kill().unwrap();
        let status = spawned.process.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }
}

//! Starting a worker process with its shutdown signals blocked from its first instruction,
//! running the program that is running, with nothing of ours but its three pipes: what a
//! program that runs workers of its own (`complex`) needs so that a Ctrl+C to the group
//! cannot kill one between its `exec` and its handlers (lesson 7 of the reference).
//!
//! std's `Command::spawn` empties the child's signal mask, and a `pre_exec` hook that blocks
//! the signals again leaves a window (and makes std fork, copying a multi-threaded parent's
//! page tables). So: `posix_spawn` with `POSIX_SPAWN_SETSIGMASK`, the mask set before the
//! child runs any code (and `CLONE_VFORK` on Linux, what keeps launch-to-ready on target);
//! the price is our own small handle, [`Process`]. Every descriptor but the pipes is closed
//! before the exec (a socket handed to us without close-on-exec must not live as long as the
//! workers); the program is this executable, opened once ([`Program`]), so a file deleted or
//! replaced meanwhile (a package upgrade) still starts what runs; the service manager's
//! variables speak to the main process alone and stay out of the worker's environment.
//! The child is recorded with the PID 1 reaper ([`crate::reaper::own`]) from its spawn
//! until [`Process::wait`] reaps it, so a reaper never takes its status from its owner.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::signals::ShutdownSignal;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags, posix_spawn};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::Pid;

/// The program a worker runs.
pub struct Program {
    /// What `exec` opens: `/proc/self/fd/N` of [`Program::this_executable`]'s descriptor.
    path: PathBuf,
    /// The worker's `argv[0]`.
    name: OsString,
    /// The executable, held open (close-on-exec): its number is in `path`.
    open: Option<OwnedFd>,
}

impl Program {
    /// This process's own executable, opened now: later spawns run it even if its file is
    /// deleted or replaced. Without `/proc`, its path (and then a replaced file is what runs).
    pub fn this_executable() -> Self {
        let name = std::env::args_os().next().unwrap_or_default();
        let opened = File::open("/proc/self/exe").and_then(|file| above_stdio(file.into()));
        match opened {
            Ok(fd) => Self {
                path: format!("/proc/self/fd/{}", fd.as_raw_fd()).into(),
                name,
                open: Some(fd),
            },
            Err(_) => Self::at(std::env::current_exe().unwrap_or_else(|_| name.clone().into())),
        }
    }

    /// The program at `path`.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        Self {
            name: path.clone().into_os_string(),
            path,
            open: None,
        }
    }
}

/// A process we spawned, until it is reaped.
#[derive(Debug)]
pub struct Process {
    pid: Pid,
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
        self.pid.as_raw().unsigned_abs()
    }

    /// SIGKILL. The pid is still ours (this handle exists, so it is not reaped yet).
    pub fn kill(&self) -> nix::Result<()> {
        kill(self.pid, Signal::SIGKILL)
    }

    /// Waits for the process to end and reaps it; from then on its pid is not ours (it may
    /// come back as an orphan's).
    pub fn wait(self) -> nix::Result<WaitStatus> {
        loop {
            match waitpid(self.pid, None) {
                Err(Errno::EINTR) => {}
                waited => {
                    crate::reaper::forget(self.id());
                    return waited;
                }
            }
        }
    }
}

/// Waits until process `pid` has ended, without reaping it: until its owner reaps it, the
/// pid stays a zombie of ours, so killing it meanwhile cannot reach another process. Only
/// for a child of this process that nobody else reaps.
pub fn wait_until_ended(pid: u32) -> nix::Result<()> {
    let pid = Pid::from_raw(i32::try_from(pid).map_err(|_| Errno::EINVAL)?);
    loop {
        match waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Err(Errno::EINTR) => {}
            waited => return waited.map(drop),
        }
    }
}

/// SIGKILLs every child of this process, for a forced exit: a child stopped before its exec
/// holds its spawning thread (`CLONE_VFORK`) and has no handle yet, but the kernel lists it
/// (reliably, while it is stopped). Only for a process whose children are all its workers
/// (or, as PID 1, orphans that end with it anyway): any other child is killed too.
pub fn kill_every_child() {
    for pid in crate::reaper::children() {
        let _ = kill(Pid::from_raw(pid as libc::pid_t), Signal::SIGKILL);
    }
}

/// Spawns `program args` with SIGINT, SIGTERM and SIGHUP blocked in the new process from its
/// start, its stdin, stdout and stderr piped to this process, and no other descriptor.
pub fn spawn_with_signals_blocked(program: &Program, args: &[String]) -> io::Result<Spawned> {
    let (stdin_child, stdin) = pipe()?;
    let (stdout, stdout_child) = pipe()?;
    let (stderr, stderr_child) = pipe()?;

    let mut actions = PosixSpawnFileActions::init()?;
    for (fd, onto) in [(&stdin_child, 0), (&stdout_child, 1), (&stderr_child, 2)] {
        actions.add_dup2(fd.as_raw_fd(), onto)?;
    }
    close_the_rest(&mut actions, program.open.as_ref().map(AsRawFd::as_raw_fd))?;
    let mut attributes = PosixSpawnAttr::init()?;
    let blocked: SigSet = ShutdownSignal::ALL
        .iter()
        .map(|signal| Signal::try_from(signal.number()))
        .collect::<Result<_, _>>()?;
    attributes.set_sigmask(&blocked)?;
    attributes.set_sigdefault(&SigSet::from(Signal::SIGPIPE))?;
    attributes.set_flags(PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK | PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF)?;

    // A NUL byte inside is an InvalidInput error (std's From<NulError> for io::Error).
    let path = CString::new(program.path.as_os_str().as_bytes())?;
    let mut argv = vec![CString::new(program.name.as_bytes())?];
    for arg in args {
        argv.push(CString::new(arg.as_bytes())?);
    }
    let environment = std::env::vars_os()
        // The service manager's variables address the main process: a worker that read them
        // would speak for it (and the watchdog would take its pings as the service's).
        .filter(|(key, _)| !crate::notify::VARIABLES.iter().any(|not| key == not))
        .map(|(key, value)| {
            let mut pair = key.into_encoded_bytes();
            pair.push(b'=');
            pair.extend(value.as_encoded_bytes());
            Ok(CString::new(pair)?)
        })
        .collect::<io::Result<Vec<_>>>()?;
    let pid = crate::reaper::own(
        || {
            Ok(posix_spawn(
                path.as_c_str(),
                &actions,
                &attributes,
                &argv,
                &environment,
            )?)
        },
        |pid| pid.as_raw().unsigned_abs(),
    )?;
    // The child's ends are the child's alone: ours close here, so its end of file is seen.
    drop((stdin_child, stdout_child, stderr_child));
    Ok(Spawned {
        process: Process { pid },
        stdin: stdin.into(),
        stdout: stdout.into(),
        stderr: stderr.into(),
    })
}

/// Closes every descriptor from 3 in the child before its exec, except `program` (the
/// executable `exec` opens through `/proc/self/fd`; close-on-exec, it goes with the exec).
/// The numbers below it are closed one by one: few, and a close of one not open is ignored.
fn close_the_rest(actions: &mut PosixSpawnFileActions, program: Option<RawFd>) -> io::Result<()> {
    let from = match program {
        Some(program) => {
            for fd in 3..program {
                actions.add_close(fd)?;
            }
            program + 1
        }
        None => 3,
    };
    // SAFETY: PosixSpawnFileActions is a repr(transparent) wrapper of the C object, which
    // the call only extends with one action.
    let added = unsafe {
        libc::posix_spawn_file_actions_addclosefrom_np(
            std::ptr::from_mut(actions).cast::<libc::posix_spawn_file_actions_t>(),
            from,
        )
    };
    match added {
        0 => Ok(()),
        error => Err(io::Error::from_raw_os_error(error)),
    }
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

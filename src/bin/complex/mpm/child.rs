//! One worker process as the manager holds it: its pipes, its pid, and its end.
//!
//! Rules that keep "nothing left running, nothing unreaped" true:
//! - only the monitor thread reaps (after the worker's stdout ends), so a pid is never
//!   signalled after it was reaped and possibly reused: [`WorkerProcess::kill`] goes through
//!   the same lock and does nothing once the child is reaped;
//! - [`WorkerProcess::close`] (stop command, then end-of-file on stdin) is idempotent;
//! - `Drop` kills, reaps and reports a child still unreaped, should a handle ever be dropped
//!   before its monitor reaped it. At the end of the process the real last line of defence
//!   is the worker's own: its stdin reaches end-of-file and it exits.

use graceful::sync::LockUnpoisoned;
use std::io::{self, BufWriter, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, ChildStdout, Command as Process, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::latch::Latch;
use super::protocol::Command;
use super::spawn::spawn_with_signals_blocked;

/// A running (or just ended) incarnation of `worker-N`.
pub struct WorkerProcess {
    /// `worker-N`.
    pub name: String,
    /// N - 1: the slot it fills in the manager.
    pub slot: usize,
    /// The OS process id.
    pub pid: u32,
    /// Unique across restarts, so a call can tell the incarnation it was sent to.
    pub incarnation: u64,
    /// Calls sent to it and not yet answered (for least-loaded dispatch).
    pub in_flight: AtomicUsize,
    /// Still reading its reports; cleared (under the manager's pending lock) when they end.
    pub alive: AtomicBool,
    stop_sent: AtomicBool,
    stdin: Mutex<Option<BufWriter<std::process::ChildStdin>>>,
    child: Mutex<Option<Child>>,
    ended: Latch<String>,
}

impl WorkerProcess {
    /// Spawns `exe args` as `name` (signals blocked until its handlers are in place), with
    /// piped stdin/stdout and the shared stderr. Returns it and its stdout for the monitor.
    pub fn spawn(exe: &Path, args: &[String], slot: usize) -> io::Result<(Arc<Self>, ChildStdout)> {
        static NEXT_INCARNATION: AtomicU64 = AtomicU64::new(1);
        let mut command = Process::new(exe);
        command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = spawn_with_signals_blocked(&mut command)?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other("the child's pipes were not created"));
        };
        let worker = Arc::new(Self {
            name: format!("worker-{}", slot + 1),
            slot,
            pid: child.id(),
            incarnation: NEXT_INCARNATION.fetch_add(1, SeqCst),
            in_flight: AtomicUsize::new(0),
            alive: AtomicBool::new(true),
            stop_sent: AtomicBool::new(false),
            stdin: Mutex::new(Some(BufWriter::new(stdin))),
            child: Mutex::new(Some(child)),
            ended: Latch::new(),
        });
        Ok((worker, stdout))
    }

    /// Sends one command. Fails once the worker was closed or its stdin broke.
    pub fn send(&self, command: &Command) -> io::Result<()> {
        let mut stdin = lock(&self.stdin);
        let pipe = stdin
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::BrokenPipe))?;
        command.write_to(pipe)?;
        pipe.flush()
    }

    /// Sends the stop command and closes stdin (so even a worker that missed the frame sees
    /// end-of-file). Idempotent, and never blocks: a wedged worker whose pipe is full (or a
    /// caller blocked writing to it) must not hold up the stop; the stop's deadline kills it.
    pub fn close(&self) {
        self.stop_sent.store(true, SeqCst);
        let mut stdin = match self.stdin.try_lock() {
            Ok(stdin) => stdin,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            // Someone is blocked writing to it: the worker is not reading. Leave it to the
            // deadline; killing the worker breaks the pipe and frees that writer.
            Err(std::sync::TryLockError::WouldBlock) => return,
        };
        if let Some(mut pipe) = stdin.take() {
            set_nonblocking(pipe.get_ref());
            // A dead worker cannot read it, a wedged one may not have room: either way its
            // monitor or the stop's deadline deals with it.
            let _ = Command::Stop.write_to(&mut pipe).and_then(|()| pipe.flush());
        }
    }

    /// Whether [`close`](Self::close) ran: an exit after it is expected.
    pub fn was_closed(&self) -> bool {
        self.stop_sent.load(SeqCst)
    }

    /// SIGKILL, unless it was already reaped. The monitor reaps and reports it.
    pub fn kill(&self) {
        if let Some(child) = lock(&self.child).as_mut() {
            let _ = child.kill();
        }
    }

    /// Waits for the process to end and reaps it; for the monitor thread only, after the
    /// worker's stdout ended (so the wait is short).
    pub fn reap(&self) -> Option<ExitStatus> {
        let mut child = lock(&self.child).take()?;
        child.wait().ok()
    }

    /// Records how it ended and wakes whoever waits in [`wait_ended`](Self::wait_ended).
    pub fn set_ended(&self, how: String) {
        self.ended.set(how);
    }

    /// Waits until the worker ended and was reported, or `deadline`; returns whether it did.
    pub fn wait_ended(&self, deadline: Instant) -> bool {
        self.ended.wait_until(deadline).is_some()
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = lock(&self.child).take() {
            tracing::warn!(
                worker_pid = self.pid,
                "{} was never reaped by its monitor; killing and reaping it now",
                self.name
            );
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How a process ended, in words: "exit status 0", "killed by SIGKILL".
pub fn describe_exit(status: Option<ExitStatus>) -> String {
    match status {
        None => "its end could not be observed".into(),
        Some(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(signal)) => match signal_hook::low_level::signal_name(signal) {
                Some(name) => format!("killed by {name}"),
                None => format!("killed by signal {signal}"),
            },
            (None, None) => format!("{status}"),
        },
    }
}

/// Makes writes to `pipe` fail with `WouldBlock` instead of waiting for room.
fn set_nonblocking(pipe: &std::process::ChildStdin) {
    use std::os::fd::AsRawFd;
    let fd = pipe.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own (the pipe lives as long as `pipe`), only adding
    // O_NONBLOCK to its status flags.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock_unpoisoned()
}

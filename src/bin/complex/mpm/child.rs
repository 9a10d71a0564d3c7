//! One worker process as the manager holds it: its pipes, its pid, and its end.
//!
//! Rules that keep "nothing left running, nothing unreaped" true:
//! - only the monitor thread reaps (after the worker's stdout and stderr ended), so a pid is
//!   never signalled after it was reaped and possibly reused: [`WorkerProcess::kill`] goes
//!   through the same lock and does nothing once the child is reaped. The monitor waits
//!   for the end without reaping first, so a kill during that wait still reaches a worker
//!   that closed its pipes but lives on;
//! - `Drop` kills, reaps and reports a child still unreaped, should a handle ever be dropped
//!   before its monitor reaped it. At the end of the process the real last line of defence
//!   is the worker's own: its stdin reaches end-of-file and it exits.
//!
//! **Control frames never wait.** The stop path must not block behind a full pipe: a worker
//! busy with an item drains its stdin only between items, and a caller blocked writing a
//! call holds the pipe meanwhile. So the withdraw and stop commands are *requested*
//! ([`WorkerProcess::withdraw`], [`WorkerProcess::close`]): a flag, then one non-blocking
//! attempt to write them. What cannot go out now goes out later, written by whoever frees the
//! pipe: the caller that held it (right after its own frame), or the worker's monitor, which
//! polls the pipe for room. Both lines are a few bytes, so a write either fits whole or not
//! at all.
//!
//! **A call that cannot block is written where it is made.** [`WorkerProcess::try_send`]
//! writes a call frame only when that cannot wait: nobody else holds the pipe and the kernel
//! takes the whole frame at once (a pipe write of at most `PIPE_BUF` bytes is all or
//! nothing). An async caller can then send from the runtime itself, and hands the write to
//! the blocking pool only when the pipe is full. That saves two thread wake-ups per call,
//! which is what lets the whole stack reach its throughput target (see the README's
//! benchmark).

use graceful::deadline::Deadline;
use graceful::sync::LockUnpoisoned;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use super::handshake::spawn_with_signals_blocked;
use super::latch::Latch;
use super::protocol::{Command, Frame};
use super::spawn::{self, Process, Program, Spawned};
use super::wake::{self, Wake, WakeReceiver};

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
    /// Wakes its monitor (a control frame waits for room in the pipe).
    pub wake: Wake,
    stop_sent: AtomicBool,
    /// Control frames requested and not yet handed to the pipe ([`WITHDRAW`], [`STOP`]).
    control: AtomicU8,
    /// Bytes of control frames wait in the stdin buffer for room in the pipe.
    unflushed: AtomicBool,
    stdin_fd: RawFd,
    stdin: Mutex<Stdin>,
    child: Mutex<Option<Process>>,
    ended: Latch<String>,
}

const WITHDRAW: u8 = 1;
const STOP: u8 = 2;

/// The write end of the worker's stdin, while it is open.
struct Stdin {
    pipe: Option<BufWriter<File>>,
    /// The stop command is written (or waits in the buffer): nothing may follow it, and the
    /// pipe is closed once it is out, so even a worker that missed the frame sees end-of-file.
    closing: bool,
    /// Whether the pipe is in `O_NONBLOCK` mode now. Only the holder of the lock changes the
    /// mode, and only when the next write wants the other one, so a run of non-blocking
    /// sends costs no `fcntl` at all.
    nonblocking: bool,
    /// Where [`WorkerProcess::try_send`] encodes a frame, kept to spare an allocation per call.
    frame: Vec<u8>,
}

impl Stdin {
    /// With `on`, writes fail with `WouldBlock` instead of waiting for room.
    fn set_nonblocking(&mut self, on: bool) {
        // The mode is noted only once it is set: a blocking send must never find the pipe
        // non-blocking and fail with a spurious WouldBlock.
        if let Some(pipe) = &self.pipe
            && self.nonblocking != on
            && set_nonblocking(pipe.get_ref(), on)
        {
            self.nonblocking = on;
        }
    }
}

impl Drop for Stdin {
    fn drop(&mut self) {
        // Never flush on the way out: a wedged worker's full pipe would block the drop.
        if let Some(pipe) = self.pipe.take() {
            drop(pipe.into_parts());
        }
    }
}

/// How an attempt to write the requested control frames went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Written, or nothing left to write (or the pipe is gone).
    Done,
    /// Someone is writing to the pipe; they write the control frames when they are done.
    Busy,
    /// The pipe is full: write again once it has room (poll [`Delivery::Full`]'s descriptor).
    Full(RawFd),
}

/// How a [`WorkerProcess::try_send`] went.
#[derive(Debug)]
pub enum TrySend {
    /// The whole frame is in the pipe.
    Sent,
    /// Not sent: the pipe is busy or full, or the frame too long to be written all or
    /// nothing. Send it from a thread that may block.
    WouldBlock,
    /// Not sent: the worker was closed or its stdin broke.
    Closed,
}

/// What the monitor alone reads: the worker's reports, its log lines, and its wake-ups.
pub struct Outputs {
    /// Frames from the worker.
    pub stdout: File,
    /// The worker's log lines.
    pub stderr: File,
    /// Control requests wake the monitor through it.
    pub wake: WakeReceiver,
}

/// Something the spawn needed could not be created (no process slot, no descriptor).
#[derive(Debug, thiserror::Error)]
#[error("cannot create {what}: {error}")]
pub struct SpawnError {
    what: &'static str,
    error: io::Error,
}

impl WorkerProcess {
    /// Spawns `program args` as `worker-N` (signals blocked until its handlers are in place),
    /// with stdin, stdout and stderr piped to this process. Returns it and what its monitor
    /// reads.
    pub fn spawn(
        program: &Program,
        args: &[String],
        slot: usize,
    ) -> Result<(Arc<Self>, Outputs), SpawnError> {
        static NEXT_INCARNATION: AtomicU64 = AtomicU64::new(1);
        let failed = |what| move |error| SpawnError { what, error };
        // Before the process: a failure here leaves nothing to kill.
        let (wake, wake_receiver) = wake::pair().map_err(failed("the monitor's wake socket"))?;
        let Spawned {
            process,
            stdin,
            stdout,
            stderr,
        } = spawn_with_signals_blocked(program, args).map_err(failed("the worker process"))?;
        let worker = Arc::new(Self {
            name: format!("worker-{}", slot + 1),
            slot,
            pid: process.id(),
            incarnation: NEXT_INCARNATION.fetch_add(1, SeqCst),
            in_flight: AtomicUsize::new(0),
            alive: AtomicBool::new(true),
            wake,
            stop_sent: AtomicBool::new(false),
            control: AtomicU8::new(0),
            unflushed: AtomicBool::new(false),
            stdin_fd: stdin.as_raw_fd(),
            stdin: Mutex::new(Stdin {
                pipe: Some(BufWriter::new(stdin)),
                closing: false,
                nonblocking: false,
                frame: Vec::new(),
            }),
            child: Mutex::new(Some(process)),
            ended: Latch::new(),
        });
        Ok((
            worker,
            Outputs {
                stdout,
                stderr,
                wake: wake_receiver,
            },
        ))
    }

    /// Sends one command, waiting for room in the pipe. Fails once the worker was closed or
    /// its stdin broke. Then writes any control frame requested meanwhile.
    pub fn send(&self, command: &Command) -> io::Result<()> {
        let sent = {
            let mut guard = lock(&self.stdin);
            let stdin = &mut *guard;
            stdin.set_nonblocking(false);
            match stdin.pipe.as_mut() {
                Some(pipe) if !stdin.closing => {
                    let sent = command.write_to(pipe).and_then(|()| pipe.flush());
                    if sent.is_ok() {
                        self.unflushed.store(false, SeqCst);
                    }
                    sent
                }
                _ => Err(io::Error::from(io::ErrorKind::BrokenPipe)),
            }
        };
        self.deliver_control_after_use();
        sent
    }

    /// Sends one command only if that cannot block: see the module's docs. Never waits.
    pub fn try_send(&self, command: &Command) -> TrySend {
        let sent = {
            let Some(mut guard) = self.stdin_if_free() else {
                return TrySend::WouldBlock;
            };
            let stdin = &mut *guard;
            match &stdin.pipe {
                Some(_) if stdin.closing => return TrySend::Closed,
                None => return TrySend::Closed,
                // Control bytes wait in the buffer for room: the pipe is full.
                Some(pipe) if !pipe.buffer().is_empty() => return TrySend::WouldBlock,
                Some(_) => {}
            }
            stdin.frame.clear();
            if command.write_to(&mut stdin.frame).is_err() || stdin.frame.len() > libc::PIPE_BUF {
                // Too long to be written all or nothing. (Nor is its size kept for good.)
                stdin.frame = Vec::new();
                return TrySend::WouldBlock;
            }
            stdin.set_nonblocking(true);
            let Stdin { pipe, frame, .. } = stdin;
            let Some(pipe) = pipe.as_mut() else {
                return TrySend::Closed;
            };
            match pipe.get_mut().write(frame) {
                Ok(n) if n == frame.len() => TrySend::Sent,
                Ok(n) => {
                    // Not what a pipe does with a frame this short; should it happen, the
                    // rest waits in the (empty) buffer and the monitor writes it when there
                    // is room, as for a control frame.
                    let _ = pipe.write_all(&frame[n..]);
                    self.unflushed.store(true, SeqCst);
                    TrySend::Sent
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => TrySend::WouldBlock,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => TrySend::WouldBlock,
                // The worker is gone: its monitor fails the call.
                Err(_) => TrySend::Closed,
            }
        };
        self.deliver_control_after_use();
        sent
    }

    /// After a write released the pipe: a control request that found it busy counts on the
    /// writer to deliver it (or to wake the monitor, which waits for room).
    fn deliver_control_after_use(&self) {
        if self.control_pending() && matches!(self.deliver_control(), Delivery::Full(_)) {
            self.wake.wake();
        }
    }

    /// Requests the withdraw command (calls not begun are answered as withdrawn). Never blocks.
    pub fn withdraw(&self) {
        self.request(WITHDRAW);
    }

    /// Requests the stop command, then the end of stdin (so even a worker that missed the
    /// frame sees end-of-file). Idempotent, and never blocks: a wedged worker whose pipe is
    /// full must not hold up the stop; the stop's deadline kills it.
    pub fn close(&self) {
        self.stop_sent.store(true, SeqCst);
        self.request(STOP);
    }

    fn request(&self, control: u8) {
        self.control.fetch_or(control, SeqCst);
        if self.deliver_control() != Delivery::Done {
            // Its monitor finishes the job (a busy pipe's writer does too).
            self.wake.wake();
        }
    }

    /// Whether a control frame waits to be written.
    pub fn control_pending(&self) -> bool {
        self.control.load(SeqCst) != 0 || self.unflushed.load(SeqCst)
    }

    /// Writes the requested control frames without waiting: see [`Delivery`].
    pub fn deliver_control(&self) -> Delivery {
        let Some(mut guard) = self.stdin_if_free() else {
            return Delivery::Busy;
        };
        let stdin = &mut *guard;
        let requested = self.control.swap(0, SeqCst);
        stdin.set_nonblocking(true);
        let Some(pipe) = stdin.pipe.as_mut() else {
            // Closed: the worker has had its stop; nothing may follow it.
            self.unflushed.store(false, SeqCst);
            return Delivery::Done;
        };
        // Into the buffer first (a few bytes: it has room), then one flush for all.
        let mut buffered = 0;
        let mut written = Ok(());
        for (bit, command) in [(WITHDRAW, Command::Withdraw), (STOP, Command::Stop)] {
            if requested & bit == 0 || stdin.closing || written.is_err() {
                continue;
            }
            written = command.write_to(pipe);
            if written.is_ok() {
                buffered |= bit;
                stdin.closing = bit == STOP;
            }
        }
        let written = written.and_then(|()| pipe.flush());
        match written {
            Ok(()) => {
                self.unflushed.store(false, SeqCst);
                if stdin.closing {
                    stdin.pipe.take().map(BufWriter::into_parts);
                }
                Delivery::Done
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                // What reached the buffer goes out with the next flush; the rest is asked again.
                self.control.fetch_or(requested & !buffered, SeqCst);
                self.unflushed.store(true, SeqCst);
                Delivery::Full(self.stdin_fd)
            }
            Err(_) => {
                // The worker is gone (broken pipe): its monitor reports it.
                self.unflushed.store(false, SeqCst);
                stdin.pipe.take().map(BufWriter::into_parts);
                Delivery::Done
            }
        }
    }

    /// The stdin, unless another thread is writing to it.
    fn stdin_if_free(&self) -> Option<std::sync::MutexGuard<'_, Stdin>> {
        match self.stdin.try_lock() {
            Ok(stdin) => Some(stdin),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// Whether [`close`](Self::close) ran: an exit after it is expected.
    pub fn was_closed(&self) -> bool {
        self.stop_sent.load(SeqCst)
    }

    /// SIGKILL, unless it was already reaped. The monitor reaps and reports it.
    pub fn kill(&self) {
        if let Some(process) = lock(&self.child).as_ref() {
            let _ = process.kill();
        }
    }

    /// Waits for the process to end and reaps it; for the monitor thread only, after the
    /// worker's stdout ended (so the wait is short).
    pub fn reap(&self) -> Option<ExitStatus> {
        // The end first, without reaping: until the reap the pid is still ours, so a kill
        // meanwhile (a worker that closed its pipes but lives on) still reaches it.
        let pid = lock(&self.child).as_ref()?.id();
        let _ = spawn::wait_until_ended(pid);
        let process = lock(&self.child).take()?;
        let status = process.wait().ok();
        // Reaped: the pid is no longer ours, and may come back as an orphan's.
        graceful::reaper::forget(self.pid);
        status
    }

    /// Records how it ended and wakes whoever waits in [`wait_ended`](Self::wait_ended).
    pub fn set_ended(&self, how: String) {
        self.ended.set(how);
    }

    /// Waits until the worker ended and was reported, within `deadline`; returns whether it
    /// did.
    pub fn wait_ended(&self, deadline: &mut Deadline) -> bool {
        self.ended.wait_within(deadline).is_some()
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if let Some(process) = lock(&self.child).take() {
            tracing::warn!(
                worker_pid = self.pid,
                "{} was never reaped by its monitor; killing and reaping it now",
                self.name
            );
            let _ = process.kill();
            let _ = process.wait();
            graceful::reaper::forget(self.pid);
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

/// With `on`, writes to `pipe` fail with `WouldBlock` instead of waiting for room; returns
/// whether the mode is now set. Only the holder of the stdin lock toggles it (through
/// [`Stdin::set_nonblocking`]), so no other writer sees the change.
fn set_nonblocking(pipe: &File, on: bool) -> bool {
    let fd = pipe.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own (the pipe lives as long as `pipe`), only changing
    // O_NONBLOCK in its status flags.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 {
            return false;
        }
        let flags = if on {
            flags | libc::O_NONBLOCK
        } else {
            flags & !libc::O_NONBLOCK
        };
        libc::fcntl(fd, libc::F_SETFL, flags) == 0
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock_unpoisoned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mpm::protocol::Method;
    use std::io::Read;

    fn call(id: u64, parameter: String) -> Command {
        Command::Call {
            id,
            method: Method::ProcessString(parameter),
        }
    }

    #[test]
    fn try_send_never_waits_for_a_full_pipe() {
        // A "worker" that never reads its stdin.
        let (worker, _outputs) = WorkerProcess::spawn(&Program::at("/bin/sleep"), &["60".into()], 0).unwrap();
        let mut sent = 0u64;
        let outcome = loop {
            match worker.try_send(&call(sent, "x".repeat(100))) {
                TrySend::Sent => sent += 1,
                other => break other,
            }
            assert!(sent < 100_000, "a pipe holds far less than 10 MB");
        };
        assert!(matches!(outcome, TrySend::WouldBlock), "{outcome:?}");
        assert!(sent > 0, "an empty pipe takes a short frame");
        // Nor does the stop command wait (whether its few bytes still fit or not).
        worker.close();
        assert!(matches!(
            worker.try_send(&call(sent, "x".into())),
            TrySend::Closed
        ));
        worker.kill();
        worker.reap();
    }

    #[test]
    fn try_send_writes_whole_frames_and_leaves_long_ones_to_a_blocking_send() {
        let (worker, outputs) = WorkerProcess::spawn(&Program::at("/bin/cat"), &[], 0).unwrap();
        let long = call(2, "y".repeat(libc::PIPE_BUF));
        assert!(
            matches!(worker.try_send(&long), TrySend::WouldBlock),
            "longer than PIPE_BUF: not all-or-nothing, so not tried"
        );
        assert!(matches!(worker.try_send(&call(1, "short".into())), TrySend::Sent));
        worker.send(&long).unwrap();
        worker.close();
        let mut echoed = String::new();
        let mut stdout = outputs.stdout;
        stdout.read_to_string(&mut echoed).unwrap();
        let mut expected = Vec::new();
        for command in [call(1, "short".into()), long, Command::Stop] {
            command.write_to(&mut expected).unwrap();
        }
        assert_eq!(echoed.as_bytes(), expected, "the frames in order, each whole");
        assert!(matches!(
            worker.try_send(&call(3, "late".into())),
            TrySend::Closed
        ));
        worker.reap();
    }
}

//! The worker's stdin as its parent holds it: calls, updates and the control frames.
//!
//! **Control frames never wait.** A worker busy with an item drains its stdin only between
//! items, and a blocked caller may hold the pipe: the stop must not wait behind either. So
//! the withdraw and stop commands are *requested* ([`Stdin::withdraw`], [`Stdin::close`]):
//! a flag and one non-blocking attempt; what cannot go out now is written by whoever frees
//! the pipe (the caller that held it, or the monitor, which polls it for room).
//!
//! **A call that cannot block is written where it is made.** [`Stdin::try_send`] writes only
//! when nobody holds the pipe and the kernel takes the whole frame at once (at most
//! `PIPE_BUF` bytes: all or nothing), so an async caller sends from the runtime and only a
//! full pipe goes to the blocking pool: two thread wake-ups saved per call, which is what
//! the throughput target needs.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, atomic::AtomicBool, atomic::AtomicU8, atomic::Ordering::SeqCst};

use graceful::sync::LockUnpoisoned;
use nix::fcntl::{FcntlArg, OFlag, fcntl};

use crate::mpm::shared::protocol::{Command, Frame};

const WITHDRAW: u8 = 1;
const STOP: u8 = 2;

/// Wakes the monitors' loop, which writes a waiting control frame once the pipe has room.
pub type WakeMonitor = Arc<dyn Fn() + Send + Sync>;

/// The worker's stdin: the one way commands reach it.
pub struct Stdin {
    pipe: Mutex<Pipe>,
    /// The pipe's number, for the monitor to poll for room.
    fd: RawFd,
    /// Control frames requested and not yet handed to the pipe ([`WITHDRAW`], [`STOP`]).
    control: AtomicU8,
    /// Bytes of control frames wait in the pipe's buffer for room in the pipe.
    unflushed: AtomicBool,
    /// [`Stdin::close`] ran: an exit after it is expected.
    stop_sent: AtomicBool,
    /// Wakes the monitor, which writes what waits once the pipe has room.
    wake: WakeMonitor,
}

/// The write end of the pipe, while it is open.
struct Pipe {
    pipe: Option<BufWriter<File>>,
    /// The stop command is written (or waits in the buffer): nothing may follow it, and the
    /// pipe is closed once it is out, so even a worker that missed the frame sees end-of-file.
    closing: bool,
    /// Whether the pipe is in `O_NONBLOCK` mode now. Only the holder of the lock changes the
    /// mode, and only when the next write wants the other one, so a run of non-blocking
    /// sends costs no `fcntl` at all.
    nonblocking: bool,
    /// Where [`Stdin::try_send`] encodes a frame, kept to spare an allocation per call.
    frame: Vec<u8>,
}

impl Pipe {
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

impl Drop for Pipe {
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

/// How a [`Stdin::try_send`] went.
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

impl Stdin {
    /// The write end of a worker's stdin; `wake` wakes its monitor.
    pub fn new(pipe: File, wake: WakeMonitor) -> Self {
        Self {
            fd: pipe.as_raw_fd(),
            pipe: Mutex::new(Pipe {
                pipe: Some(BufWriter::new(pipe)),
                closing: false,
                nonblocking: false,
                frame: Vec::new(),
            }),
            control: AtomicU8::new(0),
            unflushed: AtomicBool::new(false),
            stop_sent: AtomicBool::new(false),
            wake,
        }
    }

    /// Sends one command, waiting for room in the pipe. Fails once the worker was closed or
    /// its stdin broke. Then writes any control frame requested meanwhile.
    pub fn send(&self, command: &Command) -> io::Result<()> {
        let sent = {
            let mut guard = self.pipe.lock_unpoisoned();
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
            let Pipe { pipe, frame, .. } = stdin;
            let Some(pipe) = pipe.as_mut() else {
                return TrySend::Closed;
            };
            // A non-blocking write of at most PIPE_BUF bytes to a pipe takes all or nothing.
            match pipe.get_mut().write(frame) {
                Ok(_) => TrySend::Sent,
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
            (self.wake)();
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
            (self.wake)();
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
                Delivery::Full(self.fd)
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
    fn stdin_if_free(&self) -> Option<std::sync::MutexGuard<'_, Pipe>> {
        match self.pipe.try_lock() {
            Ok(stdin) => Some(stdin),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// Whether [`close`](Self::close) ran: an exit after it is expected.
    pub fn was_closed(&self) -> bool {
        self.stop_sent.load(SeqCst)
    }
}

/// With `on`, writes to `pipe` fail with `WouldBlock` instead of waiting for room; returns
/// whether the mode is now set. Only the holder of the pipe's lock toggles it (through
/// [`Pipe::set_nonblocking`]), so no other writer sees the change.
fn set_nonblocking(pipe: &File, on: bool) -> bool {
    let Ok(flags) = fcntl(pipe, FcntlArg::F_GETFL) else {
        return false;
    };
    let mut flags = OFlag::from_bits_retain(flags);
    flags.set(OFlag::O_NONBLOCK, on);
    fcntl(pipe, FcntlArg::F_SETFL(flags)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::super::spawn::{Program, Spawned, spawn_with_signals_blocked};
    use super::*;
    use crate::mpm::shared::protocol::Method;
    use std::io::Read;

    /// A process whose stdin is held as a worker's is (no monitor: wake-ups go nowhere).
    fn spawn(program: &str, args: &[String]) -> (Stdin, super::super::spawn::Process) {
        let spawned = spawn_with_signals_blocked(&Program::at(program), args).unwrap();
        (Stdin::new(spawned.stdin, Arc::new(|| {})), spawned.process)
    }

    fn call(id: u64, parameter: String) -> Command {
        Command::Call {
            id,
            method: Method::ProcessString(parameter),
        }
    }

    #[test]
    fn try_send_never_waits_for_a_full_pipe() {
        // A "worker" that never reads its stdin.
        let (stdin, process) = spawn("/bin/sleep", &["60".into()]);
        let mut sent = 0u64;
        let outcome = loop {
            match stdin.try_send(&call(sent, "x".repeat(100))) {
                TrySend::Sent => sent += 1,
                other => break other,
            }
            assert!(sent < 100_000, "a pipe holds far less than 10 MB");
        };
        assert!(matches!(outcome, TrySend::WouldBlock), "{outcome:?}");
        assert!(sent > 0, "an empty pipe takes a short frame");
        // Nor does the stop command wait (whether its few bytes still fit or not).
        stdin.close();
        assert!(matches!(stdin.try_send(&call(sent, "x".into())), TrySend::Closed));
        process.kill().unwrap();
        process.wait().unwrap();
    }

    #[test]
    fn try_send_writes_whole_frames_and_leaves_long_ones_to_a_blocking_send() {
        let Spawned {
            process,
            stdin,
            mut stdout,
            ..
        } = spawn_with_signals_blocked(&Program::at("/bin/cat"), &[]).unwrap();
        let stdin = Stdin::new(stdin, Arc::new(|| {}));
        let long = call(2, "y".repeat(libc::PIPE_BUF));
        assert!(
            matches!(stdin.try_send(&long), TrySend::WouldBlock),
            "longer than PIPE_BUF: not all-or-nothing, so not tried"
        );
        assert!(matches!(stdin.try_send(&call(1, "short".into())), TrySend::Sent));
        stdin.send(&long).unwrap();
        stdin.close();
        let mut echoed = String::new();
        stdout.read_to_string(&mut echoed).unwrap();
        let mut expected = Vec::new();
        for command in [call(1, "short".into()), long, Command::Stop] {
            command.write_to(&mut expected).unwrap();
        }
        assert_eq!(echoed.as_bytes(), expected, "the frames in order, each whole");
        assert!(matches!(stdin.try_send(&call(3, "late".into())), TrySend::Closed));
        process.wait().unwrap();
    }
}

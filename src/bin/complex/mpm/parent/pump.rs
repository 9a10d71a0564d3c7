//! The monitors' loop: one thread polls every worker's stdout (reports, handled as each line
//! is whole), stderr (log lines, forwarded whole: `worker_logs.rs`) and, while commands
//! wait for room, stdin; and its own wake socket (a new worker, a command queued, the stop).
//! Workers cost processes, not threads: the main process's thread count does not grow with
//! `--workers`. A worker leaves the loop once both its pipes ended (its last log lines are
//! out before its end is reported); the rest of its end may wait (its reap, a replacement's
//! handshake), so it runs on a thread of its own that lives only that long (`supervision.rs`).
//! The loop is never the runtime's: a stuck runtime does not hide a worker's end.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, atomic::AtomicBool, atomic::Ordering::SeqCst, mpsc::SyncSender};
use std::thread::JoinHandle;

use graceful::sync::LockUnpoisoned;

use super::Shared;
use super::child::{Outputs, WorkerProcess};
use super::handshake::Heard;
use super::worker_logs::{self, Dropped, Lines};
use crate::mpm::shared::protocol::{Frame, ProtocolError, Report, complete_line};

/// Bytes taken per read.
const CHUNK: usize = 64 * 1024;

/// The loop's state shared with the threads that hand it workers.
pub(super) struct Pump {
    incoming: Mutex<Vec<Watched>>,
    /// What wakes the loop: a worker's stdin holds it, for the commands that wait for room.
    pub(super) wake: Arc<Wake>,
    /// The loop's end of the wake socket, until the loop starts.
    receiver: Mutex<Option<WakeReceiver>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Set by the stop: the loop ends once no worker is left to watch.
    closing: AtomicBool,
}

/// A worker as the loop watches it, and what it heard of it so far.
pub(super) struct Watched {
    pub(super) worker: Arc<WorkerProcess>,
    pub(super) handshake: SyncSender<Heard>,
    stdout: Option<File>,
    stderr: Option<File>,
    partial: Vec<u8>,
    lines: Lines,
    /// Why its report stream broke, if it did not end cleanly.
    pub(super) broken: Option<String>,
    /// What its reports told so far: see `supervision.rs`.
    pub(super) told: Told,
}

/// What a worker's reports told that decides how its end is reported.
#[derive(Default)]
pub(super) struct Told {
    pub(super) started: bool,
    pub(super) refused: bool,
    pub(super) withdrawals: u32,
}

impl Pump {
    /// A loop not started yet. Without a wake socket (no descriptor left) no worker can be
    /// watched: its start fails.
    pub(super) fn new() -> Self {
        let pair = UnixStream::pair().and_then(|(wake, receiver)| {
            wake.set_nonblocking(true)?;
            receiver.set_nonblocking(true)?;
            Ok((wake, WakeReceiver(receiver)))
        });
        let (wake, receiver) = pair.ok().unzip();
        Self {
            incoming: Mutex::default(),
            wake: Arc::new(Wake(wake)),
            receiver: Mutex::new(receiver),
            thread: Mutex::default(),
            closing: AtomicBool::default(),
        }
    }
}

impl Shared {
    /// Hands `worker` to the loop, starting the loop with its first worker.
    pub(super) fn watch(
        self: &Arc<Self>,
        worker: Arc<WorkerProcess>,
        outputs: Outputs,
        handshake: SyncSender<Heard>,
    ) -> io::Result<()> {
        let mut thread = self.pump.thread.lock_unpoisoned();
        if thread.is_none() {
            let receiver = self.pump.receiver.lock_unpoisoned().take();
            let Some(receiver) = receiver else {
                return Err(io::Error::other(
                    "no wake socket, or the monitors' loop has ended",
                ));
            };
            let shared = self.clone();
            *thread = Some(
                std::thread::Builder::new()
                    .name("MPM-monitor".into())
                    .spawn(move || shared.run_pump(receiver))?,
            );
        }
        self.pump.incoming.lock_unpoisoned().push(Watched {
            worker,
            handshake,
            stdout: Some(outputs.stdout),
            stderr: Some(outputs.stderr),
            partial: Vec::new(),
            lines: Lines::default(),
            broken: None,
            told: Told::default(),
        });
        self.pump.wake.wake();
        Ok(())
    }

    /// Ends the loop once every worker it watches has ended, and waits for it.
    pub(super) fn close_pump(&self) {
        self.pump.closing.store(true, SeqCst);
        self.pump.wake.wake();
        let thread = self.pump.thread.lock_unpoisoned().take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }

    /// The loop: until it is closed and no worker is left.
    fn run_pump(self: Arc<Self>, wake: WakeReceiver) {
        let mut watched: Vec<Watched> = Vec::new();
        let mut fds: Vec<libc::pollfd> = Vec::new();
        let mut chunk = vec![0u8; CHUNK];
        loop {
            watched.append(&mut self.pump.incoming.lock_unpoisoned());
            if watched.is_empty() && self.pump.closing.load(SeqCst) {
                return;
            }
            fds.clear();
            fds.push(poll_fd(Some(wake.fd()), libc::POLLIN));
            for one in &watched {
                let room_wanted = one.worker.stdin.write_queued();
                fds.push(poll_fd(one.stdout.as_ref().map(AsRawFd::as_raw_fd), libc::POLLIN));
                fds.push(poll_fd(one.stderr.as_ref().map(AsRawFd::as_raw_fd), libc::POLLIN));
                // A stdin closed meanwhile by another thread may be a reused number: at worst
                // one needless wake-up, never a read or a write.
                fds.push(poll_fd(room_wanted, libc::POLLOUT));
            }
            // SAFETY: `fds` is a valid array of pollfd; negative descriptors are ignored.
            let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
            if ready < 0 {
                let error = io::Error::last_os_error();
                if error.kind() != io::ErrorKind::Interrupted {
                    // Cannot wait for the pipes any more: end the workers rather than spin
                    // or hang; their ends are reported as usual.
                    tracing::error!("MPM: cannot poll the workers' pipes ({error}); killing them");
                    for one in &mut watched {
                        one.worker.kill();
                        one.broken
                            .get_or_insert(format!("cannot poll its pipes: {error}"));
                        (one.stdout, one.stderr) = (None, None);
                    }
                }
            } else {
                if fds[0].revents != 0 {
                    wake.drain();
                }
                for (one, fds) in watched.iter_mut().zip(fds[1..].chunks(3)) {
                    self.take_in(one, fds[0].revents != 0, fds[1].revents != 0, &mut chunk);
                }
            }
            let (ended, open): (Vec<_>, Vec<_>) = std::mem::take(&mut watched)
                .into_iter()
                .partition(|one| one.stdout.is_none() && one.stderr.is_none());
            watched = open;
            for one in ended {
                self.after_the_end(one);
            }
        }
    }

    /// Reads what poll said is ready from one worker.
    fn take_in(&self, one: &mut Watched, stdout_ready: bool, stderr_ready: bool, chunk: &mut [u8]) {
        let worker = one.worker.clone();
        // Log lines first: a worker logs what it did, then reports it.
        if let Some(stderr) = one.stderr.as_mut().filter(|_| stderr_ready) {
            if !take_in_lines(&worker, stderr, chunk, &mut one.lines) {
                one.stderr = None;
            }
        }
        let Some(stdout) = one.stdout.as_mut().filter(|_| stdout_ready) else {
            return;
        };
        let (told, handshake) = (&mut one.told, &one.handshake);
        match take_in_reports(&mut one.partial, stdout, chunk, &mut |report| {
            self.on_report(&worker, told, handshake, report);
        }) {
            Ok(true) => {}
            Ok(false) => one.stdout = None,
            Err(error) => {
                tracing::error!(
                    worker_pid = worker.pid,
                    "MPM: {} sent garbage ({error}); killing it",
                    worker.name
                );
                worker.kill();
                one.broken = Some(error.to_string());
                one.stdout = None;
            }
        }
    }
}

/// The waking end of the loop's wake socket: a wake-up is one byte that never blocks (a
/// full socket already holds one), and an idle loop costs no periodic wake-up.
pub struct Wake(Option<UnixStream>);

/// The loop's end.
struct WakeReceiver(UnixStream);

impl Wake {
    /// Wakes the loop; never blocks.
    pub fn wake(&self) {
        if let Some(socket) = &self.0 {
            let _ = (&*socket).write(&[1]);
        }
    }
}

impl WakeReceiver {
    fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// Empties the socket (wake-ups carry no data; several count as one).
    fn drain(&self) {
        let mut sink = [0u8; 64];
        while matches!((&self.0).read(&mut sink), Ok(n) if n > 0) {}
    }
}

/// One read of the worker's stdout (poll said it will not block) onto `partial`, what was
/// read and is not yet a whole frame; handles every whole frame. `Ok(false)` at the end.
fn take_in_reports(
    partial: &mut Vec<u8>,
    stdout: &mut File,
    chunk: &mut [u8],
    on_report: &mut impl FnMut(Report),
) -> Result<bool, ProtocolError> {
    let n = match stdout.read(chunk) {
        Ok(0) if partial.is_empty() => return Ok(false),
        Ok(0) => return Err(ProtocolError::Io(io::Error::from(io::ErrorKind::UnexpectedEof))),
        Ok(n) => n,
        Err(error) if error.kind() == io::ErrorKind::Interrupted => return Ok(true),
        Err(error) => return Err(error.into()),
    };
    partial.extend_from_slice(&chunk[..n]);
    let mut start = 0;
    while let Some(length) = complete_line(&partial[start..])? {
        let line = &partial[start..start + length - 1];
        start += length;
        on_report(Report::from_line(line)?);
    }
    partial.drain(..start);
    Ok(true)
}

/// One read of the worker's stderr; forwards its whole lines. Returns whether it is open.
fn take_in_lines(worker: &WorkerProcess, stderr: &mut File, chunk: &mut [u8], lines: &mut Lines) -> bool {
    let name = worker.name.as_str();
    let n = match stderr.read(chunk) {
        Ok(n) => n,
        Err(error) if error.kind() == io::ErrorKind::Interrupted => return true,
        Err(error) => {
            tracing::warn!("MPM: cannot read the log of {name} ({error}); its further lines are lost");
            0
        }
    };
    if n == 0 {
        if let Some(bytes) = lines.finish() {
            tracing::warn!(
                event = "truncated",
                component = name,
                bytes,
                "{name}: its last log line was cut off when it ended; {bytes} bytes dropped"
            );
        }
        return false;
    }
    for Dropped::TooLong(bytes) in lines.push(&chunk[..n], |line| graceful::logging::forward(name, line)) {
        tracing::warn!(
            event = "truncated",
            component = name,
            bytes,
            "{name}: a log line longer than {} bytes was dropped",
            worker_logs::MAX_LINE
        );
    }
    true
}

fn poll_fd(fd: Option<RawFd>, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd: fd.unwrap_or(-1),
        events,
        revents: 0,
    }
}

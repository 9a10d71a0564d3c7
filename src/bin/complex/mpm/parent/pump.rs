//! The monitors' loop: one thread waits, with `epoll`, on every worker's stdout (reports,
//! handled as each line is whole), stderr (log lines, forwarded whole: see `WholeLines`) and
//! stdin (room in a full pipe, for the commands that wait: `stdin.rs`), and on its own wake-up
//! (an eventfd: a new worker, the stop). Workers cost processes, not threads: the main process's
//! thread count does not grow with `--workers`, and a wake-up costs what is ready, not what
//! is watched (`poll` rebuilt and scanned every pipe of every worker on each wake-up). A
//! worker leaves the loop once both its pipes ended (its last log lines are out before its
//! end is reported); the rest of its end may wait (its reap, a replacement's handshake), so
//! it runs on a thread of its own that lives only that long (`supervision.rs`). The loop is
//! never the runtime's: a stuck runtime does not hide a worker's end.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::sync::{Arc, Mutex, atomic::AtomicBool, atomic::Ordering::SeqCst, mpsc::SyncSender};
use std::thread::JoinHandle;
use std::time::Duration;

use graceful::logging::WholeLines;
use graceful::sync::LockUnpoisoned;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};

use super::Shared;
use super::child::{Outputs, WorkerProcess};
use super::handshake::Heard;
use crate::mpm::shared::protocol::{self, Frame, ProtocolError, Report};

/// Bytes taken per read.
const CHUNK: usize = 64 * 1024;
/// The longest log line carried; anything longer is dropped (worker lines are far shorter).
const MAX_LOG_LINE: usize = 64 * 1024;
/// Readiness events taken per wait.
const EVENTS: usize = 256;
/// An event's token: the worker's incarnation (unique for the whole run, so an event never
/// reaches the wrong worker) times four, plus which pipe.
const STDOUT: u64 = 0;
const STDERR: u64 = 1;
const STDIN: u64 = 2;
/// The wake-up's token.
const WAKE: u64 = u64::MAX;
/// How long the loop waits before it tries again after `epoll_wait` failed.
const RETRY_WAIT: Duration = Duration::from_millis(100);

/// The loop's state shared with the threads that hand it workers.
pub(super) struct Pump {
    incoming: Mutex<Vec<Watched>>,
    /// The loop's epoll set, with what wakes the loop (a new worker, the stop) in it. `None`
    /// without a descriptor to spare: then no worker can be watched, and its start fails.
    set: Option<(Epoll, EventFd)>,
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
    /// Its stdout and stderr, cut into lines.
    reports: WholeLines,
    lines: WholeLines,
    /// Why its report stream broke, if it did not end cleanly.
    pub(super) broken: Option<String>,
    /// What its reports told so far: see `supervision.rs`.
    pub(super) told: Told,
}

impl Watched {
    fn close_pipes(&mut self, epoll: &Epoll) {
        close(&mut self.stdout, epoll);
        close(&mut self.stderr, epoll);
    }
}

/// Stops reading one of a worker's pipes, out of the set first: a child caught between its
/// spawn and its exec holds a copy of it, and would keep its hang-up reported on every wait.
fn close(pipe: &mut Option<File>, epoll: &Epoll) {
    if let Some(pipe) = pipe.take() {
        let _ = epoll.delete(&pipe);
    }
}

/// What a worker's reports told that decides how its end is reported.
#[derive(Default)]
pub(super) struct Told {
    pub(super) started: bool,
    pub(super) refused: bool,
    pub(super) withdrawals: u32,
}

impl Pump {
    /// A loop not started yet.
    pub(super) fn new() -> Self {
        let set = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).and_then(|epoll| {
            let wake = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
            epoll.add(&wake, EpollEvent::new(EpollFlags::EPOLLIN, WAKE))?;
            Ok((epoll, wake))
        });
        Self {
            incoming: Mutex::default(),
            set: set.ok(),
            thread: Mutex::default(),
            closing: AtomicBool::default(),
        }
    }

    /// Wakes the loop; never blocks (several wake-ups count as one).
    fn wake(&self) {
        if let Some((_, wake)) = &self.set {
            let _ = wake.write(1);
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
        if self.pump.set.is_none() {
            return Err(io::Error::other("no descriptor to spare for an epoll set"));
        }
        let mut thread = self.pump.thread.lock_unpoisoned();
        if thread.is_none() {
            let shared = self.clone();
            *thread = Some(
                std::thread::Builder::new()
                    .name("MPM-monitor".into())
                    .spawn(move || shared.run_pump())?,
            );
        }
        // Our ends only (the worker's are other descriptions): a read never waits, so a
        // readiness the loop acted on already costs nothing.
        for pipe in [&outputs.stdout, &outputs.stderr] {
            fcntl(pipe, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        }
        self.pump.incoming.lock_unpoisoned().push(Watched {
            worker,
            handshake,
            stdout: Some(outputs.stdout),
            stderr: Some(outputs.stderr),
            reports: WholeLines::new(protocol::MAX_LINE),
            lines: WholeLines::new(MAX_LOG_LINE),
            broken: None,
            told: Told::default(),
        });
        self.pump.wake();
        Ok(())
    }

    /// Ends the loop once every worker it watches has ended, and waits for it.
    pub(super) fn close_pump(&self) {
        self.pump.closing.store(true, SeqCst);
        self.pump.wake();
        let thread = self.pump.thread.lock_unpoisoned().take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }

    /// The loop: until it is closed and no worker is left.
    fn run_pump(self: Arc<Self>) {
        let Some((epoll, wake)) = &self.pump.set else {
            return;
        };
        let mut watched: HashMap<u64, Watched> = HashMap::new();
        let mut events = vec![EpollEvent::empty(); EVENTS];
        let mut chunk = vec![0u8; CHUNK];
        loop {
            for mut one in self.pump.incoming.lock_unpoisoned().drain(..) {
                if let Err(error) = register(epoll, &one) {
                    tracing::error!("MPM: cannot watch {} ({error}); killing it", one.worker.name);
                    one.worker.kill();
                    one.broken = Some(format!("cannot watch its pipes: {error}"));
                    one.close_pipes(epoll);
                }
                watched.insert(one.worker.incarnation, one);
            }
            if watched.is_empty() && self.pump.closing.load(SeqCst) {
                return;
            }
            let ready = match epoll.wait(&mut events, EpollTimeout::NONE) {
                Ok(ready) => ready,
                Err(nix::errno::Errno::EINTR) => 0,
                Err(error) => {
                    // Cannot wait for the pipes (only EINTR is expected): end the workers
                    // rather than hang, their ends reported as usual, and try again a little
                    // later rather than spin.
                    tracing::error!("MPM: cannot wait for the workers' pipes ({error}); killing them");
                    for one in watched.values_mut() {
                        one.worker.kill();
                        one.broken
                            .get_or_insert(format!("cannot wait for its pipes: {error}"));
                        one.close_pipes(epoll);
                    }
                    std::thread::sleep(RETRY_WAIT);
                    0
                }
            };
            // Log lines first: a worker logs what it did, then reports it, so of what this
            // wait found ready, each stderr is read (once) before any stdout.
            for pass in [STDERR, STDOUT] {
                for token in events[..ready].iter().map(EpollEvent::data) {
                    if token == WAKE {
                        let _ = wake.read();
                        continue;
                    }
                    let Some(one) = watched.get_mut(&(token / 4)) else {
                        continue;
                    };
                    match token % 4 {
                        STDIN if pass == STDERR => {
                            let _ = one.worker.stdin.try_write_all();
                        }
                        pipe if pipe == pass => self.take_in(one, pipe, &mut chunk, epoll),
                        _ => {}
                    }
                }
            }
            let ended: Vec<u64> = watched
                .iter()
                .filter(|(_, one)| one.stdout.is_none() && one.stderr.is_none())
                .map(|(&incarnation, _)| incarnation)
                .collect();
            for incarnation in ended {
                if let Some(one) = watched.remove(&incarnation) {
                    self.after_the_end(one);
                }
            }
        }
    }

    /// Reads what epoll said is ready in one of a worker's pipes.
    fn take_in(&self, one: &mut Watched, pipe: u64, chunk: &mut [u8], epoll: &Epoll) {
        let worker = one.worker.clone();
        if pipe == STDERR {
            if let Some(stderr) = one.stderr.as_mut() {
                if !take_in_lines(&worker, stderr, chunk, &mut one.lines) {
                    close(&mut one.stderr, epoll);
                }
            }
            return;
        }
        let Some(stdout) = one.stdout.as_mut() else {
            return;
        };
        let (told, handshake) = (&mut one.told, &one.handshake);
        match take_in_reports(&mut one.reports, stdout, chunk, &mut |report| {
            self.on_report(&worker, told, handshake, report);
        }) {
            Ok(true) => {}
            Ok(false) => close(&mut one.stdout, epoll),
            Err(error) => {
                tracing::error!(
                    worker_pid = worker.pid,
                    "MPM: {} sent garbage ({error}); killing it",
                    worker.name
                );
                worker.kill();
                one.broken = Some(error.to_string());
                close(&mut one.stdout, epoll);
            }
        }
    }
}

/// One read of the worker's stdout (epoll said it is ready); handles every whole report.
/// `Ok(false)` at the end.
fn take_in_reports(
    reports: &mut WholeLines,
    stdout: &mut File,
    chunk: &mut [u8],
    on_report: &mut impl FnMut(Report),
) -> Result<bool, ProtocolError> {
    let n = match stdout.read(chunk) {
        Ok(0) if reports.finish().is_none() => return Ok(false),
        Ok(0) => return Err(ProtocolError::Io(io::Error::from(io::ErrorKind::UnexpectedEof))),
        Ok(n) => n,
        Err(error) if is_transient(&error) => return Ok(true),
        Err(error) => return Err(error.into()),
    };
    let mut garbage = None;
    let too_long = reports.push(&chunk[..n], |line| match Report::from_line(line) {
        Ok(report) if garbage.is_none() => on_report(report),
        Ok(_) => {}
        Err(error) => drop(garbage.get_or_insert(error)),
    });
    if !too_long.is_empty() {
        let limit = protocol::MAX_LINE;
        return Err(ProtocolError::Garbage(format!(
            "a line longer than {limit} bytes"
        )));
    }
    garbage.map_or(Ok(true), Err)
}

/// One read of the worker's stderr; forwards its whole lines. Returns whether it is open.
fn take_in_lines(
    worker: &WorkerProcess,
    stderr: &mut File,
    chunk: &mut [u8],
    lines: &mut WholeLines,
) -> bool {
    let name = worker.name.as_str();
    let n = match stderr.read(chunk) {
        Ok(n) => n,
        Err(error) if is_transient(&error) => return true,
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
    for bytes in lines.push(&chunk[..n], |line| graceful::logging::forward(name, line)) {
        tracing::warn!(
            event = "truncated",
            component = name,
            bytes,
            "{name}: a log line longer than {} bytes was dropped",
            MAX_LOG_LINE
        );
    }
    true
}

/// Adds a worker's three pipes to the loop's set, each under its own token.
fn register(epoll: &Epoll, one: &Watched) -> nix::Result<()> {
    let token = |pipe| one.worker.incarnation * 4 + pipe;
    for (pipe, file) in [(STDOUT, &one.stdout), (STDERR, &one.stderr)] {
        if let Some(file) = file {
            epoll.add(file, EpollEvent::new(EpollFlags::EPOLLIN, token(pipe)))?;
        }
    }
    one.worker.stdin.watch_room(epoll, token(STDIN))
}

/// A read that found nothing yet: try again at the next readiness.
fn is_transient(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
    )
}

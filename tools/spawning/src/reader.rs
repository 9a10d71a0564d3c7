//! Reading a run's stderr line by line on a thread of its own, as a terminal or a log
//! shipper would: from a pipe (which a [`Gate`] can stall and a pace can slow, to make the
//! sinks the contract must survive), or from a regular file as it grows.

use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use crate::watch::blocked_writing;
use crate::{Gate, wait_exited};

/// The reader of a piped stderr: one line at a time, each read after passing `gate`, at
/// most `pace` bytes a second (0: as fast as it comes). Ends at the pipe's end, or once
/// nobody receives.
fn read_pipe(stderr: impl Read, gate: &Gate, pace: &AtomicU64, sender: &Sender<String>) {
    // A small buffer, so that a paced reader takes from the pipe no faster than its pace.
    let mut reader = BufReader::with_capacity(512, stderr);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        gate.pass();
        match reader.read_until(b'\n', &mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let rate = pace.load(Ordering::Relaxed);
                if rate > 0 {
                    // A rate limit of the sink being simulated, not a synchronisation.
                    std::thread::sleep(Duration::from_secs_f64(n as f64 / rate as f64));
                }
                let line = String::from_utf8_lossy(&buffer);
                let line = line.strip_suffix('\n').unwrap_or(&line).to_owned();
                if sender.send(line).is_err() {
                    break;
                }
            }
        }
    }
}

/// The reader of a stderr that is a regular file: whole lines as they are completed; at
/// the file's end it waits (on the main process's pidfd, a few ms at a time) for more, and
/// once the main process `pid` has exited it reads to the end and stops. A last line
/// without its newline (a writer killed mid-line) is passed on as it is.
fn tail_file(mut file: std::fs::File, pid: i32, sender: &Sender<String>) {
    let mut pending = Vec::new();
    let mut chunk = [0_u8; 8192];
    let mut exited = false;
    loop {
        match file.read(&mut chunk) {
            Ok(0) if exited => break,
            Ok(0) => exited = wait_exited(pid, Duration::from_millis(10)),
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
            Err(_) => break,
        }
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..end]).into_owned();
            if sender.send(line).is_err() {
                return;
            }
        }
    }
    if !pending.is_empty() {
        let _ = sender.send(String::from_utf8_lossy(&pending).into_owned());
    }
}

/// A reader thread on a spawned child's stderr, and the driver's controls over it.
pub struct Stderr {
    /// The lines, as read; disconnected once the reader has seen the end.
    pub lines: Receiver<String>,
    /// Closed, it stalls the reader between two reads: a pipe then fills up as behind a
    /// pager nobody scrolls.
    pub gate: Arc<Gate>,
    /// Bytes a second the reader takes from a pipe; 0 for as fast as it comes.
    pub pace: Arc<AtomicU64>,
    /// Our own handle on the read end of a pipe, to ask how full it is.
    pipe: Option<OwnedFd>,
}

impl Stderr {
    /// Starts reading `child`'s stderr: its pipe, or, when `file` is given, that regular
    /// file the child writes to. The thread is not joined: it ends at the end of the pipe
    /// (every process holding it has exited) or of the file (the child has exited), which
    /// the driver sees as `lines` disconnecting.
    pub fn read(child: &mut Child, file: Option<&Path>) -> io::Result<Self> {
        let pid = i32::try_from(child.id()).expect("a pid fits in i32");
        let gate = Arc::new(Gate::default());
        let pace = Arc::new(AtomicU64::new(0));
        let (sender, lines) = mpsc::channel();
        let reader = std::thread::Builder::new().name(format!("stderr-of-{pid}"));
        let mut pipe = None;
        match file {
            Some(path) => {
                let file = std::fs::File::open(path)?;
                reader.spawn(move || tail_file(file, pid, &sender))?;
            }
            None => {
                let stderr = child.stderr.take().ok_or(io::ErrorKind::InvalidInput)?;
                pipe = stderr.as_fd().try_clone_to_owned().ok();
                let (gate, pace) = (gate.clone(), pace.clone());
                reader.spawn(move || read_pipe(stderr, &gate, &pace, &sender))?;
            }
        }
        Ok(Self {
            lines,
            gate,
            pace,
            pipe,
        })
    }

    /// Waits until stderr is a full pipe that process `writer` is blocked writing to: the
    /// pipe holds at least half its capacity (`FIONREAD` against `F_GETPIPE_SZ`; a pipe's
    /// last page of each slot is never filled to the byte) and a thread of `writer` sits in
    /// `write(2)` on it. No notification says so: the pipe and `/proc` are read every 5 ms,
    /// up to `timeout`. Returns the bytes held, or why it is not full.
    pub fn wait_full(&self, writer: i32, timeout: Duration) -> Result<usize, String> {
        let fd = self.pipe.as_ref().ok_or("stderr is not a pipe")?.as_raw_fd();
        let os_error = |what: &str| format!("{what} failed: {}", io::Error::last_os_error());
        // SAFETY: F_GETPIPE_SZ on a pipe descriptor we own.
        let capacity = unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) };
        let capacity = usize::try_from(capacity).map_err(|_| os_error("F_GETPIPE_SZ"))?;
        let ours = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok();
        let deadline = Instant::now() + timeout;
        loop {
            let mut held: libc::c_int = 0;
            // SAFETY: FIONREAD writes one int, the bytes readable now.
            if unsafe { libc::ioctl(fd, libc::FIONREAD, &mut held) } != 0 {
                return Err(os_error("FIONREAD"));
            }
            let held = usize::try_from(held).unwrap_or(0);
            if 2 * held >= capacity && blocked_writing(writer, ours.as_deref()) {
                return Ok(held);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "stderr never filled up ({held} of {capacity} bytes held) within {timeout:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

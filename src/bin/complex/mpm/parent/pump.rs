//! The monitor's loop: one thread per worker incarnation takes in everything that worker
//! sends, and is the only reader of it.
//!
//! It polls four things at once and never blocks anywhere else:
//! - the worker's **stdout**: report lines, handled as soon as each is whole;
//! - the worker's **stderr**: log lines, each forwarded whole to this process's log writer
//!   (see `worker_logs.rs`); a line the worker did not finish is dropped and reported;
//! - its **wake socket**: a control frame is waiting;
//! - the worker's **stdin**, for room, only while a control frame waits for it.
//!
//! Why one thread for both pipes rather than a thread per pipe: the worker's last log lines
//! are forwarded before its monitor reports how it ended (the loop ends only when both pipes
//! have), with no second thread to join, bound or fail to create.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::sync::Arc;

use super::child::{Outputs, WorkerProcess};
use super::stdin::Delivery;
use super::worker_logs::{self, Dropped, Lines};
use crate::mpm::shared::protocol::{Frame, ProtocolError, Report, complete_line};

/// Bytes taken per read.
const CHUNK: usize = 64 * 1024;

/// Runs until the worker's stdout and stderr both ended, calling `on_report` with each
/// report. Returns why the report stream broke, if it did not end cleanly (the worker is
/// then killed, and its stderr still read to the end).
pub(super) fn pump(
    worker: &Arc<WorkerProcess>,
    outputs: Outputs,
    mut on_report: impl FnMut(Report),
) -> Option<String> {
    let Outputs {
        mut stdout,
        mut stderr,
        wake,
    } = outputs;
    let mut reports = Vec::new();
    let mut lines = Lines::default();
    let mut chunk = vec![0u8; CHUNK];
    let (mut stdout_open, mut stderr_open) = (true, true);
    let mut broken = None;
    while stdout_open || stderr_open {
        let room_wanted = match worker
            .stdin
            .control_pending()
            .then(|| worker.stdin.deliver_control())
        {
            Some(Delivery::Full(fd)) => fd,
            _ => -1,
        };
        let mut fds = [
            poll_fd(stdout_open.then(|| stdout.as_raw_fd()), libc::POLLIN),
            poll_fd(stderr_open.then(|| stderr.as_raw_fd()), libc::POLLIN),
            poll_fd(Some(wake.fd()), libc::POLLIN),
            // A stdin closed meanwhile by another thread may be a reused number: at worst
            // one needless wake-up, never a read or a write.
            poll_fd((room_wanted >= 0).then_some(room_wanted), libc::POLLOUT),
        ];
        // SAFETY: `fds` is a valid array of pollfd; negative descriptors are ignored.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if ready < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // Cannot wait for the pipes any more: end the worker rather than spin or hang.
            worker.kill();
            return broken.or(Some(format!("cannot poll its pipes: {error}")));
        }
        if fds[2].revents != 0 {
            wake.drain();
        }
        // Log lines first: a worker logs what it did, then reports it.
        if stderr_open && fds[1].revents != 0 {
            stderr_open = take_in_lines(worker, &mut stderr, &mut chunk, &mut lines);
        }
        if stdout_open && fds[0].revents != 0 {
            match take_in_reports(&mut reports, &mut stdout, &mut chunk, &mut on_report) {
                Ok(true) => {}
                Ok(false) => stdout_open = false,
                Err(error) => {
                    tracing::error!(
                        worker_pid = worker.pid,
                        "MPM: {} sent garbage ({error}); killing it",
                        worker.name
                    );
                    worker.kill();
                    broken = Some(error.to_string());
                    stdout_open = false;
                }
            }
        }
    }
    broken
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

fn poll_fd(fd: Option<std::os::fd::RawFd>, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd: fd.unwrap_or(-1),
        events,
        revents: 0,
    }
}

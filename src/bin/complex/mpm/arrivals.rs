//! Deadlines that judge what arrived, not what this process happened to have read.
//!
//! **Problem.** Every wait that judges a worker (the handshake, an update round, the stop, a
//! call) is bounded by a [`Deadline`], which never counts time the main process spent
//! stopped or starved. What it cannot see is the pipe: a monitor thread fills the waiter's
//! channel from the worker's stdout, and when the bound is spent the report may be sitting
//! in the pipe, sent in time, while the monitor has not run yet (both resumed together
//! after a stop, or the machine is starved).
//!
//! **What a deadline measures.** Whether the worker *sent* the report before the bound was
//! spent, as the main process's monotonic clock sees it. A worker that is itself stopped or
//! slow still misses the deadline.
//!
//! **How.** The monitor is the only reader of the worker's stdout, so it alone can say
//! "every byte written before instant T has been taken in" (the watermark). A waiter whose
//! deadline was spent without its report calls [`Arrivals::catch_up`]: it writes a byte to the
//! monitor's wake socket (polled together with the worker's pipes, so an idle monitor costs
//! no periodic wake-ups) and waits. The monitor, woken, takes T = now, asks the kernel how
//! many bytes wait in the pipe (`FIONREAD`: at least every byte written before T and not yet
//! read), reads until it has read that many more, handles every complete frame among them,
//! and then publishes T. Since T is taken after the waiter's deadline, the waiter then knows
//! that every report sent before its deadline has been handed over: it checks its channel
//! once more and only then decides. Counting bytes instead of waiting for an empty pipe keeps
//! the watermark moving while a busy worker writes answers without pause. The end of the
//! stream (the worker is gone) settles every wait at once.
//!
//! [`Watermark`] is the pure bookkeeping; [`Arrivals`] adds the lock, the wake-ups and the
//! async variant (a call awaited by a task).

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use graceful::deadline::Deadline;
use graceful::sync::LockUnpoisoned;
use tokio::sync::Notify;

/// The monitor's pending promise: once `target` bytes have been read from the pipe, every
/// byte written before `at` has been taken in.
#[derive(Debug, Default)]
pub struct Watermark {
    pending: Option<(Instant, u64)>,
}

impl Watermark {
    /// A waiter asked at `at`; `read` bytes had been read so far and `unread` were in the
    /// pipe. A newer request replaces an older one: its instant is later, so publishing it
    /// answers the older waiter too.
    pub fn request(&mut self, at: Instant, read: u64, unread: u64) {
        self.pending = Some((at, read.saturating_add(unread)));
    }

    /// After frames were handled: the instant to publish, once `read` bytes were read and
    /// every complete frame among them handled.
    pub fn reached(&mut self, read: u64) -> Option<Instant> {
        match self.pending {
            Some((at, target)) if read >= target => {
                self.pending = None;
                Some(at)
            }
            _ => None,
        }
    }
}

/// What a waiter can know about one worker's report stream.
#[derive(Debug, Default)]
struct Progress {
    /// Every report written before this instant has been handled.
    taken_in_until: Option<Instant>,
    /// The stream ended (or its monitor is gone): nothing more will ever arrive.
    ended: bool,
}

impl Progress {
    fn settles(&self, deadline: Instant) -> bool {
        self.ended || self.taken_in_until.is_some_and(|t| t >= deadline)
    }
}

/// Shared by a worker's monitor (which publishes) and the threads and tasks that wait for
/// that worker's reports (which ask).
pub struct Arrivals {
    progress: Mutex<Progress>,
    changed: Condvar,
    changed_async: Notify,
    wake: UnixStream,
}

/// The monitor's end of the wake socket.
pub struct WakeReceiver(UnixStream);

impl Arrivals {
    /// A new pair: the shared state (with the waiters' end of the wake socket) and the
    /// monitor's end. Fails when the socket pair cannot be created (no descriptors left).
    pub fn new() -> io::Result<(Self, WakeReceiver)> {
        let (wake, receiver) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        receiver.set_nonblocking(true)?;
        Ok((
            Self {
                progress: Mutex::new(Progress::default()),
                changed: Condvar::new(),
                changed_async: Notify::new(),
                wake,
            },
            WakeReceiver(receiver),
        ))
    }

    /// Wakes the monitor (never blocks: a full socket already holds a wake-up).
    pub fn wake(&self) {
        let _ = (&self.wake).write(&[1]);
    }

    /// Called once `deadline` has passed: returns when every report the worker wrote before
    /// it has been handled (or the stream ended), so the caller may look for its report one
    /// last time and then decide.
    pub fn catch_up(&self, deadline: Instant) {
        let mut progress = self.progress.lock_unpoisoned();
        if progress.settles(deadline) {
            return;
        }
        self.wake();
        while !progress.settles(deadline) {
            progress = self.changed.wait(progress).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// [`catch_up`](Self::catch_up) for an async waiter.
    pub async fn catch_up_async(&self, deadline: Instant) {
        let mut woken = false;
        loop {
            let changed = self.changed_async.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.progress.lock_unpoisoned().settles(deadline) {
                return;
            }
            if !woken {
                self.wake();
                woken = true;
            }
            changed.await;
        }
    }

    /// The monitor: every report written before `until` has been handled.
    pub fn taken_in(&self, until: Instant) {
        let mut progress = self.progress.lock_unpoisoned();
        if progress.taken_in_until.is_none_or(|t| t < until) {
            progress.taken_in_until = Some(until);
        }
        drop(progress);
        self.notify();
    }

    /// The monitor: the stream ended; nothing more will arrive. Idempotent.
    pub fn end(&self) {
        self.progress.lock_unpoisoned().ended = true;
        self.notify();
    }

    /// Whether the stream ended (the worker closed its stdout or its monitor is gone).
    pub fn ended(&self) -> bool {
        self.progress.lock_unpoisoned().ended
    }

    fn notify(&self) {
        self.changed.notify_all();
        self.changed_async.notify_waiters();
    }
}

/// Receives from `channel`, fed by the monitors of the workers whose `arrivals` are given,
/// within `deadline`. Once it is spent this decides only after those monitors took in
/// everything sent until then: a report that was in a pipe counts, however late this thread
/// woke.
pub fn recv_by<T>(
    channel: &Receiver<T>,
    deadline: &mut Deadline,
    arrivals: &[&Arrivals],
) -> Result<T, RecvTimeoutError> {
    match deadline.recv(channel) {
        Err(RecvTimeoutError::Timeout) => {
            let spent = Instant::now();
            for arrivals in arrivals {
                arrivals.catch_up(spent);
            }
            channel.try_recv().map_err(|error| match error {
                TryRecvError::Empty => RecvTimeoutError::Timeout,
                TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
            })
        }
        received => received,
    }
}

impl WakeReceiver {
    /// The descriptor to poll for reading.
    pub fn fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.0.as_raw_fd()
    }

    /// Empties the socket (wake-ups carry no data; several count as one).
    pub fn drain(&self) {
        let mut sink = [0u8; 64];
        while matches!((&self.0).read(&mut sink), Ok(n) if n > 0) {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn the_watermark_waits_for_the_bytes_that_were_in_the_pipe() {
        let t0 = Instant::now();
        let mut mark = Watermark::default();
        assert_eq!(mark.reached(0), None, "nothing asked, nothing to publish");
        // 100 bytes read so far, 30 waiting in the pipe when asked.
        mark.request(t0, 100, 30);
        assert_eq!(mark.reached(120), None, "10 of those bytes are still unread");
        assert_eq!(mark.reached(130), Some(t0));
        assert_eq!(mark.reached(500), None, "published once");
        // An empty pipe: published as soon as the frames in hand are handled.
        let t1 = t0 + Duration::from_millis(1);
        mark.request(t1, 130, 0);
        assert_eq!(mark.reached(130), Some(t1));
    }

    #[test]
    fn a_newer_request_answers_the_older_waiter_too() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(5);
        let mut mark = Watermark::default();
        mark.request(t0, 0, 10);
        mark.request(t1, 4, 20);
        assert_eq!(mark.reached(10), None);
        assert_eq!(mark.reached(24), Some(t1));
    }

    #[test]
    fn catch_up_returns_once_the_monitor_publishes_past_the_deadline() {
        let (arrivals, wake) = Arrivals::new().unwrap();
        let arrivals = Arc::new(arrivals);
        let deadline = Instant::now();
        let monitor = {
            let arrivals = arrivals.clone();
            std::thread::spawn(move || {
                // An older instant does not settle the wait; one after the deadline does.
                let mut poll = libc::pollfd {
                    fd: wake.fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd; waits for the waiter's wake-up.
                assert_eq!(unsafe { libc::poll(&mut poll, 1, 5_000) }, 1);
                wake.drain();
                arrivals.taken_in(deadline - Duration::from_millis(1));
                arrivals.taken_in(Instant::now());
            })
        };
        arrivals.catch_up(deadline);
        monitor.join().unwrap();
        // Settled waits return at once; so does any wait once the stream ended.
        arrivals.catch_up(deadline);
        arrivals.end();
        arrivals.catch_up(Instant::now() + Duration::from_secs(3600));
        assert!(arrivals.ended());
    }
}

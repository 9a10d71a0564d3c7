//! The log's one writer: a bounded queue in memory, drained to stderr by one thread.
//!
//! **Problem.** A write to stderr blocks for as long as stderr is a full pipe nobody reads:
//! a paused pager, a log shipper that fell behind, `2>&1 | sleep 20`. A thread that logs
//! before it acts then never acts: the signal thread never stops the run, the stop watchdog
//! never forces it, a worker never notices its parent died. "Survive Ctrl+C at any moment"
//! must not depend on who reads stderr.
//!
//! **Fix.** Logging hands a finished line to a bounded queue and returns at once; one
//! thread (`log-writer`) writes the queue to stderr, whole lines, in order. When the queue
//! is full, the least important line goes ([`Priority`]): a debug line makes room for a
//! lifecycle event or a warning, never the other way round. Dropped lines are counted, and
//! the writer says how many at its very next write (`event=log-dropped`). The exit event is
//! queued last and *seals* the queue: what is below [`Priority::Vital`] is shed then (and
//! counted), and the writer writes the rest, the count, and the exit event, then nothing.
//! Ending the process waits for the writer for as long as it makes progress
//! ([`LogQueue::finish`]): a slow but moving stderr gets the stop and the exit event; a
//! stalled one costs the bound and never a hang. The bound counts time spent waiting, not
//! time the process spent stopped ([`Deadline`]): after Ctrl+Z and `fg` the last lines
//! still go out.
//!
//! tracing-appender's `non_blocking` writer is the well-known form of this idea; it is not
//! used because it panics when its thread cannot be spawned (here that is a condition to
//! survive: `--nproc` limits), it cannot seal the stream after a final line, it counts
//! dropped lines without ever writing the count into the stream, and its guard's flush
//! is tied to a drop that a process ending by its own signal never runs.
//!
//! Each write is a batch of whole lines of at most `PIPE_BUF` bytes (4 KiB on Linux), which
//! a pipe takes atomically: a process killed during a write leaves no half line in a pipe.

use super::shedding::{Lines, Priority};
use crate::deadline::Deadline;
use crate::sync::LockUnpoisoned;
use std::io::Write;
use std::os::fd::AsFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Lines held while stderr is stalled; past this, lines are dropped and counted. At about
/// 300 bytes a line this is a few MiB at worst, and minutes of a busy run's debug output.
const CAPACITY: usize = 16_384;

/// The largest write a pipe takes atomically on Linux (`PIPE_BUF`).
const ATOMIC_WRITE: usize = 4096;

/// How long the end of a process waits for every line before it sheds the less important.
const SHED_AFTER: Duration = Duration::from_millis(100);

/// The longest the end of a process waits for a stderr that keeps moving, however slowly.
const FINISH_CEILING: Duration = Duration::from_secs(10);

/// Formats the writer's own notice that `n` lines were dropped.
pub(super) type DroppedNotice = Box<dyn Fn(u64) -> Vec<u8> + Send + Sync>;

/// The queue between every logging thread and the one writer.
pub(super) struct LogQueue {
    state: Mutex<State>,
    /// The writer waits here for lines.
    wake: Condvar,
    /// Flushers wait here for the writer to catch up.
    progress: Condvar,
    notice: DroppedNotice,
}

#[derive(Default)]
struct State {
    lines: Lines,
    /// Lines dropped because the queue was full, not yet reported.
    dropped: u64,
    /// Lines accepted so far, and lines written, shed or given up on so far.
    queued: u64,
    written: u64,
    /// The exit event, once queued: written after every line before it, then nothing more.
    last_line: Option<Vec<u8>>,
    sealed: bool,
    /// The writer wrote the last line and ended.
    finished: bool,
    /// No writer thread could be started: callers write themselves, so there is nothing
    /// to wait for.
    direct: bool,
}

impl LogQueue {
    /// A queue and its writer thread. If the thread cannot be started (no threads left), the
    /// queue falls back to writing on the caller's thread and says so in the returned error.
    pub(super) fn start(notice: DroppedNotice) -> (Arc<Self>, Option<std::io::Error>) {
        let queue = Arc::new(Self {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            progress: Condvar::new(),
            notice,
        });
        let writer = queue.clone();
        let error = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || writer.run_writer())
            .err();
        queue.lock().direct = error.is_some();
        (queue, error)
    }

    /// Queues one line; never waits for stderr. When the queue is full, the oldest line of
    /// a lower priority makes room for it, or else it is dropped; either way counted.
    /// Ignored once the queue is sealed.
    pub(super) fn push(&self, priority: Priority, line: Vec<u8>) {
        let mut state = self.lock();
        if state.sealed {
            return;
        }
        if state.direct {
            drop(state);
            write_lines(&[line]);
            return;
        }
        if state.lines.len() >= CAPACITY {
            state.dropped += 1;
            if !state.lines.shed_one_below(priority) {
                return;
            }
            state.written += 1;
        }
        state.lines.push(priority, line);
        state.queued += 1;
        drop(state);
        self.wake.notify_one();
    }

    /// Queues the last line of this process's log and seals the queue: a later [`push`]
    /// is ignored. Only the first call counts.
    ///
    /// [`push`]: Self::push
    pub(super) fn push_last(&self, line: &[u8]) {
        let mut state = self.lock();
        if state.sealed {
            return;
        }
        state.sealed = true;
        if state.direct {
            drop(state);
            write_lines(&[line.to_vec()]);
            return;
        }
        state.last_line = Some(line.to_vec());
        drop(state);
        self.wake.notify_one();
    }

    /// At the end, behind a slow stderr, only what explains the run is still worth waiting
    /// for: the rest is shed, and counted in the notice written before the exit event.
    fn shed_at_the_end(state: &mut State) {
        let shed = state.lines.shed_all_below(Priority::Vital);
        state.dropped += shed;
        state.written += shed;
    }

    /// Seals the queue without a last line (it was filtered out, or there is none).
    pub(super) fn seal(&self) {
        self.lock().sealed = true;
        self.wake.notify_one();
    }

    /// Waits until every line queued before this call was written, or `bound` was spent
    /// (a [`Deadline`]: time this process spent stopped does not count). Returns whether
    /// the writer caught up.
    pub(super) fn flush(&self, bound: Duration) -> bool {
        let mut deadline = Deadline::after(bound);
        let mut state = self.lock();
        let target = state.queued;
        while state.written < target && !state.direct {
            match deadline.wait(&self.progress, state) {
                Some(next) => state = next,
                None => return false,
            }
        }
        true
    }

    /// Waits until the writer wrote the last line (after [`push_last`](Self::push_last) or
    /// [`seal`](Self::seal)), for as long as it makes progress: `bound` (a [`Deadline`])
    /// is spent only while nothing is written, and starts afresh at each line written, so a
    /// slow but moving stderr gets every line left. If the writer has not caught up within
    /// [`SHED_AFTER`], what is below [`Priority::Vital`] is shed, so a slow stderr is spent on
    /// the stop and the exit event. [`FINISH_CEILING`] caps even that. Returns whether the
    /// writer finished.
    pub(super) fn finish(&self, bound: Duration) -> bool {
        let mut stalled = Deadline::after(bound);
        let mut waited = Duration::ZERO;
        let mut state = self.lock();
        let mut written = state.written;
        let mut shed = false;
        while !state.finished && !state.direct {
            if !shed && waited >= SHED_AFTER {
                shed = true;
                Self::shed_at_the_end(&mut state);
            }
            if state.written != written {
                written = state.written;
                stalled = Deadline::after(bound);
            }
            let left = stalled.left();
            match stalled.wait(&self.progress, state) {
                Some(next) => state = next,
                None => return false,
            }
            // What the stall deadline counted, so the ceiling too ignores stopped time.
            waited += left - stalled.left();
            if waited >= FINISH_CEILING {
                return false;
            }
        }
        true
    }

    /// The writer thread: reports drops first, then takes one write's worth of lines in
    /// order and writes it; after the last line, ends. Small takes keep the drop count
    /// moving to stderr as soon as stderr moves, and leave room for shedding what waits.
    fn run_writer(&self) {
        loop {
            let (lines, dropped, last_line, sealed) = {
                let mut state = self.lock();
                while state.lines.is_empty() && state.dropped == 0 && !state.sealed {
                    state = self.wake.wait(state).unwrap_or_else(|p| p.into_inner());
                }
                let dropped = std::mem::take(&mut state.dropped);
                let mut lines = Vec::new();
                let mut bytes = 0;
                while bytes < ATOMIC_WRITE {
                    let Some(line) = state.lines.pop_oldest() else {
                        break;
                    };
                    bytes += line.len();
                    lines.push(line);
                }
                let last_line = if state.sealed && state.lines.is_empty() {
                    state.last_line.take()
                } else {
                    None
                };
                (lines, dropped, last_line, state.sealed)
            };
            let count = lines.len() as u64;
            if dropped > 0 {
                // stderr moves: say what it missed, before anything else.
                write_lines(&[(self.notice)(dropped)]);
            }
            write_lines(&lines);
            if let Some(line) = &last_line {
                write_lines(std::slice::from_ref(line));
            }
            let mut state = self.lock();
            state.written += count;
            // The exit event (if any) and the last count are out, and nothing is left.
            let done = sealed && state.lines.is_empty() && state.last_line.is_none() && state.dropped == 0;
            state.finished = done;
            drop(state);
            self.progress.notify_all();
            if done {
                return;
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock_unpoisoned()
    }
}

/// Writes whole lines to stderr in batches of at most [`ATOMIC_WRITE`] bytes (a longer
/// line goes alone). An error (stderr closed: the terminal went away) drops the batch: the
/// log must never stop the program.
fn write_lines(lines: &[Vec<u8>]) {
    let stderr = std::io::stderr();
    let mut stderr = stderr.lock();
    let mut batch = Vec::with_capacity(ATOMIC_WRITE);
    for line in lines {
        if !batch.is_empty() && batch.len() + line.len() > ATOMIC_WRITE {
            write_patiently(&mut stderr, &batch);
            batch.clear();
        }
        batch.extend_from_slice(line);
    }
    if !batch.is_empty() {
        write_patiently(&mut stderr, &batch);
    }
}

/// `write_all`, waiting for room when stderr is a non-blocking descriptor (someone else set
/// `O_NONBLOCK` on a shared pipe) instead of losing the rest of the batch.
fn write_patiently(out: &mut impl Write, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        match out.write(bytes) {
            Ok(0) => return,
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => wait_writable(),
            Err(_) => return,
        }
    }
}

fn wait_writable() {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let stderr = std::io::stderr();
    let mut fds = [PollFd::new(stderr.as_fd(), PollFlags::POLLOUT)];
    // Whatever it answers, the caller tries the write again.
    let _ = poll(&mut fds, PollTimeout::from(100_u8));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn queue() -> LogQueue {
        LogQueue {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            progress: Condvar::new(),
            notice: Box::new(|n| format!("dropped {n}\n").into_bytes()),
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        let queue = queue();
        for _ in 0..CAPACITY + 5 {
            queue.push(Priority::Normal, b"line\n".to_vec());
        }
        let state = queue.lock();
        assert_eq!(state.lines.len(), CAPACITY);
        assert_eq!(state.dropped, 5);
    }

    #[test]
    fn a_full_queue_sheds_the_least_important_line_first() {
        let queue = queue();
        queue.push(Priority::Vital, b"stopping\n".to_vec());
        for _ in 1..CAPACITY {
            queue.push(Priority::Detail, b"debug\n".to_vec());
        }
        queue.push(Priority::Vital, b"stopped\n".to_vec());
        queue.push(Priority::Detail, b"one debug too many\n".to_vec());
        let mut state = queue.lock();
        assert_eq!(state.dropped, 2, "one debug line shed for the vital, one refused");
        assert_eq!(state.lines.pop_oldest().as_deref(), Some(&b"stopping\n"[..]));
        assert_eq!(state.lines.by_priority[Priority::Vital as usize].len(), 1);
        LogQueue::shed_at_the_end(&mut state);
        assert_eq!(state.lines.len(), 1, "only the vital line is left at the end");
        assert_eq!(state.dropped, 2 + (CAPACITY as u64 - 2));
    }

    #[test]
    fn nothing_is_queued_after_the_last_line() {
        let queue = queue();
        queue.push(Priority::Vital, b"before\n".to_vec());
        queue.push_last(b"exit\n");
        queue.push(Priority::Vital, b"after\n".to_vec());
        queue.push_last(b"second exit\n");
        let mut state = queue.lock();
        assert_eq!(state.lines.pop_oldest(), Some(b"before\n".to_vec()));
        assert!(state.lines.is_empty());
        assert_eq!(state.last_line.as_deref(), Some(&b"exit\n"[..]));
    }

    #[test]
    fn finish_is_bounded_when_no_writer_runs() {
        let queue = queue();
        queue.push_last(b"exit\n");
        let started = Instant::now();
        assert!(!queue.finish(Duration::from_millis(20)));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

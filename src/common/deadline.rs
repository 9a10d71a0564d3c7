//! Deadlines that count time spent waiting, never time the process spent stopped.
//!
//! A clock deadline fails whoever it judges once the clock passes it, whether or not anyone
//! could act meanwhile: after Ctrl+Z and `fg` every waiter wakes past its deadline and fails
//! a party that was just as stopped; a starved machine does the same more quietly. Excusing
//! the time after a SIGCONT does not work either: anyone of the same user can send one.
//!
//! So the bound is spent in slices ([`Deadline::slice`]), each counted for the time it took
//! but never more than the slice: a waiter that wakes long after its slice (stopped, not
//! scheduled) has spent one slice; an awake waiter spends the bound at the clock's pace. No
//! signal, thread or global is involved: nothing anyone sends can extend a deadline. A slice
//! is `bound / 32` within 10 ms and 1 s: a wake-up's lateness is a small part of it (a stuck
//! party fails within its bound plus a few percent), and a stop costs a thirty-second at most.
//!
//! Blocking forms: a condition variable ([`Deadline::wait`]), a channel ([`Deadline::recv`]),
//! anything with a timeout ([`Deadline::slice`]); the async form ([`Deadline::within`])
//! measures with tokio's clock, so a runtime on paused time spends virtual time.

use std::future::Future;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Condvar, MutexGuard};
use std::time::{Duration, Instant};

/// The shortest slice (a shorter bound is one slice).
const MIN_SLICE: Duration = Duration::from_millis(10);
/// The longest slice: what one stop of the whole run may cost a deadline at most.
const MAX_SLICE: Duration = Duration::from_secs(1);

/// A bound on waiting for another party, spent only while the waiter is awake to wait.
#[derive(Clone, Debug)]
pub struct Deadline {
    left: Duration,
    slice: Duration,
}

impl Deadline {
    /// A deadline `bound` from now, as long as this process is awake to wait.
    pub fn after(bound: Duration) -> Self {
        Self {
            left: bound,
            // Whole milliseconds: timers round a deadline up to the next millisecond, and a
            // fraction lost per slice would add up past the bound.
            slice: Duration::from_millis((bound / 32).as_millis() as u64).clamp(MIN_SLICE, MAX_SLICE),
        }
    }

    /// What is left of the bound.
    pub fn left(&self) -> Duration {
        self.left
    }

    /// Whether the bound is spent: the party judged missed it.
    pub fn is_spent(&self) -> bool {
        self.left.is_zero()
    }

    /// Leaves at most `at_most` of the bound (a later, shorter deadline takes over).
    pub fn shorten(&mut self, at_most: Duration) {
        self.left = self.left.min(at_most);
    }

    /// One wait of at most a slice: `wait` gets the slice's length and waits at most that
    /// long. Counted for the time it took, never more than the slice. `None` once the bound
    /// is spent (then `wait` is not called).
    pub fn slice<R>(&mut self, wait: impl FnOnce(Duration) -> R) -> Option<R> {
        let slice = self.next_slice()?;
        let started = Instant::now();
        let waited = wait(slice);
        self.spend(started.elapsed(), slice);
        Some(waited)
    }

    /// One slice of waiting on `condvar` (which may wake early); `None` once the bound is
    /// spent. The caller checks its condition and calls again.
    pub fn wait<'a, T>(&mut self, condvar: &Condvar, guard: MutexGuard<'a, T>) -> Option<MutexGuard<'a, T>> {
        self.slice(|slice| {
            condvar
                .wait_timeout(guard, slice)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0
        })
    }

    /// Receives from `channel` within the bound: `Timeout` once it is spent.
    pub fn recv<T>(&mut self, channel: &Receiver<T>) -> Result<T, RecvTimeoutError> {
        loop {
            match self.slice(|slice| channel.recv_timeout(slice)) {
                None => return Err(RecvTimeoutError::Timeout),
                Some(Err(RecvTimeoutError::Timeout)) => {}
                Some(received) => return received,
            }
        }
    }

    /// Awaits `future` within the bound: `None` once it is spent. Pass `&mut future` to
    /// await it again later (after [`shorten`](Self::shorten), say). Dropped mid-slice, the
    /// slice is not counted.
    pub async fn within<F: Future + Unpin>(&mut self, mut future: F) -> Option<F::Output> {
        loop {
            let slice = self.next_slice()?;
            let started = tokio::time::Instant::now();
            match tokio::time::timeout(slice, &mut future).await {
                Ok(output) => return Some(output),
                Err(_) => self.spend(started.elapsed(), slice),
            }
        }
    }

    fn next_slice(&self) -> Option<Duration> {
        (!self.is_spent()).then(|| self.left.min(self.slice))
    }

    fn spend(&mut self, waited: Duration, slice: Duration) {
        self.left = self.left.saturating_sub(waited.min(slice));
    }
}

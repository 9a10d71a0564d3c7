//! Lesson 3 of the reference: **beware ThreadPoolExecutor.** Here, the blocking pool and
//! its async bridge.
//!
//! Two lessons of the reference, shown and then answered:
//! - **A cancelled await does not cancel the job.** Dropping the future of [`BlockingPool::run`]
//!   drops only the receiving end; the job runs to completion on its pool thread, and when it
//!   finishes the pool logs that its result was dropped. rayon cannot cancel a job
//!   (rayon #544): cancellation is cooperative, here a flag each job checks before it starts.
//! - **A full pool starves `stop()`.** The reference leaves two threads free and hopes. Here
//!   the stop path never enters the pool: the manager's stop runs on a thread of its own
//!   ([`on_own_thread`], which hands the job back if the OS refuses the thread), the
//!   manager's stop releases the pool threads blocked in calls, and
//!   jobs still queued are skipped once [`BlockingPool::stop`] closed the pool. So
//!   `--busy-tasks` far above `--pool-threads` still stops promptly.

use graceful::sync::LockUnpoisoned;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use graceful::deadline::Deadline;
use tokio::sync::{Notify, oneshot};

/// Why a pool job gave no result.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The pool was closed before the job was submitted.
    #[error("the pool is stopped")]
    Closed,
    /// The job was queued when the pool closed, and skipped.
    #[error("skipped: the pool stopped before the job ran")]
    Skipped,
    /// The job panicked (the panic is logged by the pool's panic handler).
    #[error("the job panicked")]
    Panicked,
}

/// The pool could not be built: a thread could not be created (EAGAIN under RLIMIT_NPROC).
/// rayon reports a failed thread spawn as an error, not a panic, and ends the threads it had
/// already started.
#[derive(Debug, thiserror::Error)]
#[error("cannot create the pool's threads: {0}")]
pub struct PoolBuildError(#[from] rayon::ThreadPoolBuildError);

/// A rayon pool with named threads (`pool-1`, ...) and an async front.
pub struct BlockingPool {
    pool: rayon::ThreadPool,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    closed: AtomicBool,
    in_flight: AtomicUsize,
    idle: Notify,
    abandoned: AtomicU64,
    skipped: AtomicU64,
}

impl BlockingPool {
    /// A pool of `threads` named threads. A panicking job is logged, not fatal.
    pub fn new(threads: usize) -> Result<Self, PoolBuildError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("pool-{}", i + 1))
            .panic_handler(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!("pool: a job panicked: {what}");
            })
            .build()?;
        Ok(Self {
            pool,
            shared: Arc::default(),
        })
    }

    /// Runs `job` on a pool thread and awaits its result. Cancel-safe in the sense that
    /// matters: dropping this future abandons the result, never the job (see module docs).
    pub async fn run<T, F>(&self, name: &'static str, job: F) -> Result<T, PoolError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if self.shared.closed.load(SeqCst) {
            return Err(PoolError::Closed);
        }
        let (result, awaited) = oneshot::channel();
        self.shared.in_flight.fetch_add(1, SeqCst);
        let shared = self.shared.clone();
        self.pool.spawn(move || {
            let _done = InFlight(&shared);
            if shared.closed.load(SeqCst) {
                shared.skipped.fetch_add(1, SeqCst);
                tracing::debug!(
                    event = "skipped",
                    job = name,
                    "pool: skipped the queued job {name}: the pool is stopping"
                );
                let _ = result.send(Err(PoolError::Skipped));
                return;
            }
            let value = job();
            if result.send(Ok(value)).is_err() {
                shared.abandoned.fetch_add(1, SeqCst);
                tracing::warn!(
                    event = "result-dropped",
                    job = name,
                    "pool: {name} finished after its caller stopped waiting; result dropped \
                     (a cancelled await does not cancel pool work)"
                );
            }
        });
        awaited.await.unwrap_or(Err(PoolError::Panicked))
    }

    /// Closes the pool: jobs still queued are skipped, new ones refused. Idempotent.
    pub fn close(&self) {
        if !self.shared.closed.swap(true, SeqCst) {
            tracing::debug!("pool: closed; queued jobs will be skipped");
        }
    }

    /// Closes the pool and waits, up to `bound`, for the jobs already running.
    /// Returns whether the pool drained in time.
    pub async fn stop(&self, bound: Duration) -> bool {
        self.close();
        // Like every bound on another party, one the time the run spent stopped never spends.
        let idle = std::pin::pin!(async {
            loop {
                let idle = self.shared.idle.notified();
                if self.shared.in_flight.load(SeqCst) == 0 {
                    return;
                }
                idle.await;
            }
        });
        let drained = Deadline::after(bound).within(idle).await.is_some();
        let (skipped, abandoned) = (
            self.shared.skipped.load(SeqCst),
            self.shared.abandoned.load(SeqCst),
        );
        if drained {
            tracing::debug!(
                event = "drained",
                skipped,
                abandoned,
                "pool: drained ({skipped} queued jobs skipped, {abandoned} results dropped)"
            );
        } else {
            let running = self.shared.in_flight.load(SeqCst);
            tracing::warn!(
                event = "not-drained",
                running,
                "pool: {running} jobs still running after {bound:?}; leaving them behind"
            );
        }
        drained
    }
}

/// Counts a job out when it ends, even by panic, and wakes `stop` on the last one.
struct InFlight<'a>(&'a Shared);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Why [`on_own_thread`] has no result.
#[derive(Debug, thiserror::Error)]
pub enum OwnThreadError<F> {
    /// The thread could not be created (the OS refused it); the job comes back, not run.
    #[error("cannot create thread {name}: {error}")]
    Refused {
        /// The thread's name.
        name: String,
        /// Why.
        error: std::io::Error,
        /// The job, for the caller to run some other way.
        job: F,
    },
    /// The job panicked on its thread.
    #[error("thread {0} panicked")]
    Panicked(String),
}

/// Runs `job` on a new thread named `name` and awaits it: for work that must never queue
/// behind the pool (the manager's stop).
pub async fn on_own_thread<T, F>(name: &str, job: F) -> Result<T, OwnThreadError<F>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (result, awaited) = oneshot::channel();
    // The job waits in a slot the thread takes it from, so a refused thread gives it back.
    let slot = Arc::new(Mutex::new(Some(job)));
    let taken = slot.clone();
    let spawned = std::thread::Builder::new().name(name.into()).spawn(move || {
        if let Some(job) = taken.lock_unpoisoned().take() {
            let _ = result.send(job());
        }
    });
    if let Err(error) = spawned {
        let job = slot.lock_unpoisoned().take();
        return Err(match job {
            Some(job) => OwnThreadError::Refused {
                name: name.into(),
                error,
                job,
            },
            None => OwnThreadError::Panicked(name.into()),
        });
    }
    awaited.await.map_err(|_| OwnThreadError::Panicked(name.into()))
}

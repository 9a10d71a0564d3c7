//! The async facade: AsyncService1 over the pool and the manager, as in complex.py.
//!
//! AsyncService1 starts the pool, then the manager (through the pool, as the reference
//! does), then an update task (every 10 s) and `--busy-tasks` tasks that loop: a random
//! pause of up to 1 s, `process_number`, `process_string`, parameter + 1.
//!
//! Both of the reference's task variants are here. **Shielded** (default): a cancelled task
//! finishes the call in hand, then leaves; nothing is abandoned. **Unshielded**
//! (`--unshielded`): a cancelled task leaves at once; the call it abandoned keeps running in
//! the worker (the manager logs the answer nobody took), and a call still queued in a worker
//! when it stops is reported and released by the manager's stop.
//!
//! Stop order: first the calls no worker has begun are withdrawn (their callers get an
//! error that says so) and the pool's queue is closed (jobs not begun are skipped), so what
//! follows waits only for work already in hand, never for a queue, whatever `--busy-tasks`
//! is; then the update task, the busy tasks, the manager (on its own thread, never behind
//! pool work), the pool. A busy task whose call was withdrawn or refused has nothing left to
//! do: it waits for its cancellation instead of calling again.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use graceful::service::{BoxFuture, Service, ServiceContext};
use graceful::shutdown::StopReason;
use graceful::time_scale::{PERIOD_FLOOR, TimeScale};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::mpm::{Method, Mpm, MpmConfig, MpmError, Reply};
use crate::pool::{BlockingPool, PoolError, on_own_thread};

const UPDATE_PERIOD: Duration = Duration::from_secs(10);
const MAX_BUSY_PAUSE: Duration = Duration::from_secs(1);
/// How long the pool may take to finish its running jobs once the manager has stopped
/// (they are released by then, so this only bounds a bug).
const POOL_DRAIN_BOUND: Duration = Duration::from_secs(5);

/// AsyncService1's settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The manager's settings.
    pub mpm: MpmConfig,
    /// `--pool-threads`.
    pub pool_threads: usize,
    /// `--busy-tasks`.
    pub busy_tasks: usize,
    /// Not `--unshielded`.
    pub shielded: bool,
    /// `--blocking-calls`: a pool thread waits for each call's answer, as in the reference.
    pub blocking_calls: bool,
}

/// The service wrapping the manager, as in the reference.
pub struct AsyncService1 {
    settings: Settings,
    running: Option<Running>,
}

struct Running {
    facade: Facade,
    stop_update: CancellationToken,
    update_task: JoinHandle<()>,
    stop_busy: CancellationToken,
    busy_tasks: Vec<JoinHandle<()>>,
}

/// The async methods of AsyncService1: each call goes through the pool to the manager.
#[derive(Clone)]
struct Facade {
    pool: Arc<BlockingPool>,
    mpm: Mpm,
    blocking_calls: bool,
}

impl Facade {
    async fn process_number(&self, parameter: i64) -> anyhow::Result<Reply> {
        self.call(Method::ProcessNumber(parameter)).await
    }

    async fn process_string(&self, parameter: String) -> anyhow::Result<Reply> {
        self.call(Method::ProcessString(parameter)).await
    }

    async fn call(&self, method: Method) -> anyhow::Result<Reply> {
        let mpm = self.mpm.clone();
        if self.blocking_calls {
            // The reference's way: a pool thread waits out the whole round trip, so busy
            // tasks beyond --pool-threads queue for the pool (and would starve a stop that
            // needed it).
            return Ok(self
                .pool
                .run(method.name(), move || match method {
                    Method::ProcessNumber(n) => mpm.process_number(n),
                    Method::ProcessString(s) => mpm.process_string(s),
                })
                .await??);
        }
        // Only the submission runs in the pool (writing to a pipe may block); the answer is
        // awaited here, so no pool thread sits idle waiting for a worker. Dropping this
        // future abandons the answer, not the call: the worker runs it anyway.
        let awaited = self.pool.run(method.name(), move || mpm.submit(method)).await??;
        Ok(awaited.wait().await?)
    }

    async fn update(&self) -> anyhow::Result<u64> {
        let mpm = self.mpm.clone();
        Ok(self.pool.run("MPM.update", move || mpm.update()).await??)
    }
}

impl AsyncService1 {
    /// Not started yet.
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            running: None,
        }
    }

    async fn start_inner(&mut self, ctx: &ServiceContext) -> anyhow::Result<()> {
        let components = &ctx.components;
        components.starting("pool");
        let pool = match BlockingPool::new(self.settings.pool_threads) {
            Ok(pool) => Arc::new(pool),
            Err(error) => {
                components.failed("pool", &error);
                return Err(error).context("cannot build the blocking pool");
            }
        };
        components.started("pool");

        let (probe, shutdown) = (ctx.shutdown.clone(), ctx.shutdown.clone());
        let mpm = Mpm::new(
            self.settings.mpm.clone(),
            components.clone(),
            move || probe.is_requested(),
            move |cause| shutdown.request(StopReason::Fatal(cause)),
        );
        let doomed = mpm.clone();
        ctx.on_force(move || doomed.kill_all());
        let facade = Facade {
            pool,
            mpm,
            blocking_calls: self.settings.blocking_calls,
        };

        tracing::debug!("AsyncService1: starting MPM (through the pool)");
        let starter = facade.mpm.clone();
        let started = facade.pool.run("MPM.start", move || starter.start()).await;
        if let Err(error) = started
            .map_err(anyhow::Error::from)
            .and_then(|r| r.map_err(anyhow::Error::from))
        {
            stop_pool(ctx, &facade.pool).await;
            return Err(error.context("MPM failed to start"));
        }
        if ctx.should_fail_start("AsyncService1") {
            // Nothing of a failed start may be left running: undo what did start.
            let _ = stop_mpm(ctx, &facade.mpm).await;
            stop_pool(ctx, &facade.pool).await;
            anyhow::bail!("start failed on purpose (--fail-start AsyncService1)");
        }

        tracing::debug!("AsyncService1: creating the update task");
        let stop_update = CancellationToken::new();
        let update_task = ctx.spawn(
            "AsyncService1 update task",
            update_task(
                facade.clone(),
                stop_update.clone(),
                self.settings.shielded,
                ctx.time_scale,
            ),
        );

        tracing::debug!("AsyncService1: creating {} busy tasks", self.settings.busy_tasks);
        let stop_busy = CancellationToken::new();
        let busy_tasks = (0..self.settings.busy_tasks)
            .map(|index| {
                let task = busy_task(
                    index,
                    facade.clone(),
                    stop_busy.clone(),
                    self.settings.shielded,
                    ctx.time_scale,
                );
                ctx.spawn(format!("AsyncService1 busy task {index}"), task)
            })
            .collect();
        self.running = Some(Running {
            facade,
            stop_update,
            update_task,
            stop_busy,
            busy_tasks,
        });
        Ok(())
    }

    async fn stop_inner(&mut self, ctx: &ServiceContext) -> anyhow::Result<()> {
        let Some(running) = self.running.take() else {
            return Ok(());
        };
        // First, so that nothing below waits behind a queue: calls not begun are withdrawn
        // (never blocks), and pool jobs not begun are skipped.
        running.facade.mpm.withdraw_queued();
        running.facade.pool.close();

        tracing::debug!("AsyncService1: cancelling the update task");
        running.stop_update.cancel();
        let _ = running.update_task.await;

        tracing::debug!(
            "AsyncService1: cancelling {} busy tasks",
            running.busy_tasks.len()
        );
        running.stop_busy.cancel();
        for task in running.busy_tasks {
            let _ = task.await;
        }

        let mpm_stopped = stop_mpm(ctx, &running.facade.mpm).await;
        stop_pool(ctx, &running.facade.pool).await;
        mpm_stopped
    }
}

impl Service for AsyncService1 {
    fn name(&self) -> &'static str {
        "AsyncService1"
    }

    fn start<'a>(&'a mut self, ctx: &'a ServiceContext) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(self.start_inner(ctx))
    }

    fn stop<'a>(&'a mut self, ctx: &'a ServiceContext) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(self.stop_inner(ctx))
    }
}

/// The manager's stop, on a thread of its own: it must never queue behind pool work. If that
/// thread cannot run, the workers are killed here instead: nothing may outlive the stop.
async fn stop_mpm(ctx: &ServiceContext, mpm: &Mpm) -> anyhow::Result<()> {
    tracing::debug!("AsyncService1: stopping MPM (on its own thread, not in the pool)");
    let stopping = mpm.clone();
    if let Err(error) = on_own_thread("MPM-stop", move || stopping.stop()).await {
        mpm.kill_all();
        ctx.components.failed(
            "MPM",
            &format!("its stop thread failed ({error}); workers killed"),
        );
        anyhow::bail!("MPM did not stop cleanly: {error}");
    }
    Ok(())
}

async fn stop_pool(ctx: &ServiceContext, pool: &BlockingPool) {
    ctx.components.stopping("pool");
    if pool.stop(POOL_DRAIN_BOUND).await {
        ctx.components.stopped("pool");
    } else {
        ctx.components
            .failed("pool", &format!("jobs still running after {POOL_DRAIN_BOUND:?}"));
    }
}

/// Every 10 s (scaled), an update in every worker.
async fn update_task(facade: Facade, cancel: CancellationToken, shielded: bool, time_scale: TimeScale) {
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(time_scale.period(UPDATE_PERIOD)) => {}
        }
        if shielded {
            log_update(facade.update().await);
            if cancel.is_cancelled() {
                tracing::warn!(
                    "AsyncService1._update_task_worker: cancelled; the update in hand was waited for first"
                );
                return;
            }
        } else {
            tokio::select! {
                () = cancel.cancelled() => {
                    tracing::warn!(
                        "AsyncService1._update_task_worker: cancelled; abandoning the update in hand \
                         (it keeps running in the pool)"
                    );
                    return;
                }
                outcome = facade.update() => log_update(outcome),
            }
        }
    }
    tracing::warn!("AsyncService1._update_task_worker: cancelled");
}

fn log_update(outcome: anyhow::Result<u64>) {
    match outcome {
        Ok(version) => tracing::debug!("AsyncService1: updated to version {version}"),
        Err(error) if is_the_stop(&error) => tracing::debug!("AsyncService1: no update: {error:#}"),
        Err(error) => tracing::warn!("AsyncService1: update failed: {error:#}"),
    }
}

/// Loops: random pause, `process_number`, `process_string`, parameter + 1.
async fn busy_task(
    index: usize,
    facade: Facade,
    cancel: CancellationToken,
    shielded: bool,
    time_scale: TimeScale,
) {
    let mut parameter = index as i64 * 1000;
    let mut pauses = Pauses::new(index as u64);
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            () = time_scale.sleep(pauses.next(MAX_BUSY_PAUSE)) => {}
        }
        let calls = async {
            let number = facade.process_number(parameter).await;
            log_call(index, "process_number", &number);
            if shielded && cancel.is_cancelled() || Outcome::of(&number) == Outcome::Stopping {
                return Outcome::of(&number);
            }
            let string = facade.process_string(format!("string-{parameter}")).await;
            log_call(index, "process_string", &string);
            Outcome::of(&number).and(Outcome::of(&string))
        };
        let outcome = if shielded {
            // The calls are not raced against the cancellation: the one in hand finishes.
            let outcome = calls.await;
            if cancel.is_cancelled() {
                tracing::debug!(
                    "AsyncService1._process_worker {index}: cancelled; the call in hand finished first"
                );
                return;
            }
            outcome
        } else {
            tokio::select! {
                () = cancel.cancelled() => {
                    tracing::debug!(
                        "AsyncService1._process_worker {index}: cancelled; abandoning the call in hand \
                         (it keeps running in the pool)"
                    );
                    return;
                }
                outcome = calls => outcome,
            }
        };
        if outcome == Outcome::Stopping {
            // The stop has begun: no call will be taken any more. Wait to be cancelled.
            cancel.cancelled().await;
            tracing::debug!(
                "AsyncService1._process_worker {index}: cancelled; its call was not run: the stop had begun"
            );
            return;
        }
        if outcome == Outcome::Failed {
            // A worker is being replaced: back off a moment instead of spinning on errors.
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(PERIOD_FLOOR) => {}
            }
        }
        parameter += 1;
    }
    tracing::debug!("AsyncService1._process_worker {index}: cancelled");
}

/// How a busy task's round of calls went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Succeeded,
    Failed,
    /// Withdrawn or refused because the stop has begun.
    Stopping,
}

impl Outcome {
    fn of(result: &anyhow::Result<Reply>) -> Self {
        match result {
            Ok(_) => Self::Succeeded,
            Err(error) if is_the_stop(error) => Self::Stopping,
            Err(_) => Self::Failed,
        }
    }

    fn and(self, other: Self) -> Self {
        match (self, other) {
            (Self::Stopping, _) | (_, Self::Stopping) => Self::Stopping,
            (Self::Succeeded, Self::Succeeded) => Self::Succeeded,
            _ => Self::Failed,
        }
    }
}

/// Whether the error only says the stop has begun: the call was withdrawn before a worker
/// began it, refused by the manager, or skipped by the closed pool.
fn is_the_stop(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<MpmError>()
        .is_some_and(MpmError::is_the_stop)
        || error
            .downcast_ref::<PoolError>()
            .is_some_and(|e| matches!(e, PoolError::Closed | PoolError::Skipped))
}

fn log_call(index: usize, method: &str, outcome: &anyhow::Result<Reply>) {
    match outcome {
        Ok(Reply::Processed { version, parameter }) => {
            tracing::trace!(
                "AsyncService1._process_worker {index}: {method} -> version {version}, {parameter:?}"
            );
        }
        Ok(Reply::Updated { .. }) => {}
        Err(error) if is_the_stop(error) => {
            tracing::debug!("AsyncService1._process_worker {index}: {method} not run: {error:#}");
        }
        Err(error) => tracing::warn!("AsyncService1._process_worker {index}: {method} failed: {error:#}"),
    }
}

/// Pseudo-random pauses (xorshift64*): the reference's `random.random()`, with no crate.
struct Pauses(u64);

impl Pauses {
    fn new(seed: u64) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self((nanos ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1)
    }

    fn next(&mut self, max: Duration) -> Duration {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let unit = (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
        max.mul_f64(unit)
    }
}

//! The async facade: AsyncService1 over the pool and the manager, as in complex.py.
//!
//! AsyncService1 starts the pool, then the manager (through the pool, as the reference
//! does), then an update task (every 10 s) and `--busy-tasks` tasks that loop: a random
//! pause of up to 1 s, `process_number`, `process_string`, parameter + 1.
//!
//! Both of the reference's task variants are here. **Shielded** (default): a cancelled task
//! finishes the call in hand, then leaves; nothing is abandoned. **Unshielded**
//! (`--unshielded`): a cancelled task leaves at once; the call it abandoned keeps running
//! where it is: in a worker by default (the manager logs the answer nobody took,
//! `event=answer-dropped`), or in the pool with `--blocking-calls`, where a pool thread waits
//! for it (the pool logs the result nobody took, `event=result-dropped`). A call still queued
//! in a worker when it stops is reported and released by the manager's stop
//! (`event=stranded`).
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
use graceful::demo::TimeScale;
use graceful::{BoxFuture, Service, ServiceContext, StopReason};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::mpm::{Method, Mpm, MpmConfig, Reply};
use crate::pool::{BlockingPool, OwnThreadError, on_own_thread};

mod tasks;

use tasks::{busy_task, update_task};

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
    /// `--time-scale`: the busy tasks' pauses and the update period.
    pub time_scale: TimeScale,
    /// `--fail-start AsyncService1`: the start fails once everything under it started.
    pub fail_start: bool,
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

/// The async methods of AsyncService1: each call goes to the manager from the runtime (or,
/// with `--blocking-calls`, the reference's way, through the pool).
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
            return Ok(self.pool.run(method.name(), move || mpm.call(method)).await??);
        }
        // No pool thread sits idle waiting for a worker: the call is sent from here (that
        // never blocks) and its answer awaited here. Dropping this future abandons the
        // answer, not the call: the worker runs it anyway.
        Ok(mpm.submit(method)?.wait().await?)
    }

    /// Where a call keeps running once its awaiting task abandons it, in this mode's words.
    fn where_an_abandoned_call_runs(&self) -> &'static str {
        if self.blocking_calls {
            "it keeps running in the pool: a pool thread waits for the worker's answer"
        } else {
            "it keeps running in a worker; its answer will be dropped"
        }
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
        if self.settings.fail_start {
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
                self.settings.time_scale,
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
                    self.settings.time_scale,
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

/// The manager's stop, on a thread of its own: it must never queue behind pool work.
///
/// If the OS refuses that thread, the stop runs here instead, blocking this runtime thread
/// for as long as it lasts (bounded by the manager's own deadlines): by now the tasks have
/// ended and nothing else needs the runtime, and a forced exit acts from its own thread.
/// The workers are still stopped by command, not killed. If the stop panicked, they are
/// killed: nothing may outlive the stop.
async fn stop_mpm(ctx: &ServiceContext, mpm: &Mpm) -> anyhow::Result<()> {
    tracing::debug!("AsyncService1: stopping MPM (on its own thread, not in the pool)");
    let stopping = mpm.clone();
    match on_own_thread("MPM-stop", move || stopping.stop()).await {
        Ok(()) => Ok(()),
        Err(OwnThreadError::Refused { name, error, job }) => {
            tracing::warn!(
                event = "stop-inline",
                thread = %name,
                "AsyncService1: cannot create thread {name} ({error}); stopping MPM on this thread"
            );
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)) {
                Ok(()) => Ok(()),
                Err(_) => stop_panicked(ctx, mpm, "MPM's stop panicked"),
            }
        }
        Err(error @ OwnThreadError::Panicked(_)) => stop_panicked(ctx, mpm, &error.to_string()),
    }
}

/// The manager's stop panicked (the hook logged it): its workers are killed, so that
/// nothing outlives the stop, and the manager is reported failed.
fn stop_panicked(ctx: &ServiceContext, mpm: &Mpm, what: &str) -> anyhow::Result<()> {
    mpm.kill_all();
    ctx.components.failed("MPM", &format!("{what}; workers killed"));
    anyhow::bail!("MPM did not stop cleanly: {what}")
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

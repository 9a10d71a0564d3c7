//! Lesson 2 of the reference: **forget `asyncio.run()`: control the cancellation order.**
//! Here, the application runner: the reference's `Application.run()`.
//!
//! **Problem.** `#[tokio::main]` (like `asyncio.run()`) ends by dropping every task at its
//! next await, in no order anyone chose, and waits forever for a stuck blocking task.
//!
//! **Fix.** The runner drives the lifecycle explicitly:
//! 1. start the services in order, under the shield (a signal is recorded, not acted on);
//! 2. if a stop was requested meanwhile, go straight to stop; otherwise wait for a request
//!    or for `--run-for`;
//! 3. stop the started services in reverse order, under the shield, the whole stop bounded
//!    by `--stop-timeout` (past it the exit is forced), and each service's own stop by its
//!    [`Service::stop_deadline`] if it declares one (past it that service is marked failed
//!    and the stop goes on with the next, as an OTP supervisor's per-child shutdown);
//! 4. cancel and report any task a service spawned and did not stop;
//! 5. write the stop report (`event=stop-report`): the stop's duration and each service's,
//!    with how it ended; a forced exit writes it too ([`force_end`]), before the exit event.
//!
//! A failed start stops what had started, in reverse, and fails the run. [`Runner::run`]
//! returns the [`ExitStatus`]; it never ends the process, so it can be tested in-process on
//! virtual time, or driven by a program that owns its process edge. Its signal source
//! is whatever calls [`Shutdown::on_signal`] on [`Runner::shutdown`]. Ending the process,
//! and the guards a process needs when its runtime is stuck (a thread that forces the exit
//! at the deadline, a forced exit that acts from the signal thread), are the edge's job:
//! [`crate::Edge`].

use std::time::Duration;

use crate::components::Components;
use crate::deadline::Deadline;
use crate::exit::ExitStatus;
use crate::panics::CatchPanic;
use crate::service::{BoxFuture, Service, ServiceContext};
use crate::shutdown::{ForceReason, Shutdown, StopReason};

mod report;
#[cfg(test)]
mod tests;

use report::StopOutcome;
pub(crate) use report::StopReport;

/// What a run is told: how long to run, how long the stop may take, when to force.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Stop by itself after running for this long (`--run-for`).
    pub run_for: Option<Duration>,
    /// Bound on the whole stop; past it the exit is forced (`--stop-timeout`).
    pub stop_timeout: Duration,
    /// The Nth shutdown signal forces the exit; 0 never (`--force-after`).
    pub force_after: u32,
}

impl Default for Settings {
    /// Run until a signal; the stop may take 30 s; the third signal forces the exit.
    fn default() -> Self {
        Self {
            run_for: None,
            stop_timeout: Duration::from_secs(30),
            force_after: 3,
        }
    }
}

type StopHook = Box<dyn FnOnce(Duration) + Send>;

/// One run of an application: build it, hand its [`shutdown`](Self::shutdown) handle to
/// your signal source, then [`run`](Self::run) it.
pub struct Runner {
    ctx: ServiceContext,
    run_for: Option<Duration>,
    stop_timeout: Duration,
    on_stop: Option<StopHook>,
}

impl Runner {
    /// A run with these settings; nothing starts until [`run`](Self::run).
    pub fn new(settings: Settings) -> Self {
        let ctx = ServiceContext::new(Shutdown::new(settings.force_after), Components::new());
        Self {
            ctx,
            run_for: settings.run_for,
            stop_timeout: settings.stop_timeout,
            on_stop: None,
        }
    }

    /// The shutdown controller: feed it signals ([`Shutdown::on_signal`]) from any thread.
    pub fn shutdown(&self) -> Shutdown {
        self.ctx.shutdown.clone()
    }

    /// What the services are lent (the lifecycle registry, the force hooks, ...).
    pub fn context(&self) -> &ServiceContext {
        &self.ctx
    }

    /// Calls `hook` with the stop's bound when the stop begins (the process edge arms a
    /// deadline thread with it, which a stuck runtime cannot hold off).
    pub fn on_stop(&mut self, hook: impl FnOnce(Duration) + Send + 'static) {
        self.on_stop = Some(Box::new(hook));
    }

    /// Runs `services` to the end and returns how the process should end. Logs the `app`
    /// component's steps; a forced exit (the `--force-after`th signal, or the stop outliving
    /// `--stop-timeout`) returns at once, after marking what had not stopped `failed`.
    pub async fn run(self, services: Vec<Box<dyn Service>>) -> ExitStatus {
        // The lifecycle takes `self`; the forced exit's branch keeps a handle of its own.
        let ctx = &self.ctx.clone();
        ctx.components.starting("app");
        let failed = tokio::select! {
            biased;
            reason = ctx.shutdown.forced() => {
                force_end(ctx, &reason);
                true
            }
            failed = self.lifecycle(services) => failed,
        };
        ctx.stop_report().write();
        let failed = failed || ctx.shutdown.fatal().is_some();
        ExitStatus::decide(ctx.shutdown.first_signal(), failed)
    }
}

/// The forced exit's account, wherever it is carried out: what had not finished, the
/// force hooks (kill child processes), `failed` for every unfinished component, and the
/// stop report naming them `forced`.
pub(crate) fn force_end(ctx: &ServiceContext, reason: &ForceReason) {
    let unfinished = ctx.components.unfinished().join(", ");
    tracing::error!(target: "lifecycle", component = "app", cause = %reason, unfinished, "forcing the exit: {reason}; not finished: {unfinished}");
    ctx.run_force_hooks();
    fail_what_remains(ctx, &format!("exit forced ({reason})"));
}

/// The end of a run that did not finish its stop (forced, or the runner itself panicked):
/// every unfinished component `failed` with `cause`, and the stop report written with them.
pub(crate) fn fail_what_remains(ctx: &ServiceContext, cause: &str) {
    let mut failed = ctx.components.fail_unfinished(&cause);
    failed.retain(|name| name != "app");
    ctx.stop_report().write_forced(&failed);
}

impl Runner {
    /// Starts, waits, stops, and logs how the `app` ended (`stopped`, or `failed` after a
    /// failed start); returns whether the run failed.
    async fn lifecycle(self, services: Vec<Box<dyn Service>>) -> bool {
        let ctx = &self.ctx;
        let components = &ctx.components;
        let shutdown = &ctx.shutdown;

        let start_shield = shutdown.shield("start");
        let mut started: Vec<Box<dyn Service>> = Vec::new();
        let mut start_error = None;
        for mut service in services {
            let name = service.name();
            components.starting(name);
            match caught(service.start(ctx)).await {
                Ok(()) => {
                    components.started(name);
                    started.push(service);
                }
                Err(error) => {
                    // Its own stop is not run: a start that failed or panicked left no state
                    // to trust.
                    components.failed(name, &format!("{error:#}"));
                    start_error = Some((name, error));
                    break;
                }
            }
        }
        // Asked while still shielded, so a request counted here came during the start (one
        // arriving after the guard drops is an ordinary request while running).
        let requested_during_start = shutdown.is_requested();
        // The last guard: a signal that arrived during start is delivered right here.
        drop(start_shield);

        if let Some((name, error)) = &start_error {
            // A signal during this stop is then counted, not "delayed until the stop completes".
            shutdown.request(StopReason::StartFailed((*name).to_owned()));
            tracing::error!(
                component = "app",
                cause = %format!("{error:#}"),
                "start failed at {name}; stopping the {} service(s) already started, in reverse order",
                started.len()
            );
        } else {
            components.started("app");
            if requested_during_start {
                tracing::warn!("a stop was requested during start; stopping at once");
            } else {
                wait_for_stop(shutdown, self.run_for).await;
            }
        }

        let stop_shield = shutdown.shield("stop");
        ctx.stop_report().begin();
        if let Some(on_stop) = self.on_stop {
            on_stop(self.stop_timeout);
        }
        if start_error.is_none() {
            components.stopping("app");
        }
        let stop = Box::pin(stop_in_reverse(ctx, &mut started));
        // Time the whole run spent stopped (Ctrl+Z) is not held against the stop.
        let stop_failed = match Deadline::after(self.stop_timeout).within(stop).await {
            Some(stop_failed) => stop_failed,
            None => {
                shutdown.force(ForceReason::StopTimeout(self.stop_timeout));
                // Forced: the runner's select returns (or the process edge ends it).
                std::future::pending().await
            }
        };

        if let Some((name, _)) = start_error {
            components.failed("app", &format!("{name} failed to start"));
            return true;
        }
        drop(stop_shield);
        components.stopped("app");
        stop_failed
    }
}

/// Awaits a service's start or stop; a panic in it is an error like any other.
async fn caught(step: BoxFuture<'_, anyhow::Result<()>>) -> anyhow::Result<()> {
    CatchPanic(step)
        .await
        .unwrap_or_else(|panic| Err(anyhow::anyhow!("panicked: {panic}")))
}

/// Stops `started` in reverse order, then cancels the tasks a service left behind. Returns
/// whether a stop failed.
async fn stop_in_reverse(ctx: &ServiceContext, started: &mut [Box<dyn Service>]) -> bool {
    let mut stop_failed = false;
    for service in started.iter_mut().rev() {
        stop_failed |= stop_one(ctx, service.as_mut()).await != StopOutcome::Stopped;
    }

    let leftovers = ctx.tasks().abort_leftovers();
    for task in &leftovers {
        tracing::warn!(
            task,
            "task {task} was still running after every service stopped; cancelled it"
        );
    }
    ctx.tasks().tracker.wait().await;
    tracing::debug!(leftovers = leftovers.len(), "every tracked task has ended");
    stop_failed
}

/// Stops one service, within its own deadline if it declares one; logs and records the
/// outcome. A stop cut at its deadline is dropped there: what it left running is the
/// service's tracked tasks, cancelled at the end like any leftover.
async fn stop_one(ctx: &ServiceContext, service: &mut dyn Service) -> StopOutcome {
    let (components, name) = (&ctx.components, service.name());
    components.stopping(name);
    ctx.stop_report().stopping(name);
    let deadline = service.stop_deadline();
    let stop = std::pin::pin!(caught(service.stop(ctx)));
    // `Err(deadline)`: cut at its deadline.
    let ended = match deadline {
        Some(deadline) => Deadline::after(deadline).within(stop).await.ok_or(deadline),
        None => Ok(stop.await),
    };
    let (outcome, cause) = match ended {
        Ok(Ok(())) => (StopOutcome::Stopped, None),
        Ok(Err(error)) => (StopOutcome::Failed, Some(format!("{error:#}"))),
        Err(deadline) => {
            let deadline = humantime::format_duration(deadline);
            let cause = format!("its stop deadline ({deadline}) passed; the stop goes on without it");
            (StopOutcome::Cut, Some(cause))
        }
    };
    match &cause {
        None => components.stopped(name),
        Some(cause) => components.failed(name, cause),
    }
    ctx.stop_report().ended(name, outcome);
    outcome
}

async fn wait_for_stop(shutdown: &Shutdown, run_for: Option<Duration>) {
    match run_for {
        Some(run_for) => {
            tracing::info!(
                "running; stopping by itself after {}, or on Ctrl+C",
                humantime::format_duration(run_for)
            );
            tokio::select! {
                () = shutdown.delivered() => {}
                () = tokio::time::sleep(run_for) => shutdown.request(StopReason::RunForElapsed),
            }
        }
        None => {
            tracing::info!("running; press Ctrl+C (or send SIGTERM/SIGHUP) to stop");
            shutdown.delivered().await;
        }
    }
}

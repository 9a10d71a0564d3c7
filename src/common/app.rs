//! The application runner: the reference's `Application.run()`, without `asyncio.run()`.
//!
//! **Problem.** `#[tokio::main]` (like `asyncio.run()`) ends by dropping every task at its
//! next await, in no order anyone chose, and waits forever for a stuck blocking task.
//!
//! **Fix.** The runner builds the runtime itself and drives the lifecycle explicitly:
//! 1. start the services in order, under the shield (a signal is recorded, not acted on);
//! 2. if a stop was requested meanwhile, go straight to stop; otherwise wait for a request
//!    or for `--run-for`;
//! 3. stop the started services in reverse order, under the shield, the whole stop watched
//!    by a thread that forces the exit at `--stop-timeout`;
//! 4. cancel and report any task a service spawned and did not stop;
//! 5. shut the runtime down with a bound, so a stuck blocking task cannot hang the exit.
//!
//! A failed start stops what had started, in reverse, and exits 1. The process then ends as
//! [`crate::exit`] says, after a final `component=app phase=exit` event.

use std::sync::mpsc;
use std::time::Duration;

use crate::cli::CommonArgs;
use crate::components::Components;
use crate::exit::{self, ExitStatus};
use crate::logging;
use crate::panics::{self, CatchPanic};
use crate::service::{Service, ServiceContext};
use crate::shutdown::{ForceReason, Shutdown, StopReason};
use crate::signals;

/// How long the runtime's own shutdown may take: a blocking task still running after it
/// is abandoned (its thread leaks until the process ends, a moment later).
const RUNTIME_SHUTDOWN_BOUND: Duration = Duration::from_secs(1);

/// Sets up logging, signal intake and the forced-exit path, runs `services` and ends the
/// process as the contract says. This is all a binary's `main` needs to call, after
/// [`signals::block_until_intake`] as its first line.
pub fn run_main(args: &CommonArgs, services: Vec<Box<dyn Service>>) -> ! {
    if let Err(error) = logging::init("main", args.log_format, args.log_level) {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
    panics::install_hook();
    let shutdown = Shutdown::new(args.force_after);
    let components = Components::new();
    let ctx = ServiceContext::new(
        args.time_scale,
        shutdown.clone(),
        components.clone(),
        args.fail_start.clone(),
    );
    install_force_handler(&ctx);
    let intake = shutdown.clone();
    match signals::install(move |signal| intake.on_signal(signal)) {
        Ok(intake) => log_ignored_at_start(&intake),
        Err(error) => {
            let cause = format!("{:#}", anyhow::Error::from(error));
            tracing::error!(target: "lifecycle", component = "app", phase = "failed", cause, "app: failed: cannot install the signal handlers: {cause}");
            finish(ExitStatus::Failed);
        }
    }
    tracing::info!("main: begin");
    let application = Application {
        services,
        run_for: args.run_for,
        stop_timeout: args.stop_timeout,
    };
    // A panic the runner did not catch (a bug of its own) still ends in order: the
    // children are killed, the exit event is written, the status is 1 or the signal's.
    let status = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| application.run(&ctx)))
        .unwrap_or_else(|_| {
            ctx.force_hooks().run_all();
            ExitStatus::from_stop(ctx.shutdown.first_signal(), true)
        });
    tracing::info!("main: end");
    finish(status)
}

/// The Unix convention: a signal ignored at start (nohup's SIGHUP) stays ignored. Said once.
fn log_ignored_at_start(intake: &signals::Intake) {
    for signal in &intake.ignored_at_start {
        tracing::warn!(
            target: "lifecycle",
            event = "signal-ignored-at-start",
            signal = signal.name(),
            "{signal} was ignored when this process started (nohup, or a background job); it stays ignored"
        );
    }
}

/// Logs the final event and ends the process. If another thread is already ending it (a
/// forced exit racing the normal one), this thread waits for the end instead.
pub fn finish(status: ExitStatus) -> ! {
    if !exit::claim() {
        park_forever();
    }
    finish_claimed(status)
}

fn finish_claimed(status: ExitStatus) -> ! {
    write_exit_event(status);
    exit::terminate(status)
}

/// The run's last line, after which the log is sealed.
fn write_exit_event(status: ExitStatus) {
    let code = status.code();
    let signal = status.signal().map(|s| s.name());
    let how = match status.signal() {
        Some(signal) => format!("ends by {signal}, status {code}"),
        None => format!("exits with status {code}"),
    };
    logging::write_final(|| {
        tracing::info!(target: "lifecycle", component = "app", phase = "exit", status = code, signal, "app: {how}");
    });
}

fn park_forever() -> ! {
    loop {
        std::thread::park();
    }
}

/// The forced exit: log what had not finished, run the force hooks (kill child processes),
/// mark the unfinished components `failed`, and end the process. Runs on whichever thread
/// forced it (the signal thread or the stop watchdog), so it works with a stuck runtime.
/// Logging never waits on stderr, so all of it is bounded: the hooks' own bounds (a killed
/// worker's reaping) and the log's [`logging::DRAIN_BOUND`].
fn install_force_handler(ctx: &ServiceContext) {
    let components = ctx.components.clone();
    let hooks = ctx.force_hooks();
    let shutdown = ctx.shutdown.clone();
    ctx.shutdown.set_force_handler(move |reason: ForceReason| {
        let status = ExitStatus::from_stop(shutdown.first_signal(), true);
        if !exit::claim() {
            // The normal exit is already writing its last line; it needs at most the log's
            // drain bound, and then the forcing signal must still end us.
            std::thread::sleep(logging::DRAIN_BOUND + Duration::from_millis(500));
            exit::terminate(status);
        }
        let unfinished = components.unfinished().join(", ");
        tracing::error!(target: "lifecycle", component = "app", cause = %reason, unfinished, "forcing the exit: {reason}; not finished: {unfinished}");
        hooks.run_all();
        components.fail_unfinished(&format!("exit forced ({reason})"));
        write_exit_event(status);
        exit::terminate(status)
    });
}

/// An ordered list of services and how long to run them.
pub struct Application {
    services: Vec<Box<dyn Service>>,
    run_for: Option<Duration>,
    stop_timeout: Duration,
}

struct Outcome {
    /// Every service started, so the app logged `stopping` and is to log `stopped` once the
    /// runtime is down (a failed start logged `failed` instead).
    started: bool,
    failed: bool,
}

impl Application {
    /// Runs the whole lifecycle on a runtime of its own; returns how the process should end.
    fn run(self, ctx: &ServiceContext) -> ExitStatus {
        let components = &ctx.components;
        components.starting("app");
        // The stop's deadline is a thread; it is started now, so a machine out of threads
        // fails the start cleanly instead of leaving a stop without its bound.
        let watchdog = match Watchdog::spawn(ctx.shutdown.clone()) {
            Ok(watchdog) => watchdog,
            Err(error) => {
                components.failed("app", &format!("cannot start thread 'stop-watchdog': {error}"));
                return ExitStatus::Failed;
            }
        };
        // A current-thread runtime: the services only wait (their work runs in pools and
        // processes of their own), and a runtime that starts no threads cannot fail for want
        // of one: tokio's multi-threaded runtime panics when the OS refuses a worker thread
        // (RLIMIT_NPROC) and then hangs in its drop. A service that blocks this thread by
        // mistake freezes the runtime, which is why the stop's deadline is a thread of its own.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build();
        let runtime = match runtime {
            Ok(runtime) => runtime,
            Err(error) => {
                components.failed("app", &format!("cannot build the tokio runtime: {error}"));
                return ExitStatus::Failed;
            }
        };
        let outcome = runtime.block_on(self.lifecycle(ctx, &watchdog));
        tracing::debug!("runtime: shutting down (bounded by {RUNTIME_SHUTDOWN_BOUND:?})");
        runtime.shutdown_timeout(RUNTIME_SHUTDOWN_BOUND);
        tracing::debug!("runtime: shut down");
        // Disarmed only now: the stop's bound covers the runtime's shutdown too.
        drop(watchdog);
        let failed = outcome.failed || ctx.shutdown.fatal().is_some() || panics::happened();
        if outcome.started {
            components.stopped("app");
        }
        ExitStatus::from_stop(ctx.shutdown.first_signal(), failed)
    }

    async fn lifecycle(self, ctx: &ServiceContext, watchdog: &Watchdog) -> Outcome {
        let components = &ctx.components;
        let shutdown = &ctx.shutdown;

        let start_shield = shutdown.shield("start");
        let mut started: Vec<Box<dyn Service>> = Vec::new();
        let mut start_error = None;
        for mut service in self.services {
            let name = service.name();
            components.starting(name);
            match CatchPanic(service.start(ctx)).await {
                Ok(Ok(())) => {
                    components.started(name);
                    started.push(service);
                }
                Ok(Err(error)) => {
                    components.failed(name, &format!("{error:#}"));
                    start_error = Some((name, error));
                    break;
                }
                Err(panic) => {
                    // Its own stop is not run: a start that panicked left no state to trust.
                    components.failed(name, &format!("panicked: {panic}"));
                    start_error = Some((name, anyhow::anyhow!("panicked: {panic}")));
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

        let _stop_shield = shutdown.shield("stop");
        watchdog.arm(self.stop_timeout);
        if start_error.is_none() {
            components.stopping("app");
        }
        let mut stop_failed = false;
        for service in started.iter_mut().rev() {
            let name = service.name();
            components.stopping(name);
            match CatchPanic(service.stop(ctx)).await {
                Ok(Ok(())) => components.stopped(name),
                Ok(Err(error)) => {
                    stop_failed = true;
                    components.failed(name, &format!("{error:#}"));
                }
                Err(panic) => {
                    stop_failed = true;
                    components.failed(name, &format!("panicked: {panic}"));
                }
            }
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

        if let Some((name, _)) = start_error {
            components.failed("app", &format!("{name} failed to start"));
        }
        Outcome {
            started: start_error.is_none(),
            failed: start_error.is_some() || stop_failed,
        }
    }
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

/// A thread that forces the exit if the stop outlives its bound, once [`armed`]; dropping
/// the handle disarms it. A thread, not a tokio timer, so a service that blocks the runtime
/// cannot hold it off.
///
/// [`armed`]: Watchdog::arm
struct Watchdog {
    orders: mpsc::Sender<Duration>,
}

impl Watchdog {
    fn spawn(shutdown: Shutdown) -> std::io::Result<Self> {
        let (orders, received) = mpsc::channel::<Duration>();
        std::thread::Builder::new()
            .name("stop-watchdog".into())
            .spawn(move || {
                // The handle dropped before the stop: nothing to watch.
                let Ok(timeout) = received.recv() else {
                    return;
                };
                if let Err(mpsc::RecvTimeoutError::Timeout) = received.recv_timeout(timeout) {
                    shutdown.force(ForceReason::StopTimeout(timeout));
                }
            })?;
        Ok(Self { orders })
    }

    /// Starts the countdown: past `timeout` the exit is forced.
    fn arm(&self, timeout: Duration) {
        let _ = self.orders.send(timeout);
    }
}

#[cfg(test)]
mod tests {
    //! The runner in-process, with the signal source injected: a test pushes SIGINT in the
    //! middle of a start and reads the lifecycle history, on virtual time.

    use super::*;
    use crate::components::Phase::{self, *};
    use crate::service::BoxFuture;
    use crate::signals::ShutdownSignal;
    use crate::time_scale::TimeScale;

    type Hook = Box<dyn FnOnce(&ServiceContext) + Send>;

    /// A service whose start takes 1 s (virtual), and may run a hook halfway, fail, or
    /// leave a task running.
    struct Probe {
        name: &'static str,
        halfway: Option<Hook>,
        fail: bool,
        leak_task: Option<tokio::sync::oneshot::Sender<()>>,
    }

    fn probe(name: &'static str) -> Probe {
        Probe {
            name,
            halfway: None,
            fail: false,
            leak_task: None,
        }
    }

    impl Service for Probe {
        fn name(&self) -> &'static str {
            self.name
        }

        fn start<'a>(&'a mut self, ctx: &'a ServiceContext) -> BoxFuture<'a, anyhow::Result<()>> {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if let Some(hook) = self.halfway.take() {
                    hook(ctx);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                if let Some(dropped) = self.leak_task.take() {
                    // Never stopped by `stop`: the runner must find and cancel it.
                    ctx.spawn("leaky task", async move {
                        let _dropped = dropped;
                        std::future::pending::<()>().await
                    });
                }
                anyhow::ensure!(!self.fail, "injected failure");
                Ok(())
            })
        }

        fn stop<'a>(&'a mut self, _ctx: &'a ServiceContext) -> BoxFuture<'a, anyhow::Result<()>> {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok(())
            })
        }
    }

    fn watchdog(ctx: &ServiceContext) -> Watchdog {
        Watchdog::spawn(ctx.shutdown.clone()).expect("a thread for the watchdog")
    }

    fn context() -> ServiceContext {
        ServiceContext::new(TimeScale::new(1.0), Shutdown::new(3), Components::new(), None)
    }

    fn application(services: Vec<Probe>, run_for: Option<Duration>) -> Application {
        Application {
            services: services
                .into_iter()
                .map(|s| Box::new(s) as Box<dyn Service>)
                .collect(),
            run_for,
            stop_timeout: Duration::from_secs(30),
        }
    }

    fn steps(history: &[(String, Phase)]) -> Vec<(&str, Phase)> {
        history
            .iter()
            .map(|(name, phase)| (name.as_str(), *phase))
            .collect()
    }

    /// The shield lesson: SIGINT in the middle of AsyncService1's start is delayed; both
    /// services finish starting, and only then does the stop run, in reverse order.
    #[tokio::test(start_paused = true)]
    async fn signal_during_start_is_acted_on_after_every_service_started() {
        let ctx = context();
        let mut first = probe("AsyncService1");
        first.halfway = Some(Box::new(|ctx: &ServiceContext| {
            ctx.shutdown.on_signal(ShutdownSignal::Interrupt)
        }));
        let mut second = probe("AsyncService2");
        second.halfway = Some(Box::new(|ctx: &ServiceContext| {
            assert!(ctx.shutdown.is_requested(), "the request is recorded");
            assert!(!ctx.shutdown.is_delivered(), "delivered in the middle of a start");
        }));
        let outcome = application(vec![first, second], None)
            .lifecycle(&ctx, &watchdog(&ctx))
            .await;
        assert!(!outcome.failed);
        assert_eq!(
            steps(&ctx.components.history()),
            [
                ("AsyncService1", Starting),
                ("AsyncService1", Started),
                ("AsyncService2", Starting),
                ("AsyncService2", Started),
                ("app", Started),
                ("app", Stopping),
                ("AsyncService2", Stopping),
                ("AsyncService2", Stopped),
                ("AsyncService1", Stopping),
                ("AsyncService1", Stopped),
            ]
        );
        assert_eq!(ctx.shutdown.first_signal(), Some(ShutdownSignal::Interrupt));
    }

    /// A failed start (which the reference does not handle) stops what had started, in
    /// reverse, and fails the application.
    #[tokio::test(start_paused = true)]
    async fn failed_start_stops_what_had_started() {
        let ctx = context();
        let mut third = probe("C");
        third.fail = true;
        let outcome = application(vec![probe("A"), probe("B"), third, probe("D")], None)
            .lifecycle(&ctx, &watchdog(&ctx))
            .await;
        assert!(outcome.failed);
        assert_eq!(
            steps(&ctx.components.history()),
            [
                ("A", Starting),
                ("A", Started),
                ("B", Starting),
                ("B", Started),
                ("C", Starting),
                ("C", Failed),
                ("B", Stopping),
                ("B", Stopped),
                ("A", Stopping),
                ("A", Stopped),
                ("app", Failed),
            ]
        );
    }

    /// The `_cancel_all_tasks` lesson: a task a service spawned and never stopped is found
    /// and cancelled at the end, not left to the runtime's drop.
    #[tokio::test(start_paused = true)]
    async fn a_forgotten_task_is_cancelled_at_the_end() {
        let ctx = context();
        let (dropped_tx, dropped_rx) = tokio::sync::oneshot::channel::<()>();
        let mut leaky = probe("A");
        leaky.leak_task = Some(dropped_tx);
        let outcome = application(vec![leaky], Some(Duration::from_secs(1)))
            .lifecycle(&ctx, &watchdog(&ctx))
            .await;
        assert!(!outcome.failed);
        // The task held the sender: cancelling it dropped the sender.
        assert!(dropped_rx.await.is_err(), "the leaked task is still running");
        assert_eq!(ctx.shutdown.reason(), Some(StopReason::RunForElapsed));
        assert_eq!(
            ExitStatus::from_stop(ctx.shutdown.first_signal(), outcome.failed),
            ExitStatus::Clean
        );
    }
}

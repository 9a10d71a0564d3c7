//! The process edge: run an application as this process, and end the process as a shell
//! and a supervisor expect.
//!
//! [`crate::runner`] drives the lifecycle and returns an exit status; this module adds what
//! only a whole process needs, and what a library must not do:
//! - logging set up for the process, and panics turned into log lines;
//! - signal intake: SIGINT, SIGTERM and SIGHUP fed to the runner's [`Shutdown`];
//! - a service manager told of the run's state ([`crate::notify`]), and, as PID 1, adopted
//!   orphans reaped ([`crate::reaper`]);
//! - a forced exit that acts at once from the forcing thread (the signal thread, or a
//!   deadline thread), so a runtime stuck by a bug cannot hold it off; it kills the child
//!   processes, marks what had not stopped `failed`, and ends the process;
//! - the tokio runtime, built here and shut down with a bound, so a stuck blocking task
//!   cannot hang the exit;
//! - the final `component=app phase=exit` event, then the end of the process by the same
//!   signal (or 0 / 1): [`crate::exit`].

use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::cli::CommonArgs;
use crate::components::{Components, Phase};
use crate::exit::{self, ExitStatus};
use crate::logging;
use crate::notify;
use crate::panics;
use crate::reaper;
use crate::runner::{self, Runner, Settings};
use crate::service::{Service, ServiceContext};
use crate::shutdown::{ForceReason, Shutdown};
use crate::signals;

/// How long the runtime's own shutdown may take: a blocking task still running after it
/// is abandoned (its thread leaks until the process ends, a moment later).
const RUNTIME_SHUTDOWN_BOUND: Duration = Duration::from_secs(1);

/// How long a second forced exit waits for the first to end the process (it is bounded by
/// the force hooks' own bounds and the log's drain bound) before ending it itself.
const SECOND_FORCE_PATIENCE: Duration = Duration::from_secs(5);

/// Sets up logging, signal intake and the forced-exit path, runs `services` and ends the
/// process as the contract says. This is all a binary's `main` needs to call, after
/// [`signals::block_until_intake`] as its first line.
pub fn run_main(args: &CommonArgs, services: Vec<Box<dyn Service>>) -> ! {
    if let Err(error) = logging::init("main", args.log_format, args.log_level) {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
    panics::install_hook();
    let mut runner = Runner::new(Settings::from_args(args));
    install_force_handler(runner.context());
    let intake = runner.shutdown();
    match signals::install(move |signal| intake.on_signal(signal)) {
        Ok(intake) => log_ignored_at_start(&intake),
        Err(error) => {
            let cause = format!("{:#}", anyhow::Error::from(error));
            tracing::error!(target: "lifecycle", component = "app", phase = "failed", cause, "app: failed: cannot install the signal handlers: {cause}");
            finish(ExitStatus::Failed);
        }
    }
    if let Err(error) = reaper::start() {
        let cause = format!("cannot start thread 'reaper' (PID 1 must reap orphans): {error}");
        tracing::error!(target: "lifecycle", component = "app", phase = "failed", cause, "app: failed: {cause}");
        finish(ExitStatus::Failed);
    }
    tracing::info!("main: begin");
    // The stop's deadline as a thread, started now, so a machine out of threads fails the
    // start cleanly instead of leaving a stop without its bound.
    let watchdog = match Watchdog::spawn(runner.shutdown()) {
        Ok(watchdog) => watchdog,
        Err(error) => {
            let cause = format!("cannot start thread 'stop-watchdog': {error}");
            tracing::error!(target: "lifecycle", component = "app", phase = "failed", cause, "app: failed: {cause}");
            finish(ExitStatus::Failed);
        }
    };
    tell_the_service_manager(&runner.context().components);
    let arm = watchdog.orders.clone();
    runner.on_stop(move |timeout| {
        notify::send("STOPPING=1\nSTATUS=stopping");
        let _ = arm.send(timeout);
    });
    let ctx = runner.context().clone();
    // A panic the runner did not catch (a bug of its own) still ends in order: the
    // children are killed, the exit event is written, the status is 1 or the signal's.
    let status = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_on_runtime(runner, services)))
        .unwrap_or_else(|_| {
            ctx.force_hooks().run_all();
            ExitStatus::from_stop(ctx.shutdown.first_signal(), true)
        });
    // Disarmed only now: the stop's bound covers the runtime's shutdown too.
    drop(watchdog);
    tracing::info!("main: end");
    // A signal that came after the runner decided (its line already logged) still decides:
    // the first signal logged before the exit event is the one the process ends by.
    let status = match ctx.shutdown.seal() {
        Some(signal) => ExitStatus::Signalled(signal),
        None => status,
    };
    finish(status)
}

/// Builds the runtime, runs the application on it, and shuts the runtime down with a bound.
fn run_on_runtime(runner: Runner, services: Vec<Box<dyn Service>>) -> ExitStatus {
    // A current-thread runtime: the services only wait (their work runs in pools and
    // processes of their own), and a runtime that starts no threads cannot fail for want
    // of one: tokio's multi-threaded runtime panics when the OS refuses a worker thread
    // (RLIMIT_NPROC) and then hangs in its drop. A service that blocks this thread by
    // mistake freezes the runtime, which is why the stop's deadline is also a thread.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            runner
                .context()
                .components
                .failed("app", &format!("cannot build the tokio runtime: {error}"));
            return ExitStatus::Failed;
        }
    };
    if let Some(interval) = notify::watchdog_ping_interval() {
        // On the runtime, so a runtime that stops running stops the pings: the service
        // manager then sees what happened. Dropped with the runtime.
        runtime.spawn(notify::watchdog_pings(interval));
    }
    let status = runtime.block_on(runner.run(services));
    tracing::debug!("runtime: shutting down (bounded by {RUNTIME_SHUTDOWN_BOUND:?})");
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_BOUND);
    tracing::debug!("runtime: shut down");
    status
}

/// Under a service manager (`NOTIFY_SOCKET`): `READY=1` when `app: started` is logged, and
/// `STATUS=` for every step of the application's components. (`STOPPING=1` and the stop's
/// extensions come from the stop itself: see `run_main` and [`Watchdog`].)
fn tell_the_service_manager(components: &Components) {
    if !notify::is_enabled() {
        return;
    }
    components.observe(|component, phase| match (component, phase) {
        ("app", Phase::Started) => notify::send("READY=1\nSTATUS=running"),
        ("app", Phase::Stopping) => {}
        ("app", Phase::Stopped) => notify::send("STATUS=stopped"),
        (_, Phase::Failed) => notify::send(&format!("STATUS={component} failed")),
        (_, Phase::Starting) => notify::send(&format!("STATUS=starting {component}")),
        (_, Phase::Stopping) => notify::send(&format!("STATUS=stopping {component}")),
        _ => {}
    });
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

/// The forced exit of a process: the runner's account of it ([`runner::force_end`]), then
/// the exit event and the end. Runs on whichever thread forced it (the signal thread, the
/// deadline thread, or the runtime's own timer), so it works with a stuck runtime. Logging
/// never waits on stderr, so all of it is bounded: the hooks' own bounds (a killed worker's
/// reaping) and the log's [`logging::DRAIN_BOUND`].
fn install_force_handler(ctx: &ServiceContext) {
    let forcing = ctx.clone();
    ctx.shutdown.set_force_handler(move |reason: ForceReason| {
        let status = ExitStatus::from_stop(forcing.shutdown.seal(), true);
        if !exit::claim() {
            // Another thread is already ending the process (normally or forced), and it is
            // bounded; should it not end it all the same, this one does.
            std::thread::sleep(SECOND_FORCE_PATIENCE);
            exit::terminate(status);
        }
        runner::force_end(&forcing, &reason);
        write_exit_event(status);
        exit::terminate(status)
    });
}

/// A thread that forces the exit if the stop outlives its bound, once armed (the runner
/// sends it the bound when the stop begins); dropping the handle disarms it. The runner
/// has its own deadline on the runtime's timer; this one holds even if a service blocks
/// the runtime's thread by mistake. Under a service manager it also re-sends
/// `EXTEND_TIMEOUT_USEC` while the stop runs, never promising past the deadline.
struct Watchdog {
    orders: mpsc::Sender<Duration>,
}

impl Watchdog {
    fn spawn(shutdown: Shutdown) -> std::io::Result<Self> {
        let (orders, received) = mpsc::channel::<Duration>();
        std::thread::Builder::new()
            .name("stop-watchdog".into())
            .spawn(move || {
                // Every handle dropped before the stop: nothing to watch.
                let Ok(timeout) = received.recv() else {
                    return;
                };
                let deadline = Instant::now() + timeout;
                loop {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    if remaining.is_zero() {
                        shutdown.force(ForceReason::StopTimeout(timeout));
                        return;
                    }
                    if notify::is_enabled() {
                        notify::send(&notify::extend_message(remaining));
                    }
                    match received.recv_timeout(remaining.min(notify::EXTEND_INTERVAL)) {
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        // Disarmed: the stop is over.
                        _ => return,
                    }
                }
            })?;
        Ok(Self { orders })
    }
}

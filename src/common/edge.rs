//! The process edge: run an application as this whole process, and end the process as a
//! shell and a supervisor expect. One call gives a `main` all of it:
//!
//! ```no_run
//! use graceful::{Edge, Settings};
//!
//! fn main() {
//!     // First line: a Ctrl+C from here on is kept pending until the intake is in place.
//!     let edge = Edge::begin();
//!     let services = vec![/* Box<dyn graceful::Service>, started in order */];
//!     edge.settings(Settings::default()).run(services)
//! }
//! ```
//!
//! [`Runner`] drives the lifecycle and returns an exit status; [`Edge::run`] adds what only
//! a whole process needs, and what a library must not do on its own:
//! - logging set up for the process, and panics turned into log lines;
//! - one signal intake ([`crate::signals`]): SIGINT, SIGTERM and SIGHUP fed to the runner's
//!   [`Shutdown`] (a signal ignored at start stays ignored, and is said so), and SIGCHLD to
//!   the PID 1 reaper ([`crate::reaper`]) when the process is PID 1 or a subreaper;
//! - a service manager told of the run's state ([`crate::notify`]): `READY=1`, `STATUS=`,
//!   `STOPPING=1`, the stop's extensions and the watchdog;
//! - a forced exit that acts at once from the forcing thread (the signal thread, or the
//!   stop-deadline thread), so a runtime stuck by a bug cannot hold it off: it kills the
//!   child processes, marks what had not stopped `failed`, and ends the process;
//! - the tokio runtime, built here and shut down with a bound, so a stuck blocking task
//!   cannot hang the exit;
//! - one decision of the exit status ([`conclude`]), the final `component=app phase=exit`
//!   event, then the end of the process by the same signal (or 0 / 1): [`crate::exit`].

use std::sync::{Arc, mpsc};
use std::time::Duration;

use tracing_subscriber::filter::LevelFilter;

use crate::components::{Components, Phase};
use crate::deadline::Deadline;
use crate::exit::{self, ExitStatus};
use crate::logging::{self, LogFormat};
use crate::notify::{self, Notifier, NotifyEnv};
use crate::panics;
use crate::reaper::Reaper;
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

/// The whole process edge, configured then [`run`](Self::run). See the module docs.
#[must_use = "nothing runs until `run`"]
pub struct Edge {
    notify_env: NotifyEnv,
    log_format: LogFormat,
    log_level: LevelFilter,
    settings: Settings,
}

impl Edge {
    /// Call it as the first line of `main`: it blocks the shutdown signals in this thread
    /// (and in every thread started before [`run`](Self::run)), so a Ctrl+C while the
    /// arguments are parsed stays pending and is acted on once the intake is in place,
    /// instead of killing the process silently; and it reads the service manager's
    /// variables before anything can change them.
    pub fn begin() -> Self {
        signals::block_until_intake();
        Self {
            notify_env: NotifyEnv::read(),
            log_format: LogFormat::Text,
            log_level: LevelFilter::INFO,
            settings: Settings::default(),
        }
    }

    /// How log lines look, and the lowest level logged (`RUST_LOG` overrides the level).
    pub fn log(mut self, format: LogFormat, level: LevelFilter) -> Self {
        self.log_format = format;
        self.log_level = level;
        self
    }

    /// How long to run, how long the stop may take, when to force.
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// Runs `services` (started in order, stopped in reverse) as this process, and ends the
    /// process as the contract says: 0 after a clean `run_for`, 1 after a failure, and by
    /// the first shutdown signal received after a signal (a shell sees 128+N).
    pub fn run(self, services: Vec<Box<dyn Service>>) -> ! {
        if let Err(error) = logging::init("main", self.log_format, self.log_level) {
            eprintln!("error: {:#}", anyhow::Error::from(error));
            std::process::exit(1);
        }
        panics::install_hook();
        let notifier = Notifier::from_env(self.notify_env);
        let mut runner = Runner::new(self.settings);
        install_force_handler(runner.context());
        let reaper = Reaper::start().unwrap_or_else(|error| {
            fail_to_start(&format!(
                "cannot start thread 'reaper' (PID 1 must reap orphans): {error}"
            ))
        });
        let intake = runner.shutdown();
        let wake_reaper = reaper.map(|reaper| Box::new(move || reaper.wake()) as Box<dyn Fn() + Send>);
        match signals::install_watching(move |signal| intake.on_signal(signal), wake_reaper) {
            Ok(intake) => log_ignored_at_start(&intake),
            Err(error) => fail_to_start(&format!(
                "cannot install the signal handlers: {:#}",
                anyhow::Error::from(error)
            )),
        }
        tracing::info!("main: begin");
        // The stop's deadline as a thread, started now, so a machine out of threads fails
        // the start cleanly instead of leaving a stop without its bound.
        let deadline = spawn_stop_deadline(runner.shutdown(), notifier.clone())
            .unwrap_or_else(|error| fail_to_start(&format!("cannot start thread 'stop-deadline': {error}")));
        if let Some(notifier) = &notifier {
            tell_the_service_manager(&runner.context().components, notifier.clone());
        }
        let arm = deadline.clone();
        let stopping = notifier.clone();
        runner.on_stop(move |timeout| {
            if let Some(notifier) = &stopping {
                notifier.send("STOPPING=1\nSTATUS=stopping");
            }
            let _ = arm.send(timeout);
        });
        let ctx = runner.context().clone();
        // A panic the runner did not catch (a bug of its own) still ends in order: the
        // children are killed, the exit event is written, the status is 1 or the signal's.
        let status = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_on_runtime(runner, services, notifier)
        }))
        .unwrap_or_else(|_| {
            ctx.run_force_hooks();
            runner::fail_what_remains(&ctx, "the runner panicked");
            ExitStatus::Failed
        });
        // Disarmed only now: the stop's bound covers the runtime's shutdown too.
        drop(deadline);
        tracing::info!("main: end");
        finish(conclude(&ctx.shutdown, status == ExitStatus::Failed))
    }
}

/// The exit status of this process, decided once: by the first signal logged before the
/// exit event (even one that came after the runner decided), else 1 if the run failed or
/// any thread panicked, else 0. Seals the shutdown controller: a later signal changes
/// nothing and is not logged.
fn conclude(shutdown: &Shutdown, failed: bool) -> ExitStatus {
    ExitStatus::decide(shutdown.seal(), failed || panics::happened())
}

/// A process that cannot get what its stop would need (a thread, a handler) fails its
/// start cleanly, naming why, rather than run without a bounded stop.
fn fail_to_start(cause: &str) -> ! {
    tracing::error!(target: "lifecycle", component = "app", phase = "failed", cause, "app: failed: {cause}");
    finish(ExitStatus::Failed)
}

/// Builds the runtime, runs the application on it, and shuts the runtime down with a bound.
fn run_on_runtime(
    runner: Runner,
    services: Vec<Box<dyn Service>>,
    notifier: Option<Arc<Notifier>>,
) -> ExitStatus {
    // A current-thread runtime: the services only wait (their work runs in pools and
    // processes of their own), and a runtime that starts no threads cannot fail for want
    // of one: tokio's multi-threaded runtime panics when the OS refuses a worker thread
    // (RLIMIT_NPROC) and then hangs in its drop. A service that blocks this thread by
    // mistake freezes the runtime, which is why the stop's deadline is also a thread.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            runner
                .context()
                .components
                .failed("app", &format!("cannot build the tokio runtime: {error}"));
            return ExitStatus::Failed;
        }
    };
    if let Some((notifier, interval)) =
        notifier.and_then(|n| n.watchdog_ping_interval().map(|interval| (n, interval)))
    {
        // On the runtime, so a runtime that stops running stops the pings: the service
        // manager then sees what happened. Dropped with the runtime.
        runtime.spawn(notifier.watchdog_pings(interval));
    }
    let status = runtime.block_on(runner.run(services));
    tracing::debug!("runtime: shutting down (bounded by {RUNTIME_SHUTDOWN_BOUND:?})");
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_BOUND);
    tracing::debug!("runtime: shut down");
    status
}

/// Under a service manager (`NOTIFY_SOCKET`): `READY=1` when `app: started` is logged, and
/// `STATUS=` for every step of the application's components. (`STOPPING=1` and the stop's
/// extensions come from the stop itself: see [`Edge::run`] and [`spawn_stop_deadline`].)
fn tell_the_service_manager(components: &Components, notifier: Arc<Notifier>) {
    components.observe(move |component, phase| match (component, phase) {
        ("app", Phase::Started) => notifier.send("READY=1\nSTATUS=running"),
        ("app", Phase::Stopping) => {}
        ("app", Phase::Stopped) => notifier.send("STATUS=stopped"),
        (_, Phase::Failed) => notifier.send(&format!("STATUS={component} failed")),
        (_, Phase::Starting) => notifier.send(&format!("STATUS=starting {component}")),
        (_, Phase::Stopping) => notifier.send(&format!("STATUS=stopping {component}")),
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
fn finish(status: ExitStatus) -> ! {
    if !exit::claim() {
        loop {
            std::thread::park();
        }
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

/// The forced exit of a process: the runner's account of it ([`runner::force_end`]), then
/// the exit event and the end. Runs on whichever thread forced it (the signal thread, the
/// deadline thread, or the runtime's own timer), so it works with a stuck runtime. Logging
/// never waits on stderr, so all of it is bounded: the hooks' own bounds (a killed worker's
/// reaping) and the log's [`logging::DRAIN_BOUND`].
fn install_force_handler(ctx: &ServiceContext) {
    let forcing = ctx.clone();
    ctx.shutdown.set_force_handler(move |reason: ForceReason| {
        let status = conclude(&forcing.shutdown, true);
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
/// sends it the bound when the stop begins); dropping every sender disarms it. The runner
/// has its own deadline on the runtime's timer; this one holds even if a service blocks
/// the runtime's thread by mistake. Under a service manager it also re-sends
/// `EXTEND_TIMEOUT_USEC` while the stop runs, never promising past the deadline.
fn spawn_stop_deadline(
    shutdown: Shutdown,
    notifier: Option<Arc<Notifier>>,
) -> std::io::Result<mpsc::Sender<Duration>> {
    let (orders, received) = mpsc::channel::<Duration>();
    std::thread::Builder::new()
        .name("stop-deadline".into())
        .spawn(move || {
            // Every sender dropped before the stop: nothing to watch.
            let Ok(timeout) = received.recv() else {
                return;
            };
            // Time the whole run spent stopped (Ctrl+Z) does not count against the stop.
            let mut deadline = Deadline::after(timeout);
            let mut extended_at: Option<Duration> = None;
            loop {
                // Time until the next extension is due, by the deadline's own count.
                let mut until_extension = Duration::MAX;
                if let Some(notifier) = &notifier {
                    let since = |at: Duration| at - deadline.left();
                    if extended_at.is_none_or(|at| since(at) >= notify::EXTEND_INTERVAL) {
                        notifier.send(&notify::extend_message(deadline.left()));
                        extended_at = Some(deadline.left());
                    }
                    let since_last = extended_at.map_or(Duration::ZERO, since);
                    until_extension = notify::EXTEND_INTERVAL.saturating_sub(since_last);
                }
                match deadline.slice(|slice| received.recv_timeout(slice.min(until_extension))) {
                    None => {
                        shutdown.force(ForceReason::StopTimeout(timeout));
                        return;
                    }
                    Some(Err(mpsc::RecvTimeoutError::Timeout)) => {}
                    // Disarmed: the stop is over.
                    Some(_) => return,
                }
            }
        })?;
    Ok(orders)
}

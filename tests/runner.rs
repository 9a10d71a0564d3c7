//! The runner as an embedder drives it: [`Runner`] in-process, with the signal source
//! injected (a test pushes signals through the context's `shutdown` handle at chosen moments
//! of a start or a stop) and the lifecycle history read from its `components`, on virtual
//! time (a 30 s stop deadline takes no real time).

use std::time::Duration;

use graceful::components::Phase::{self, *};
use graceful::{
    BoxFuture, ExitStatus, Runner, Service, ServiceContext, Settings, ShutdownSignal, StopReason,
};

type Hook = Box<dyn FnOnce(&ServiceContext) + Send>;

/// A service whose start and stop take 1 s (virtual) each; it may run a hook halfway
/// through its start or at the beginning of its stop, fail its start, leave a task running,
/// or never finish its stop.
struct Probe {
    name: &'static str,
    halfway: Option<Hook>,
    at_stop: Option<Hook>,
    fail: bool,
    stuck_stop: bool,
    leak_task: Option<tokio::sync::oneshot::Sender<()>>,
    stop_deadline: Option<Duration>,
}

fn probe(name: &'static str) -> Probe {
    Probe {
        name,
        halfway: None,
        at_stop: None,
        fail: false,
        stuck_stop: false,
        leak_task: None,
        stop_deadline: None,
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

    fn stop<'a>(&'a mut self, ctx: &'a ServiceContext) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            if let Some(hook) = self.at_stop.take() {
                hook(ctx);
            }
            if self.stuck_stop {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok(())
        })
    }

    fn stop_deadline(&self) -> Option<Duration> {
        self.stop_deadline
    }
}

fn settings(run_for: Option<Duration>) -> Settings {
    Settings {
        run_for,
        stop_timeout: Duration::from_secs(30),
        force_after: 3,
    }
}

/// Runs `services` to the end; returns the status and the lifecycle history.
async fn run(settings: Settings, services: Vec<Probe>) -> (ExitStatus, ServiceContext) {
    let runner = Runner::new(settings);
    let ctx = runner.context().clone();
    let services = services
        .into_iter()
        .map(|s| Box::new(s) as Box<dyn Service>)
        .collect();
    (runner.run(services).await, ctx)
}

fn steps(ctx: &ServiceContext) -> Vec<(String, Phase)> {
    ctx.components.history()
}

fn expect(history: &[(&str, Phase)]) -> Vec<(String, Phase)> {
    history.iter().map(|(n, p)| ((*n).to_owned(), *p)).collect()
}

fn signal(signal: ShutdownSignal) -> Hook {
    Box::new(move |ctx: &ServiceContext| ctx.shutdown.on_signal(signal))
}

/// The shield lesson: SIGINT in the middle of AsyncService1's start is delayed; both
/// services finish starting, and only then does the stop run, in reverse order.
#[tokio::test(start_paused = true)]
async fn signal_during_start_is_acted_on_after_every_service_started() {
    let mut first = probe("AsyncService1");
    first.halfway = Some(signal(ShutdownSignal::Interrupt));
    let mut second = probe("AsyncService2");
    second.halfway = Some(Box::new(|ctx: &ServiceContext| {
        assert!(ctx.shutdown.is_requested(), "the request is recorded");
        assert!(!ctx.shutdown.is_delivered(), "delivered in the middle of a start");
    }));
    let (status, ctx) = run(settings(None), vec![first, second]).await;
    assert_eq!(status, ExitStatus::Signalled(ShutdownSignal::Interrupt));
    assert_eq!(
        steps(&ctx),
        expect(&[
            ("app", Starting),
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
            ("app", Stopped),
        ])
    );
}

/// A failed start (which the reference does not handle) stops what had started, in
/// reverse, and fails the application.
#[tokio::test(start_paused = true)]
async fn failed_start_stops_what_had_started() {
    let mut third = probe("C");
    third.fail = true;
    let (status, ctx) = run(settings(None), vec![probe("A"), probe("B"), third, probe("D")]).await;
    assert_eq!(status, ExitStatus::Failed);
    assert_eq!(
        steps(&ctx),
        expect(&[
            ("app", Starting),
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
        ])
    );
}

/// The `_cancel_all_tasks` lesson: a task a service spawned and never stopped is found
/// and cancelled at the end, not left to the runtime's drop.
#[tokio::test(start_paused = true)]
async fn a_forgotten_task_is_cancelled_at_the_end() {
    let (dropped_tx, dropped_rx) = tokio::sync::oneshot::channel::<()>();
    let mut leaky = probe("A");
    leaky.leak_task = Some(dropped_tx);
    let (status, ctx) = run(settings(Some(Duration::from_secs(1))), vec![leaky]).await;
    // The task held the sender: cancelling it dropped the sender.
    assert!(dropped_rx.await.is_err(), "the leaked task is still running");
    assert_eq!(ctx.shutdown.reason(), Some(StopReason::RunForElapsed));
    assert_eq!(status, ExitStatus::Clean);
}

/// Escalation: while a stop is stuck, the third shutdown signal forces the exit; the run
/// returns at once, the stuck service is marked failed, and the status is the first
/// signal's (every signal counts, from the first).
#[tokio::test(start_paused = true)]
async fn the_third_signal_forces_a_stuck_stop() {
    let mut stuck = probe("A");
    stuck.stuck_stop = true;
    stuck.at_stop = Some(Box::new(|ctx: &ServiceContext| {
        ctx.shutdown.on_signal(ShutdownSignal::Terminate);
        ctx.shutdown.on_signal(ShutdownSignal::Hangup);
        assert!(
            ctx.shutdown.forced_reason().is_none(),
            "forced by the second signal"
        );
        ctx.shutdown.on_signal(ShutdownSignal::Interrupt);
    }));
    let started = tokio::time::Instant::now();
    let (status, ctx) = run(settings(Some(Duration::from_secs(1))), vec![stuck]).await;
    assert_eq!(status, ExitStatus::Signalled(ShutdownSignal::Terminate));
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(2),
        "waited past the third signal"
    );
    let history = steps(&ctx);
    assert!(history.contains(&("A".into(), Failed)), "{history:?}");
    assert!(!history.contains(&("A".into(), Stopped)), "{history:?}");
}

/// The stop's deadline, on virtual time: a stop that never ends is forced at exactly
/// `--stop-timeout`, and every unfinished component is marked failed.
#[tokio::test(start_paused = true)]
async fn a_stuck_stop_is_forced_at_the_deadline() {
    let mut stuck = probe("A");
    stuck.stuck_stop = true;
    let started = tokio::time::Instant::now();
    let (status, ctx) = run(settings(Some(Duration::from_secs(1))), vec![stuck, probe("B")]).await;
    // 2 s of start, 1 s of running, then the stop (B's 1 s, A's forever) is cut at 30 s.
    let elapsed = started.elapsed();
    assert_eq!(
        elapsed,
        Duration::from_secs(2 + 1 + 30),
        "forced at the wrong time"
    );
    assert_eq!(status, ExitStatus::Failed);
    let history = steps(&ctx);
    assert!(history.contains(&("B".into(), Stopped)), "{history:?}");
    assert!(history.contains(&("A".into(), Failed)), "{history:?}");
    assert!(history.contains(&("app".into(), Failed)), "{history:?}");
}

/// `--force-after 0`: signals during a stop are only counted, and the stop completes.
#[tokio::test(start_paused = true)]
async fn with_forcing_off_signals_during_the_stop_are_only_counted() {
    let mut slow = probe("A");
    slow.at_stop = Some(Box::new(|ctx: &ServiceContext| {
        for _ in 0..5 {
            ctx.shutdown.on_signal(ShutdownSignal::Interrupt);
        }
    }));
    let mut settings = settings(Some(Duration::from_secs(1)));
    settings.force_after = 0;
    let (status, ctx) = run(settings, vec![slow]).await;
    assert_eq!(status, ExitStatus::Signalled(ShutdownSignal::Interrupt));
    assert!(steps(&ctx).contains(&("A".into(), Stopped)));
    assert!(steps(&ctx).contains(&("app".into(), Stopped)));
}

/// A service whose stop panics is marked failed; the services before it still stop.
#[tokio::test(start_paused = true)]
async fn a_panicking_stop_fails_that_service_only() {
    let mut panicking = probe("B");
    panicking.at_stop = Some(Box::new(|_: &ServiceContext| panic!("injected")));
    let (status, ctx) = run(
        settings(Some(Duration::from_secs(1))),
        vec![probe("A"), panicking],
    )
    .await;
    assert_eq!(status, ExitStatus::Failed);
    let history = steps(&ctx);
    assert!(history.contains(&("B".into(), Failed)), "{history:?}");
    assert!(history.contains(&("A".into(), Stopped)), "{history:?}");
}

/// A deadline that is not reached changes nothing: the stop ends when it ends.
#[tokio::test(start_paused = true)]
async fn a_stop_within_its_deadline_is_a_clean_stop() {
    let mut bounded = probe("A");
    bounded.stop_deadline = Some(Duration::from_secs(5));
    let started = tokio::time::Instant::now();
    let (status, ctx) = run(settings(Some(Duration::from_secs(1))), vec![bounded]).await;
    assert_eq!(started.elapsed(), Duration::from_secs(1 + 1 + 1));
    assert_eq!(status, ExitStatus::Clean);
    assert!(steps(&ctx).contains(&("A".into(), Stopped)));
}

/// The whole stop's deadline still rules: a service deadline longer than what is left of
/// `--stop-timeout` does not extend it.
#[tokio::test(start_paused = true)]
async fn the_global_deadline_still_bounds_a_longer_service_deadline() {
    let mut stuck = probe("A");
    stuck.stuck_stop = true;
    stuck.stop_deadline = Some(Duration::from_secs(60));
    let mut settings = settings(Some(Duration::from_secs(1)));
    settings.stop_timeout = Duration::from_secs(10);
    let started = tokio::time::Instant::now();
    let (status, ctx) = run(settings, vec![stuck]).await;
    assert_eq!(started.elapsed(), Duration::from_secs(1 + 1 + 10));
    assert_eq!(status, ExitStatus::Failed);
    assert!(
        ctx.shutdown.forced_reason().is_some(),
        "not forced at --stop-timeout"
    );
}

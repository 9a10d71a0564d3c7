//! The runner in-process, read through its stop report (crate-private: an embedder sees it
//! only as the `event=stop-report` line), on virtual time. The runner's other promises are
//! checked through the public API in `tests/runner.rs`.

use std::time::Duration;

use super::*;
use crate::components::Phase::{self, *};
use crate::service::BoxFuture;

/// A service whose start and stop take 1 s (virtual) each; its stop may never finish, and
/// it may declare a stop deadline of its own.
struct Probe {
    name: &'static str,
    stuck_stop: bool,
    stop_deadline: Option<Duration>,
}

fn probe(name: &'static str) -> Probe {
    Probe {
        name,
        stuck_stop: false,
        stop_deadline: None,
    }
}

impl Service for Probe {
    fn name(&self) -> &'static str {
        self.name
    }

    fn start<'a>(&'a mut self, _ctx: &'a ServiceContext) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok(())
        })
    }

    fn stop<'a>(&'a mut self, _ctx: &'a ServiceContext) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
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

/// Runs `services` to the end; returns the status and the lifecycle history.
async fn run(run_for: Duration, services: Vec<Probe>) -> (ExitStatus, ServiceContext) {
    let runner = Runner::new(Settings {
        run_for: Some(run_for),
        stop_timeout: Duration::from_secs(30),
        force_after: 3,
    });
    let ctx = runner.context().clone();
    let services = services
        .into_iter()
        .map(|s| Box::new(s) as Box<dyn Service>)
        .collect();
    (runner.run(services).await, ctx)
}

fn expect(history: &[(&str, Phase)]) -> Vec<(String, Phase)> {
    history.iter().map(|(n, p)| ((*n).to_owned(), *p)).collect()
}

/// A service's own stop deadline: a stuck stop is cut at exactly its deadline, marked
/// failed, and the stop goes on with the next service, well inside `--stop-timeout`.
#[tokio::test(start_paused = true)]
async fn a_stuck_stop_is_cut_at_its_own_deadline_and_the_stop_goes_on() {
    let mut stuck = probe("B");
    stuck.stuck_stop = true;
    stuck.stop_deadline = Some(Duration::from_millis(500));
    let started = tokio::time::Instant::now();
    let (status, ctx) = run(Duration::from_secs(1), vec![probe("A"), stuck, probe("C")]).await;
    // 3 s of start, 1 s of running, then C's 1 s, B's 0.5 s deadline, A's 1 s.
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(3000 + 1000 + 1000 + 500 + 1000)
    );
    assert_eq!(status, ExitStatus::Failed, "a cut stop is a failed stop");
    assert!(ctx.shutdown.forced_reason().is_none(), "the exit was forced");
    let history = ctx.components.history();
    assert_eq!(
        history[history.len() - 8..],
        expect(&[
            ("app", Stopping),
            ("C", Stopping),
            ("C", Stopped),
            ("B", Stopping),
            ("B", Failed),
            ("A", Stopping),
            ("A", Stopped),
            ("app", Stopped),
        ])[..]
    );
    assert_eq!(
        ctx.stop_report().summary(),
        report::Summary {
            stop_ms: 2500,
            components: "C stopped 1000ms, B cut 500ms, A stopped 1000ms".into(),
            timed_out: "B".into(),
        }
    );
}

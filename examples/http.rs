//! The library carrying an HTTP service behind a load balancer (axum, on hyper and tokio):
//! readiness goes down first, the drain has a floor and a ceiling, and whatever the ceiling
//! cuts is named.
//!
//! ```text
//! cargo run --release --example http -- --listen 127.0.0.1:8080 --drain-min 5s --drain-max 20s
//! curl 127.0.0.1:8080/readyz                  # 200 "ready", 503 once a stop is asked for
//! curl '127.0.0.1:8080/work?ms=3000'          # answers after 3 s of "work"
//! curl -N 127.0.0.1:8080/events               # an event every 100 ms; `shutdown` at the end
//! ```
//!
//! The drain, from the first SIGTERM or SIGINT (each step is marked `DRAIN` below):
//! 1. at once, `/readyz` answers 503 (the load balancer stops routing here), and the edge
//!    tells the service manager `STOPPING=1`;
//! 2. for `--drain-min` nothing else changes, new connections included: requests routed
//!    before the balancer saw the 503 still arrive, and are served. A second signal ends
//!    this window early;
//! 3. then the listener closes (new connections are refused), keep-alive connections close
//!    after the request in hand, event streams send a last `shutdown` event and end, and
//!    every request begun is finished;
//! 4. at `--drain-max` after the signal, a request still running is cut and named
//!    (`event=request-cut`); a connection that still will not close is given up a moment
//!    later (the service's own stop deadline);
//! 5. the rest of the application stops after the server, in reverse order, and the
//!    process ends by the signal; the third signal forces the exit, as in every program.
//!
//! Why no preStop `sleep` is needed: step 2 is that sleep, inside the process, where it can
//! also be cut short. See docs/http-drain.md.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clap::{CommandFactory, Parser};
use futures_util::stream::{self, Stream};
use graceful::{BoxFuture, Edge, LogFormat, Service, ServiceContext, Settings, Shutdown};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::filter::LevelFilter;

/// How long a connection that will not close is waited for after `--drain-max`.
const GIVE_UP_AFTER_CUT: Duration = Duration::from_secs(1);

/// An HTTP service that drains as a load balancer needs.
#[derive(Parser, Debug)]
#[command(name = "http")]
struct Cli {
    /// Address to listen on (port 0: any free port, logged with `event=listening`)
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// How long to go on serving after the signal, readiness down (the balancer's window)
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    drain_min: Duration,
    /// When, after the signal, a request still running is cut
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    drain_max: Duration,
    /// Log lines for people (text) or tools (json)
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

fn main() {
    let edge = Edge::begin();
    let cli = Cli::parse();
    // An hour bounds the sums of durations below, so no value overflows an instant.
    let problem = if cli.drain_min > cli.drain_max {
        Some("--drain-min must not exceed --drain-max")
    } else if cli.drain_max > Duration::from_secs(3600) {
        Some("--drain-max must not exceed 1h")
    } else {
        None
    };
    if let Some(message) = problem {
        Cli::command()
            .error(clap::error::ErrorKind::ArgumentConflict, message)
            .exit();
    }
    let server = HttpServer {
        listen: cli.listen,
        drain_min: cli.drain_min,
        drain_max: cli.drain_max,
        drain: None,
    };
    // The server's own bound, plus a moment for the rest: past it the edge forces the exit.
    let settings = Settings {
        stop_timeout: cli.drain_max + GIVE_UP_AFTER_CUT + Duration::from_secs(1),
        ..Settings::default()
    };
    edge.log(cli.log_format, LevelFilter::INFO)
        .settings(settings)
        .run(vec![Box::new(server)])
}

/// The service: a server task, and a drain task that moves it through the steps.
struct HttpServer {
    listen: SocketAddr,
    drain_min: Duration,
    drain_max: Duration,
    drain: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Service for HttpServer {
    fn name(&self) -> &'static str {
        "HttpServer"
    }

    fn start<'a>(&'a mut self, ctx: &'a ServiceContext) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let listener = TcpListener::bind(self.listen)
                .await
                .with_context(|| format!("cannot listen on {}", self.listen))?;
            let address = listener.local_addr().unwrap_or(self.listen);
            tracing::info!(event = "listening", %address, "HttpServer: listening on {address}");
            let (close, cut) = (CancellationToken::new(), CancellationToken::new());
            let app = Router::new()
                .route("/healthz", get(|| async { "ok\n" }))
                .route("/readyz", get(readyz))
                .route("/work", get(work))
                .route("/events", get(events))
                .with_state(Drain {
                    shutdown: ctx.shutdown.clone(),
                    close: close.clone(),
                })
                .layer(middleware::from_fn_with_state(cut.clone(), cut_at_drain_max));
            // Once `close` fires, axum drops the listener, tells each keep-alive connection to
            // close after the request in hand, and returns when every connection has ended.
            let serve = axum::serve(Logged(Some(listener)), app)
                .with_graceful_shutdown(close.clone().cancelled_owned());
            let server = ctx.spawn("HttpServer", async move { serve.await });
            let bounds = (self.drain_min, self.drain_max);
            let timeline = drain(ctx.shutdown.clone(), bounds, close, cut, server);
            self.drain = Some(ctx.spawn("HttpServer drain", timeline));
            Ok(())
        })
    }

    /// The drain's steps run on their own clock, from the signal; the stop waits for them.
    fn stop<'a>(&'a mut self, _ctx: &'a ServiceContext) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            match self.drain.take() {
                Some(drain) => drain.await.context("the drain task")?,
                None => Ok(()),
            }
        })
    }

    fn stop_deadline(&self) -> Option<Duration> {
        // A client that never reads its answer keeps its connection open past any cut.
        Some(self.drain_max + GIVE_UP_AFTER_CUT)
    }
}

/// The drain's timeline, from the signal, until the server has finished.
async fn drain(
    shutdown: Shutdown,
    (min, max): (Duration, Duration),
    close: CancellationToken,
    cut: CancellationToken,
    mut server: JoinHandle<std::io::Result<()>>,
) -> anyhow::Result<()> {
    let mut signals = shutdown.signal_count();
    shutdown.delivered().await;
    let signalled = Instant::now();
    // DRAIN 2: serve on, readiness down, for --drain-min or until a second signal.
    let floor = humantime::format_duration(min);
    tracing::info!(
        event = "draining",
        "HttpServer: not ready; serving on for --drain-min {floor}"
    );
    tokio::select! {
        () = tokio::time::sleep(min) => {}
        _ = signals.wait_for(|&count| count >= 2) => {
            tracing::info!(event = "drain-min-skipped", "HttpServer: a second signal; closing the listener now");
        }
    }
    // DRAIN 3: close the listener, end streams and keep-alives, finish what was begun.
    close.cancel();
    // DRAIN 4: cut what is still running at --drain-max.
    tokio::select! {
        finished = &mut server => return Ok(finished.context("the server task")??),
        () = tokio::time::sleep_until(signalled + max) => cut.cancel(),
    }
    Ok(server.await.context("the server task")??)
}

/// What the handlers need of the drain.
#[derive(Clone)]
struct Drain {
    shutdown: Shutdown,
    /// Fired when the listener closes: event streams send their last event.
    close: CancellationToken,
}

async fn readyz(State(drain): State<Drain>) -> (StatusCode, &'static str) {
    // DRAIN 1: down from the moment a stop is requested (the signal thread sets it, before
    // any task runs), even while a start holds the stop back.
    if drain.shutdown.is_requested() {
        (StatusCode::SERVICE_UNAVAILABLE, "stopping\n")
    } else {
        (StatusCode::OK, "ready\n")
    }
}

#[derive(serde::Deserialize)]
struct Work {
    ms: u64,
}

async fn work(Query(work): Query<Work>) -> String {
    tokio::time::sleep(Duration::from_millis(work.ms)).await;
    format!("worked {}ms\n", work.ms)
}

async fn events(State(drain): State<Drain>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let ticks = stream::unfold((0_u64, Some(drain.close)), |(tick, close)| async move {
        let close = close?;
        tokio::select! {
            biased;
            // DRAIN 3: the last event, then the end of the stream (and of its connection).
            () = close.cancelled() => Some((Event::default().event("shutdown").data("server stopping"), (tick, None))),
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                Some((Event::default().data(tick.to_string()), (tick + 1, Some(close))))
            }
        }
    });
    Sse::new(stream::StreamExt::map(ticks, Ok))
}

/// Every request: answered as usual, unless it is still running at `--drain-max`.
async fn cut_at_drain_max(State(cut): State<CancellationToken>, request: Request, next: Next) -> Response {
    let path = request.uri().to_string();
    let began = Instant::now();
    tokio::select! {
        response = next.run(request) => response,
        () = cut.cancelled() => {
            // DRAIN 4: named, and answered: the client learns it was cut, not lost.
            let ran_ms = u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX);
            tracing::warn!(event = "request-cut", path, ran_ms, "HttpServer: {path} cut at --drain-max after {ran_ms}ms");
            (StatusCode::SERVICE_UNAVAILABLE, "cut: the server is stopping\n").into_response()
        }
    }
}

/// The listener, which says when it is closed: from that moment the kernel refuses new
/// connections (axum drops it as soon as its graceful shutdown begins).
struct Logged(Option<TcpListener>);

impl Drop for Logged {
    fn drop(&mut self) {
        // Closed first, then said: whoever reads the line finds the port refusing.
        drop(self.0.take());
        tracing::info!(
            event = "listener-closed",
            "HttpServer: listener closed; finishing what was begun"
        );
    }
}

impl axum::serve::Listener for Logged {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        while let Some(listener) = &self.0 {
            match listener.accept().await {
                Ok(connection) => return connection,
                // Out of descriptors, or a connection reset before it was accepted: the
                // next one may do, after a pause that lets descriptors free up.
                Err(error) => {
                    tracing::warn!("HttpServer: accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        std::future::pending().await
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        let listener = self.0.as_ref().ok_or(std::io::ErrorKind::NotConnected)?;
        listener.local_addr()
    }
}

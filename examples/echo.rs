//! The runner embedded in a program of its own: a TCP echo server whose open connections
//! drain at the stop.
//!
//! ```text
//! cargo run --example echo                 # listens on 127.0.0.1:7007
//! nc 127.0.0.1 7007                        # type lines: they come back
//! ^C (in the server's terminal)            # each open connection finishes the line in
//!                                          # hand, is told goodbye and closed; then exit
//! ```
//!
//! What to watch for, lesson by lesson:
//! - **the shield**: a Ctrl+C while the server starts is delayed until it listens, then the
//!   stop runs at once (the runner does this; the service does nothing special);
//! - **ordered, bounded stop**: the listener closes first (no new connection is accepted),
//!   then every open connection drains: the line it is echoing is finished, the client is
//!   told, the socket closed. A connection still open after `--drain` is cut, and said so;
//! - **tracked tasks**: every connection is a task spawned through the runner, so one the
//!   stop forgot would be found and cancelled, never silently dropped;
//! - **a thin edge**: this `main` sets up logging and signal intake, runs the [`Runner`] on a
//!   runtime of its own, and ends the process with [`graceful::app::finish`] (the exit event,
//!   then the end by the same signal: a shell sees 130 after a Ctrl+C).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use graceful::logging::LogFormat;
use graceful::runner::{Runner, Settings};
use graceful::service::{BoxFuture, Service, ServiceContext};
use graceful::time_scale::TimeScale;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing_subscriber::filter::LevelFilter;

/// A TCP echo server whose open connections drain when it stops.
#[derive(Parser, Debug)]
struct Cli {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:7007")]
    listen: SocketAddr,
    /// How long open connections may take to drain at the stop
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    drain: Duration,
    /// Log lines for people (text) or tools (json)
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

fn main() {
    graceful::signals::block_until_intake();
    let cli = Cli::parse();
    if let Err(error) = graceful::logging::init("main", cli.log_format, LevelFilter::DEBUG) {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
    let runner = Runner::new(Settings {
        run_for: None,
        // The drain's bound, plus a moment: past it the runner forces the exit.
        stop_timeout: cli.drain + Duration::from_secs(2),
        force_after: 3,
        time_scale: TimeScale::new(1.0),
        fail_start: None,
    });
    // The signal source: anything that calls `on_signal`. Here, the real signals.
    let shutdown = runner.shutdown();
    if let Err(error) = graceful::signals::install(move |signal| shutdown.on_signal(signal)) {
        tracing::error!(cause = %error, "cannot install the signal handlers");
        graceful::app::finish(graceful::exit::ExitStatus::Failed);
    }
    let echo = EchoServer {
        listen: cli.listen,
        drain: cli.drain,
        running: None,
    };
    let status = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(runner.run(vec![Box::new(echo)])),
        Err(error) => {
            tracing::error!(cause = %error, "cannot build the runtime");
            graceful::exit::ExitStatus::Failed
        }
    };
    graceful::app::finish(status)
}

/// The service: a listener, and a task per open connection.
struct EchoServer {
    listen: SocketAddr,
    drain: Duration,
    running: Option<Running>,
}

struct Running {
    /// Cancelled at the stop: the accept loop ends, and every connection starts draining.
    stop: CancellationToken,
    acceptor: JoinHandle<()>,
    connections: TaskTracker,
}

impl Service for EchoServer {
    fn name(&self) -> &'static str {
        "EchoServer"
    }

    fn start<'a>(&'a mut self, ctx: &'a ServiceContext) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let listener = TcpListener::bind(self.listen)
                .await
                .with_context(|| format!("cannot listen on {}", self.listen))?;
            tracing::info!("EchoServer: listening on {}", self.listen);
            let stop = CancellationToken::new();
            let connections = TaskTracker::new();
            let acceptor = ctx.spawn(
                "EchoServer accept loop",
                accept(listener, stop.clone(), connections.clone(), Arc::new(ctx.clone())),
            );
            self.running = Some(Running {
                stop,
                acceptor,
                connections,
            });
            Ok(())
        })
    }

    fn stop<'a>(&'a mut self, _ctx: &'a ServiceContext) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let Some(running) = self.running.take() else {
                return Ok(());
            };
            running.stop.cancel();
            // The listener first: once this returns, no connection is accepted any more.
            let _ = running.acceptor.await;
            running.connections.close();
            let open = running.connections.len();
            tracing::info!("EchoServer: listener closed; waiting for {open} connection(s) still draining");
            if tokio::time::timeout(self.drain, running.connections.wait())
                .await
                .is_err()
            {
                // Their tasks are tracked by the runner, which cancels what is left and says so.
                anyhow::bail!(
                    "{} connection(s) still open after {:?}",
                    running.connections.len(),
                    self.drain
                );
            }
            Ok(())
        })
    }
}

async fn accept(
    listener: TcpListener,
    stop: CancellationToken,
    connections: TaskTracker,
    ctx: Arc<ServiceContext>,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tracing::info!("EchoServer: {peer} connected");
                    let task = connections.track_future(serve(stream, peer, stop.clone()));
                    ctx.spawn(format!("EchoServer connection {peer}"), task);
                }
                Err(error) => tracing::warn!("EchoServer: accept failed: {error}"),
            },
        }
    }
}

/// Echoes lines until the client leaves or the stop begins; at the stop, the line in hand
/// is finished, the client told, the socket closed.
async fn serve(stream: TcpStream, peer: SocketAddr, stop: CancellationToken) {
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader).lines();
    loop {
        // Cancel-safe: `next_line` loses nothing when the stop wins the race.
        let line = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            line = lines.next_line() => line,
        };
        match line {
            Ok(Some(line)) => {
                // The line in hand is always finished, even if the stop begins meanwhile.
                if writer.write_all(format!("{line}\n").as_bytes()).await.is_err() {
                    return;
                }
            }
            Ok(None) | Err(_) => {
                tracing::info!("EchoServer: {peer} left");
                return;
            }
        }
    }
    let _ = writer.write_all(b"server stopping, goodbye\n").await;
    let _ = writer.shutdown().await;
    tracing::info!("EchoServer: {peer} drained and closed");
}

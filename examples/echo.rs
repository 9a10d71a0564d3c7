//! The library embedded in a program of its own: a TCP echo server whose open connections
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
//! - **the whole edge in one call**: `main` is [`Edge::begin`] and [`Edge::run`]; the signal
//!   intake, the forced exit, the stop's deadline, systemd notify, the PID 1 reaper and the
//!   end by the same signal come with it (a shell sees 130 after a Ctrl+C);
//! - **the shield**: a Ctrl+C while the server starts is delayed until it listens, then the
//!   stop runs at once (the runner does this; the service does nothing special);
//! - **ordered, bounded stop**: the listener closes first (no new connection is accepted),
//!   then every open connection drains: the line it is echoing is finished, the client is
//!   told, the socket closed. A connection still open after `--drain` is cut, and said so;
//! - **tracked tasks**: every connection is a task spawned through the runner, so one the
//!   stop forgot would be found and cancelled, never silently dropped;
//! - **bounded input**: a line longer than [`MAX_LINE`] is dropped, and said so, instead of
//!   growing in memory for as long as the client sends.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use graceful::{BoxFuture, Edge, LogFormat, Service, ServiceContext, Settings};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing_subscriber::filter::LevelFilter;

/// The longest line echoed; a longer one is dropped and the client told.
const MAX_LINE: usize = 64 * 1024;

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
    let edge = Edge::begin();
    let cli = Cli::parse();
    let echo = EchoServer {
        listen: cli.listen,
        drain: cli.drain,
        running: None,
    };
    // The drain's bound, plus a moment: past it the edge forces the exit.
    let settings = Settings {
        stop_timeout: cli.drain + Duration::from_secs(2),
        ..Settings::default()
    };
    edge.log(cli.log_format, LevelFilter::DEBUG)
        .settings(settings)
        .run(vec![Box::new(echo)])
}

/// The service: a listener, and a task per open connection.
struct EchoServer {
    listen: SocketAddr,
    drain: Duration,
    running: Option<Running>,
}

struct Running {
    /// Cancelled at the stop: every connection starts draining.
    stop: CancellationToken,
    /// Cancelled at the stop, first: the accept loop ends and drops the listener.
    close_listener: CancellationToken,
    acceptor: tokio::task::JoinHandle<()>,
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
            let address = listener.local_addr().unwrap_or(self.listen);
            tracing::info!(event = "listening", %address, "EchoServer: listening on {address}");
            let (stop, close_listener) = (CancellationToken::new(), CancellationToken::new());
            let connections = TaskTracker::new();
            let acceptor = ctx.spawn(
                "EchoServer accept loop",
                accept(
                    listener,
                    close_listener.clone(),
                    stop.clone(),
                    connections.clone(),
                    ctx.clone(),
                ),
            );
            self.running = Some(Running {
                stop,
                close_listener,
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
            // The listener first: once the accept loop has returned, it is closed.
            running.close_listener.cancel();
            let _ = running.acceptor.await;
            running.connections.close();
            let open = running.connections.len();
            tracing::info!(
                event = "listener-closed",
                open,
                "EchoServer: listener closed; draining {open} connection(s)"
            );
            running.stop.cancel();
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
    close: CancellationToken,
    stop: CancellationToken,
    connections: TaskTracker,
    ctx: ServiceContext,
) {
    loop {
        tokio::select! {
            () = close.cancelled() => return,
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
    // At most MAX_LINE + 1 bytes of one line are ever held: past that it cannot be echoed.
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        // Cancel-safe: what `read_until` took stays in `line` if the stop wins the race,
        // and it is said below.
        let mut limited = (&mut reader).take(MAX_LINE as u64 + 1);
        let read = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            read = limited.read_until(b'\n', &mut line) => read,
        };
        match read {
            Ok(0) | Err(_) => {
                if !line.is_empty() {
                    tracing::info!(event = "line-dropped", peer = %peer, bytes = line.len(), "EchoServer: {peer} left mid-line; dropped its {} byte(s)", line.len());
                }
                tracing::info!("EchoServer: {peer} left");
                return;
            }
            Ok(_) if !line.ends_with(b"\n") && line.len() > MAX_LINE => {
                tracing::warn!(event = "line-dropped", peer = %peer, bytes = line.len(), "EchoServer: {peer} sent a line over {MAX_LINE} bytes; dropped it");
                if !skip_rest_of_line(&mut reader).await
                    || writer.write_all(b"line too long, dropped\n").await.is_err()
                {
                    return;
                }
            }
            // The line in hand is always finished, even if the stop begins meanwhile.
            Ok(_) => {
                if !line.ends_with(b"\n") {
                    line.push(b'\n');
                }
                if writer.write_all(&line).await.is_err() {
                    return;
                }
            }
        }
    }
    if !line.is_empty() {
        tracing::info!(event = "line-dropped", peer = %peer, bytes = line.len(), "EchoServer: {peer} was mid-line at the stop; dropped its {} byte(s)", line.len());
    }
    let _ = writer.write_all(b"server stopping, goodbye\n").await;
    let _ = writer.shutdown().await;
    tracing::info!("EchoServer: {peer} drained and closed");
}

/// Reads and discards up to the end of the current line; `false` if the client left.
async fn skip_rest_of_line(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> bool {
    loop {
        let buffered = match reader.fill_buf().await {
            Ok([]) | Err(_) => return false,
            Ok(buffered) => buffered,
        };
        match buffered.iter().position(|&b| b == b'\n') {
            Some(end) => {
                reader.consume(end + 1);
                return true;
            }
            None => {
                let all = buffered.len();
                reader.consume(all);
            }
        }
    }
}

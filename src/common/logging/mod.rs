//! Logging: the reference's columns for people, JSON lines for tools, one writer per process.
//!
//! Three properties matter more than looks:
//! - **Logging never blocks the lifecycle.** A line goes to a bounded in-memory queue and one
//!   thread writes it (`queue.rs`); a stalled stderr costs dropped lines (counted, and the
//!   count logged once stderr moves), never a stalled signal, stop or forced exit.
//! - **One stream for the whole run.** Workers write their lines into a pipe to the main
//!   process, which cuts them into whole lines ([`WholeLines`]) and passes each to its own
//!   queue ([`forward`]), so stderr has one writer: a worker killed mid-line can never
//!   leave half a line with another glued to it.
//! - **The exit event is the last line.** [`write_final`] queues it and seals the queue: a
//!   thread that logs a moment later (a task racing the exit) writes nothing, and
//!   the end of the process ([`crate::Edge`]) waits for the writer, with a bound, before the process ends.

mod format;
mod lines;
mod queue;
mod shedding;

pub use lines::WholeLines;

use std::cell::Cell;
use std::io::IsTerminal;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use format::{FieldMap, LineFormat};
use queue::LogQueue;
use shedding::Priority;

/// How long the end of a process waits for its log to be written. Past it (stderr stalled)
/// the process ends anyway, and what was still queued is lost.
pub const DRAIN_BOUND: Duration = Duration::from_secs(1);

/// How lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "demo", derive(clap::ValueEnum))]
pub enum LogFormat {
    /// `time | process | thread | target | level | message`, coloured on a terminal.
    Text,
    /// One JSON object per line with the keys tools read (see the README, "Logs").
    Json,
}

struct Logger {
    queue: Arc<LogQueue>,
    format: LineFormat,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

thread_local! {
    static FINAL_EVENT: Cell<bool> = const { Cell::new(false) };
}

/// Installs the global subscriber and starts the log writer for this process. `RUST_LOG`,
/// when set, overrides `level`; an invalid `RUST_LOG` is reported as a warning event
/// (`event=invalid-rust-log`) and `level` is used.
pub fn init(process: &str, format: LogFormat, level: LevelFilter) -> Result<(), LoggingError> {
    let line_format = LineFormat {
        process: process.to_owned(),
        pid: std::process::id(),
        format,
        colour: format == LogFormat::Text && std::io::stderr().is_terminal(),
    };
    let notice_format = line_format.clone();
    let (queue, writer_error) = LogQueue::start(Box::new(move |dropped| {
        notice_format.warning(
            format!("log: {dropped} lines dropped while stderr was not taking them"),
            vec![("event", "log-dropped".into()), ("dropped", dropped.into())],
        )
    }));
    if LOGGER
        .set(Logger {
            queue,
            format: line_format.clone(),
        })
        .is_err()
    {
        return Err(LoggingError::AlreadyInitialised);
    }
    let lines = tracing_subscriber::fmt::layer()
        .event_format(line_format)
        .with_writer(ToQueue);
    // Without RUST_LOG, a plain per-target filter: EnvFilter's directive machinery is only
    // paid for when someone asks for it. A bad RUST_LOG is refused whole (parse_lossy would
    // print plain text to stderr, breaking a JSON stream) and reported once logging runs.
    let mut invalid_directives = None;
    let env_filter = match std::env::var("RUST_LOG") {
        Ok(directives) => match EnvFilter::builder()
            .with_default_directive(level.into())
            .parse(&directives)
        {
            Ok(filter) => Some(filter),
            Err(error) => {
                invalid_directives = Some((directives, error));
                None
            }
        },
        Err(_) => None,
    };
    let targets = env_filter.is_none().then(|| {
        Targets::new()
            .with_default(level)
            .with_target("lifecycle", lifecycle_floor(level))
    });
    tracing_subscriber::registry()
        .with(lines)
        .with(env_filter)
        .with(targets)
        .try_init()
        .map_err(LoggingError::Subscriber)?;
    if let Some(error) = writer_error {
        tracing::warn!(
            event = "log-writer-unavailable",
            cause = %error,
            "log: cannot start thread 'log-writer' ({error}); writing lines directly, so a stalled stderr can block"
        );
    }
    if let Some((directives, error)) = invalid_directives {
        tracing::warn!(
            event = "invalid-rust-log",
            directives,
            cause = %error,
            "log: RUST_LOG is invalid ({error}); using --log-level instead"
        );
    }
    Ok(())
}

/// Lifecycle events (target `lifecycle`) are the contract tools read: a quieter
/// `--log-level` keeps them, down to info; only `off` (or RUST_LOG) removes them.
fn lifecycle_floor(level: LevelFilter) -> LevelFilter {
    if level == LevelFilter::OFF {
        level
    } else {
        level.max(LevelFilter::INFO)
    }
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// [`init`] was already called in this process.
    #[error("logging was already initialised")]
    AlreadyInitialised,
    /// Another global subscriber was already set.
    #[error("failed to install the log subscriber")]
    Subscriber(#[source] tracing_subscriber::util::TryInitError),
}

/// Passes on one whole line (without its newline) that another process of the run (a
/// worker) wrote, so that the run's stderr has one writer. Queued, never waiting for
/// stderr. With JSON logs, a line that is not a JSON object (a worker's stray text) is
/// wrapped in one, so every line stays JSON.
pub fn forward(from: &str, line: &[u8]) {
    let Some(logger) = LOGGER.get() else {
        return;
    };
    if logger.format.format == LogFormat::Json && !looks_like_json_object(line) {
        let text = String::from_utf8_lossy(line);
        logger.queue.push(
            Priority::Vital,
            logger.format.warning(
                format!("{from} wrote a line that is not a log event: {}", text.trim_end()),
                vec![("event", "stray-output".into()), ("component", from.into())],
            ),
        );
        return;
    }
    logger.queue.push(Priority::of_line(line), [line, b"\n"].concat());
}

/// Whether `line` is one whole JSON object: parsed, not guessed from its first and last
/// bytes, so that two fragments glued together can never pass for a line.
fn looks_like_json_object(line: &[u8]) -> bool {
    line.starts_with(b"{") && serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok()
}

/// An error as a person reads it: its message, then each source's, joined by ": " (what
/// anyhow's `{:#}` prints), for a `cause` field or a message.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let causes = std::iter::successors(Some(error), |cause| cause.source());
    causes.map(ToString::to_string).collect::<Vec<_>>().join(": ")
}

/// Waits until every line logged so far was written, at most `bound`; returns whether it
/// was. A worker calls it before it exits, so its last lines reach its parent.
pub fn flush(bound: Duration) -> bool {
    LOGGER.get().is_none_or(|logger| logger.queue.flush(bound))
}

/// Logs one last event through `emit` and seals the log: nothing after it is written. Then
/// waits, at most [`DRAIN_BOUND`], for the writer to write everything up to that event.
pub fn write_final(emit: impl FnOnce()) {
    FINAL_EVENT.set(true);
    emit();
    FINAL_EVENT.set(false);
    if let Some(logger) = LOGGER.get() {
        // If the event was filtered out, seal anyway.
        logger.queue.seal();
        logger.queue.finish(DRAIN_BOUND);
    }
}

/// Whether logging was set up in this process.
pub fn is_initialised() -> bool {
    LOGGER.get().is_some()
}

/// The writer tracing-subscriber hands each formatted event to: the queue, with the
/// event's priority, for shedding when stderr cannot take every line.
struct QueueWriter(Priority);

/// What makes a [`QueueWriter`] for each event.
struct ToQueue;

impl<'a> MakeWriter<'a> for ToQueue {
    type Writer = QueueWriter;
    fn make_writer(&'a self) -> Self::Writer {
        QueueWriter(Priority::Normal)
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        QueueWriter(Priority::of_event(*meta.level(), meta.target()))
    }
}

impl std::io::Write for QueueWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf).map(|()| buf.len())
    }

    /// tracing-subscriber formats an event into one buffer and writes it with one call.
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if let Some(logger) = LOGGER.get() {
            if FINAL_EVENT.get() {
                logger.queue.push_last(buf);
            } else {
                logger.queue.push(self.0, buf.to_vec());
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LineFormat {
    /// A warning of the logging machinery's own (not from a tracing event), from thread
    /// `log-writer` with target `logging`.
    fn warning(&self, message: String, fields: Vec<(&str, serde_json::Value)>) -> Vec<u8> {
        let fields = FieldMap {
            message,
            rest: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        };
        self.line(Level::WARN, "logging", "log-writer", fields)
            .into_bytes()
    }
}

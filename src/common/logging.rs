//! Logging: the reference's columns for people, JSON lines for tools, one writer for both.
//!
//! Three properties matter more than looks:
//! - **One event, one `write`.** tracing-subscriber formats an event into a buffer and
//!   writes it with one `write_all`; stderr is unbuffered, so a line below the pipe's
//!   atomic size (4 KiB) is never split or interleaved with a worker's line.
//! - **The exit event is the last line.** [`write_final`] writes it and seals the writer:
//!   a thread that logs a moment later (a task racing the exit) writes nothing.
//! - **Every process says who it is.** `process` (`main`, `worker-1`, ...), `pid` and the
//!   thread's name are on every line, so the interleaved output of a run can be sorted out.

use crate::sync::LockUnpoisoned;
use std::cell::Cell;
use std::fmt::{self, Write as _};
use std::io::IsTerminal;
use std::sync::Mutex;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// How lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `time | process | thread | target | level | message`, coloured on a terminal.
    Text,
    /// One JSON object per line with the keys tools read (see the README, "Logs").
    Json,
}

/// Installs the global subscriber for this process. `RUST_LOG`, when set, overrides `level`.
pub fn init(process: &str, format: LogFormat, level: LevelFilter) -> Result<(), LoggingError> {
    let line_format = LineFormat {
        process: process.to_owned(),
        pid: std::process::id(),
        format,
        colour: format == LogFormat::Text && std::io::stderr().is_terminal(),
    };
    let lines = tracing_subscriber::fmt::layer()
        .event_format(line_format)
        .with_writer(GatedStderr);
    // Without RUST_LOG, a plain per-target filter: EnvFilter's directive machinery is only
    // paid for (code, memory, in every worker process too) when someone asks for it.
    let (env_filter, targets) = match std::env::var("RUST_LOG") {
        Ok(directives) => (
            Some(
                EnvFilter::builder()
                    .with_default_directive(level.into())
                    .parse_lossy(directives),
            ),
            None,
        ),
        Err(_) => (
            None,
            Some(
                Targets::new()
                    .with_default(level)
                    .with_target("lifecycle", lifecycle_floor(level)),
            ),
        ),
    };
    tracing_subscriber::registry()
        .with(lines)
        .with(env_filter)
        .with(targets)
        .try_init()
        .map_err(|e| LoggingError(e.to_string()))
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

/// The global subscriber could not be installed (one was already set).
#[derive(Debug, thiserror::Error)]
#[error("failed to install the log subscriber: {0}")]
pub struct LoggingError(String);

/// Writes one last event through `emit` and seals the log: nothing after it is written.
///
/// The gate's lock is held from the check to the write, so no line can slip in between the
/// final event and the seal.
pub fn write_final(emit: impl FnOnce()) {
    FINAL_EVENT.with(|f| f.set(true));
    emit();
    FINAL_EVENT.with(|f| f.set(false));
    // If the event was filtered out, seal anyway.
    GATE.lock_unpoisoned().sealed = true;
}

struct Gate {
    sealed: bool,
}

static GATE: Mutex<Gate> = Mutex::new(Gate { sealed: false });

thread_local! {
    static FINAL_EVENT: Cell<bool> = const { Cell::new(false) };
}

/// stderr behind the seal of [`write_final`].
struct GatedStderr;

impl<'a> MakeWriter<'a> for GatedStderr {
    type Writer = GatedStderr;
    fn make_writer(&'a self) -> Self::Writer {
        GatedStderr
    }
}

impl std::io::Write for GatedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf).map(|()| buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let mut gate = GATE.lock_unpoisoned();
        if gate.sealed {
            return Ok(());
        }
        // A closed stderr (the terminal went away with SIGHUP) must not stop the shutdown.
        let _ = std::io::stderr().write_all(buf);
        if FINAL_EVENT.with(Cell::get) {
            gate.sealed = true;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct LineFormat {
    process: String,
    pid: u32,
    format: LogFormat,
    colour: bool,
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = FieldMap::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let now = humantime::format_rfc3339_millis(std::time::SystemTime::now());
        let thread = std::thread::current();
        let thread_name = thread
            .name()
            .map_or_else(|| format!("{:?}", thread.id()), str::to_owned);
        match self.format {
            LogFormat::Json => {
                let mut line = Map::new();
                line.insert("timestamp".into(), now.to_string().into());
                line.insert("level".into(), meta.level().as_str().into());
                line.insert("target".into(), meta.target().into());
                line.insert("process".into(), self.process.clone().into());
                line.insert("pid".into(), self.pid.into());
                line.insert("thread".into(), thread_name.into());
                line.insert("message".into(), fields.message.into());
                for (key, value) in fields.rest {
                    // An event field never overwrites the line's own keys (`pid`, ...).
                    let key = if line.contains_key(&key) {
                        format!("field.{key}")
                    } else {
                        key
                    };
                    line.insert(key, value);
                }
                writeln!(writer, "{}", Value::Object(line))
            }
            LogFormat::Text => {
                let level = meta.level();
                let (on, off) = match (self.colour, *level) {
                    (false, _) => ("", ""),
                    (true, Level::ERROR) => ("\x1b[31m", "\x1b[0m"),
                    (true, Level::WARN) => ("\x1b[33m", "\x1b[0m"),
                    (true, Level::INFO) => ("\x1b[32m", "\x1b[0m"),
                    (true, Level::DEBUG) => ("\x1b[34m", "\x1b[0m"),
                    (true, Level::TRACE) => ("\x1b[35m", "\x1b[0m"),
                };
                let target = meta.target().rsplit("::").next().unwrap_or_default();
                write!(
                    writer,
                    "{now} | {:<9} | {thread_name:<14} | {target:<9} | {on}{:<5}{off} | {}",
                    self.process,
                    level.as_str(),
                    fields.message
                )?;
                // component and phase are already in the message ("AsyncService1: started").
                let extra: String = fields
                    .rest
                    .iter()
                    .filter(|(k, v)| k != "component" && k != "phase" && !mentions(&fields.message, v))
                    .fold(String::new(), |mut s, (k, v)| {
                        let _ = match v {
                            Value::String(text) => write!(s, " {k}={text}"),
                            other => write!(s, " {k}={other}"),
                        };
                        s
                    });
                if extra.is_empty() {
                    writeln!(writer)
                } else if self.colour {
                    writeln!(writer, "  \x1b[2m{}\x1b[0m", extra.trim_start())
                } else {
                    writeln!(writer, "  {}", extra.trim_start())
                }
            }
        }
    }
}

/// Whether the message already says `value` (then the text format does not repeat it).
fn mentions(message: &str, value: &Value) -> bool {
    match value {
        Value::String(text) => message.contains(text.as_str()),
        Value::Number(number) => message.contains(&number.to_string()),
        _ => false,
    }
}

/// An event's fields in the order they were written, `message` apart.
#[derive(Default)]
struct FieldMap {
    message: String,
    rest: Vec<(String, Value)>,
}

impl FieldMap {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
        } else {
            self.rest.push((field.name().to_owned(), value));
        }
    }
}

impl Visit for FieldMap {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        // `{:#}`-style chain: "outer: inner: root".
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(cause) = source {
            let _ = write!(text, ": {cause}");
            source = cause.source();
        }
        self.put(field, text.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

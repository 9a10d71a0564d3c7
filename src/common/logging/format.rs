//! How a line looks: the reference's columns for people, one JSON object for tools.
//!
//! Every line says who wrote it: `process` (`main`, `worker-1`, ...), `pid` and the thread's
//! name, so the merged output of a run can be sorted out. The same formatter builds the
//! writer's own notices (lines dropped, a worker's stray text), so they look like any other.

use std::fmt::{self, Write as _};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::LogFormat;

/// The line format of this process.
#[derive(Clone)]
pub(super) struct LineFormat {
    pub(super) process: String,
    pub(super) pid: u32,
    pub(super) format: LogFormat,
    pub(super) colour: bool,
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
        let thread = std::thread::current();
        let thread_name = thread
            .name()
            .map_or_else(|| format!("{:?}", thread.id()), str::to_owned);
        writer.write_str(&self.line(*meta.level(), meta.target(), &thread_name, fields))
    }
}

impl LineFormat {
    /// One finished line, newline included.
    pub(super) fn line(&self, level: Level, target: &str, thread_name: &str, fields: FieldMap) -> String {
        let now = humantime::format_rfc3339_millis(std::time::SystemTime::now());
        let mut out = String::new();
        match self.format {
            LogFormat::Json => {
                let mut line = Map::new();
                line.insert("timestamp".into(), now.to_string().into());
                line.insert("level".into(), level.as_str().into());
                line.insert("target".into(), target.into());
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
                let _ = writeln!(out, "{}", Value::Object(line));
            }
            LogFormat::Text => {
                let (on, off) = match (self.colour, level) {
                    (false, _) => ("", ""),
                    (true, Level::ERROR) => ("\x1b[31m", "\x1b[0m"),
                    (true, Level::WARN) => ("\x1b[33m", "\x1b[0m"),
                    (true, Level::INFO) => ("\x1b[32m", "\x1b[0m"),
                    (true, Level::DEBUG) => ("\x1b[34m", "\x1b[0m"),
                    (true, Level::TRACE) => ("\x1b[35m", "\x1b[0m"),
                };
                // A compact prefix (the time of day to the millisecond, the process, the
                // level), so the message starts at column 30; the thread and target, which
                // tools want, are in the JSON.
                let now = now.to_string();
                let time = now.get(11..23).unwrap_or(&now);
                // A message of several lines (a table: the stop report) keeps the message
                // column: its other lines are indented under its first.
                let (first, rest) = fields.message.split_once('\n').unwrap_or((&fields.message, ""));
                let _ = write!(
                    out,
                    "{time} {:<9} {on}{:<5}{off} {first}",
                    self.process,
                    level.as_str()
                );
                if !rest.is_empty() {
                    // Its fields are what the table shows: not repeated.
                    for line in rest.lines() {
                        let _ = write!(out, "\n{:29}{line}", "");
                    }
                    let _ = writeln!(out);
                    return out;
                }
                // component and phase are already in the message ("AsyncService1: started").
                let extra: Vec<String> = fields
                    .rest
                    .iter()
                    .filter(|(k, v)| k != "component" && k != "phase" && !mentions(&fields.message, v))
                    .map(|(k, v)| match v {
                        Value::String(text) => format!("{k}={text}"),
                        other => format!("{k}={other}"),
                    })
                    .collect();
                let dim = if self.colour { "\x1b[2m" } else { "" };
                let _ = if extra.is_empty() {
                    writeln!(out)
                } else {
                    writeln!(out, "  {dim}{}{off}", extra.join(" "))
                };
            }
        }
        out
    }
}

/// Whether the message already says `value` as a word of its own (then the text format
/// does not repeat it): `count=1` is said by "1 call", not by "worker-1".
fn mentions(message: &str, value: &Value) -> bool {
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        _ => return false,
    };
    if text.is_empty() {
        return false;
    }
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    message.match_indices(text.as_str()).any(|(at, _)| {
        let before = message[..at].chars().next_back();
        let after = message[at + text.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_is_hidden_only_when_the_message_says_it_as_a_word() {
        assert!(mentions("worker-1: started", &Value::from("worker-1")));
        assert!(mentions("restarting (1 of 3)", &Value::from(1)));
        assert!(!mentions("worker-1: started", &Value::from(1)));
        assert!(!mentions("worker-12 failed", &Value::from("worker-1")));
        assert!(!mentions("anything", &Value::from("")));
    }
}

/// An event's fields in the order they were written, `message` apart.
#[derive(Default)]
pub(super) struct FieldMap {
    pub(super) message: String,
    pub(super) rest: Vec<(String, Value)>,
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
        self.put(field, super::chain(value).into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

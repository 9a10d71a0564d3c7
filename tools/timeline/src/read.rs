//! Reads a log one line at a time and hands each line on, so that no output has to hold the
//! log: the picture keeps what it draws, the trace what it writes.
//!
//! A line that is not JSON at all means the wrong kind of log and stops the tool with an
//! error naming the line. A JSON line that cannot be placed (no timestamp, a `component`
//! that is a number...) is one odd line in a good log: it is counted by reason in
//! `Skipped`, and the tool says so on stderr and in the picture rather than drop it in silence.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value};

/// One line of the log, with its time in milliseconds since the first line.
#[derive(Clone, Debug)]
pub struct Line {
    /// Milliseconds since the log's first line (negative for a line written before it).
    pub t: f64,
    /// 1-based line number in the input, for messages and for ordering equal times.
    pub number: usize,
    pub process: String,
    pub pid: i64,
    pub thread: String,
    pub level: String,
    pub message: String,
    pub fields: Map<String, Value>,
}

impl Line {
    pub fn str(&self, key: &str) -> Option<&str> {
        self.fields.get(key).and_then(Value::as_str)
    }

    pub fn int(&self, key: &str) -> Option<i64> {
        self.fields.get(key).and_then(Value::as_i64)
    }
}

/// Lines left out of the output, by reason, with the first line of each reason.
#[derive(Debug, Default)]
pub struct Skipped {
    reasons: BTreeMap<String, (usize, usize)>,
}

impl Skipped {
    pub fn add(&mut self, reason: &str, line: usize) {
        let entry = self.reasons.entry(reason.to_string()).or_insert((0, line));
        entry.0 += 1;
    }

    pub fn total(&self) -> usize {
        self.reasons.values().map(|(n, _)| n).sum()
    }

    /// One sentence for stderr: how many, and why.
    pub fn report(&self) -> Option<String> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let reasons: Vec<String> = self
            .reasons
            .iter()
            .map(|(reason, (n, first))| format!("{n} {reason} (first: line {first})"))
            .collect();
        let s = if total == 1 { "" } else { "s" };
        Some(format!("skipped {total} line{s}: {}", reasons.join("; ")))
    }
}

/// What the reader saw: the wall-clock time of the first line and how many lines there were.
pub struct Read {
    pub first: SystemTime,
    pub lines: usize,
}

/// Reads `input` and calls `each` with every line that has a timestamp, in the log's order.
pub fn read(
    input: impl BufRead,
    name: &str,
    skipped: &mut Skipped,
    mut each: impl FnMut(Line, &mut Skipped),
) -> Result<Read> {
    let mut first: Option<SystemTime> = None;
    let mut lines = 0;
    let mut buffer = String::new();
    let mut input = input;
    let mut number = 0;
    loop {
        buffer.clear();
        number += 1;
        let n = input
            .read_line(&mut buffer)
            .with_context(|| format!("{name}: cannot read line {number}"))?;
        if n == 0 {
            break;
        }
        let line = buffer.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() {
            continue;
        }
        lines += 1;
        let value: Value = serde_json::from_str(line).map_err(|error| {
            anyhow!(
                "{name}:{number}: not JSON ({error}): {}\n\
                 the timeline reads logs written with --log-format json",
                shorten(line, 80)
            )
        })?;
        let Value::Object(mut fields) = value else {
            bail!("{name}:{number}: not a JSON object: {}", shorten(line, 80));
        };
        let at = match fields.remove("timestamp") {
            Some(Value::String(s)) => match humantime::parse_rfc3339_weak(&s) {
                Ok(at) => at,
                Err(_) => {
                    skipped.add("with a timestamp that is not RFC 3339", number);
                    continue;
                }
            },
            _ => {
                skipped.add("without a \"timestamp\" string", number);
                continue;
            }
        };
        let zero = *first.get_or_insert(at);
        let t = match at.duration_since(zero) {
            Ok(d) => ms(d),
            Err(e) => -ms(e.duration()),
        };
        let mut take = |key: &str| match fields.remove(key) {
            Some(Value::String(s)) => s,
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        let process = take("process");
        let thread = take("thread");
        let level = take("level");
        let message = take("message");
        let pid = fields.remove("pid").and_then(|v| v.as_i64()).unwrap_or(0);
        let process = if process.is_empty() {
            "main".into()
        } else {
            process
        };
        let line = Line {
            t,
            number,
            process,
            pid,
            thread,
            level,
            message,
            fields,
        };
        each(line, skipped);
    }
    match first {
        Some(first) => Ok(Read { first, lines }),
        None if lines == 0 => bail!("{name}: empty: no log lines to draw"),
        None => bail!("{name}: no line has a timestamp: nothing to draw"),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max).collect();
        format!("{cut}…")
    }
}

//! The run as Chrome trace-event JSON (the "JSON Object Format"), for Perfetto or
//! chrome://tracing.
//!
//! Each process of the run (each worker incarnation by its own pid) is a trace process.
//! Each component gets a track of its own ("component X"), on which one complete event
//! spans its whole life and holds its phases (starting, running, stopping) as complete
//! events: they nest by construction, because a component's phases follow one another.
//! Every log line is an instant event on the thread that wrote it, so a click shows its
//! message; signals and the exit are instant events too, named for what they were.
//!
//! The trace holds every line by design, so its memory follows the log (as its output
//! does); lines are kept as the text of the events they become, and the picture keeps none.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::model::Run;
use crate::read::Line;

/// Component tracks get thread ids from here on, away from the real threads' ids.
const COMPONENT_TID: i64 = 1000;

fn us(ms: f64) -> i64 {
    (ms * 1000.0).round() as i64
}

/// Milliseconds since the Unix epoch of t = 0, for the trace's metadata.
fn epoch_ms(start: SystemTime) -> f64 {
    start.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64() * 1000.0
}

/// The events of the lines, gathered as the log is read; times relative to its first line.
#[derive(Default)]
pub struct Lines {
    /// Real threads: one id per (pid, thread name), in order of appearance.
    threads: BTreeMap<(i64, String), i64>,
    next: BTreeMap<i64, i64>,
    /// Thread metadata, then instant events with their time (ms since the first line),
    /// already printed without their `ts` (known only once the earliest line is): as text
    /// they take a fraction of the memory of a JSON tree.
    meta: Vec<Value>,
    events: Vec<(f64, String)>,
}

impl Lines {
    pub fn line(&mut self, l: &Line) {
        let key = (l.pid, l.thread.clone());
        let tid = match self.threads.get(&key) {
            Some(&tid) => tid,
            None => {
                let n = self.next.entry(l.pid).or_insert(1);
                let tid = if l.thread == "main" { 1 } else { *n + 1 };
                if l.thread != "main" {
                    *n += 1;
                }
                self.threads.insert(key, tid);
                self.meta
                    .push(json!({"ph": "M", "name": "thread_name", "pid": l.pid,
                    "tid": tid, "args": {"name": l.thread}}));
                self.meta
                    .push(json!({"ph": "M", "name": "thread_sort_index", "pid": l.pid,
                    "tid": tid, "args": {"sort_index": COMPONENT_TID + tid}}));
                tid
            }
        };
        // Signals, on the thread that logged them.
        let signal = l.str("signal");
        let action = match (signal, l.str("action")) {
            (Some(_), Some(action)) => Some(action),
            (Some(_), None) if l.message.starts_with("delivering the delayed") => Some("delivered"),
            _ => None,
        };
        if let (Some(signal), Some(action)) = (signal, action) {
            let event = json!({"ph": "i", "s": "p", "name": format!("{signal} {action}"),
                "cat": "signal", "pid": l.pid, "tid": tid,
                "args": {"message": l.message, "count": l.int("count")}});
            self.events.push((l.t, event.to_string()));
        }
        // Every line, so that the trace holds the whole log.
        let mut args = serde_json::Map::new();
        args.insert("level".into(), Value::from(l.level.clone()));
        args.insert("line".into(), Value::from(l.number));
        args.extend(l.fields.clone());
        let event = json!({"ph": "i", "s": "t", "name": l.message, "cat": "log",
            "pid": l.pid, "tid": tid, "args": args});
        self.events.push((l.t, event.to_string()));
    }
}

/// Writes the trace to `out`. `first` is the time of the log's first line, which the
/// lines' times count from.
pub fn write(run: &Run, lines: Lines, first: SystemTime, out: &mut impl Write) -> io::Result<()> {
    let mut events: Vec<Value> = Vec::new();
    // Process names and order: main first, then workers; a worker incarnation is named with
    // its pid so that the replaced and the replacement stand apart.
    let mut sort = 0;
    for (process, pids) in &run.processes {
        for pid in pids {
            let name = if pids.len() > 1 || process != "main" {
                format!("{process} (pid {pid})")
            } else {
                process.clone()
            };
            let index = if process == "main" { 0 } else { 1 + sort };
            sort += 1;
            events.push(json!({"ph": "M", "name": "process_name", "pid": pid, "tid": 0,
                "args": {"name": name}}));
            events.push(
                json!({"ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0,
                "args": {"sort_index": index}}),
            );
        }
    }
    events.extend(lines.meta);
    let main_pid = run.main_pid().unwrap_or(0);
    // Component tracks.
    for (n, c) in run.components.iter().enumerate() {
        let tid = COMPONENT_TID + n as i64;
        let mut named = Vec::new();
        for inc in &c.incarnations {
            let pid = if c.process == "main" {
                main_pid
            } else {
                inc.pid.unwrap_or(main_pid)
            };
            if !named.contains(&pid) {
                named.push(pid);
                events.push(json!({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                    "args": {"name": format!("component {}", c.name)}}));
                events.push(json!({"ph": "M", "name": "thread_sort_index", "pid": pid,
                    "tid": tid, "args": {"sort_index": n}}));
            }
            let (Some(first), Some(last)) = (inc.segments.first(), inc.segments.last()) else {
                continue;
            };
            let t0 = inc.spawned.unwrap_or(first.t0).min(first.t0);
            let outcome = if last.failed {
                "failed"
            } else if last.open {
                "cut"
            } else {
                "ended"
            };
            events.push(json!({"ph": "X", "name": c.name, "cat": "component", "pid": pid,
                "tid": tid, "ts": us(t0), "dur": us(last.t1) - us(t0),
                "args": {"outcome": outcome, "pid": inc.pid}}));
            for s in &inc.segments {
                events.push(json!({"ph": "X", "name": s.phase.name(), "cat": "phase",
                    "pid": pid, "tid": tid, "ts": us(s.t0), "dur": us(s.t1) - us(s.t0),
                    "args": {"component": c.name, "failed": s.failed, "cut": s.open}}));
            }
        }
    }
    let exit = match &run.exit {
        Some(exit) => json!({"ph": "i", "s": "g", "name": format!("exit status {}", exit.status),
            "cat": "exit", "pid": main_pid, "tid": 1, "ts": us(exit.t),
            "args": {"status": exit.status, "signal": exit.signal, "message": exit.message}}),
        None => json!({"ph": "i", "s": "g", "name": "log cut: no exit event",
            "cat": "exit", "pid": main_pid, "tid": 1, "ts": us(run.end), "args": {}}),
    };
    let other = json!({
        "start": humantime::format_rfc3339_millis(run.start).to_string(),
        "start_epoch_ms": epoch_ms(run.start),
        "exit_status": run.exit.as_ref().map(|e| e.status),
        "cut": run.cut(),
    });
    out.write_all(b"{\"traceEvents\":[")?;
    for (n, event) in events.iter().enumerate() {
        if n > 0 {
            out.write_all(b",")?;
        }
        serde_json::to_writer(&mut *out, event)?;
    }
    // Each line's event was printed as `{...}` without its time: the time goes in front.
    let shift = first.duration_since(run.start).unwrap_or_default().as_secs_f64() * 1000.0;
    for (t, event) in &lines.events {
        let rest = event.strip_prefix('{').unwrap_or(event);
        write!(out, ",{{\"ts\":{},{rest}", us(t + shift))?;
    }
    out.write_all(b",")?;
    serde_json::to_writer(&mut *out, &exit)?;
    out.write_all(b"],\"displayTimeUnit\":\"ms\",\"otherData\":")?;
    serde_json::to_writer(&mut *out, &other)?;
    out.write_all(b"}\n")
}

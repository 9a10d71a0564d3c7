//! A run read from its JSON log: the components' phases as intervals, the signals, the
//! workers' deaths and restarts, and the exit. Both outputs (SVG and trace) draw this.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value};

/// One line of the log, with its time in milliseconds since the first line.
#[derive(Clone, Debug)]
pub struct Line {
    /// Milliseconds since the earliest line of the run.
    pub t: f64,
    /// 1-based line number in the input, for messages.
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

/// What a bar stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Starting,
    Running,
    Stopping,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Running => "running",
            Phase::Stopping => "stopping",
        }
    }
}

/// One phase of one incarnation of a component.
#[derive(Clone, Debug)]
pub struct Segment {
    pub phase: Phase,
    pub t0: f64,
    pub t1: f64,
    /// The component logged `failed` at `t1`.
    pub failed: bool,
    /// The log ended before this phase did.
    pub open: bool,
}

/// A point on a component's lane that is not a phase boundary.
#[derive(Clone, Debug)]
pub enum MarkKind {
    /// `failed`, with its cause.
    Failed(String),
    /// The manager started a replacement (`event=restarting`).
    Restarting(i64),
    /// A line of this component was cut (`event=truncated`).
    Truncated,
    /// Lines were dropped (`event=log-dropped`).
    Dropped(i64),
}

#[derive(Clone, Debug)]
pub struct Mark {
    pub t: f64,
    pub kind: MarkKind,
    pub message: String,
}

/// One process of a component: the main process for app, services, pool and MPM, the
/// worker's own process (one per incarnation: a replaced worker has a new pid) for a worker.
#[derive(Clone, Debug)]
pub struct Incarnation {
    pub pid: Option<i64>,
    pub spawned: Option<f64>,
    pub segments: Vec<Segment>,
}

/// Work a component does while it runs, drawn under its bar: MPM's updates.
#[derive(Clone, Debug)]
pub struct Activity {
    pub name: String,
    pub t0: f64,
    pub t1: f64,
    pub failed: bool,
    pub open: bool,
}

#[derive(Clone, Debug)]
pub struct Component {
    pub name: String,
    pub activities: Vec<Activity>,
    /// The process group the lane is drawn in: `main`, or the worker's own process name.
    pub process: String,
    pub incarnations: Vec<Incarnation>,
    pub marks: Vec<Mark>,
}

/// A signal event (`signal` and `action`), or the delivery of a delayed one.
#[derive(Clone, Debug)]
pub struct Signal {
    pub t: f64,
    pub process: String,
    pub pid: i64,
    pub thread: String,
    pub signal: String,
    /// `delayed`, `shutdown`, `counted`, `forced`, `ignored`; `delivered` for the line that
    /// acts on a delayed signal.
    pub action: String,
    pub count: Option<i64>,
    pub message: String,
}

#[derive(Clone, Debug)]
pub struct Exit {
    pub t: f64,
    pub status: i64,
    pub signal: Option<String>,
    pub message: String,
}

/// A whole run.
#[derive(Clone, Debug)]
pub struct Run {
    /// The wall-clock time of t = 0.
    pub start: SystemTime,
    pub lines: Vec<Line>,
    /// In order of first appearance, main's components first, then workers by number.
    pub components: Vec<Component>,
    /// Process name to the pids it had, in order.
    pub processes: BTreeMap<String, Vec<i64>>,
    pub signals: Vec<Signal>,
    pub exit: Option<Exit>,
    /// A signal asked for a forced exit.
    pub forced: bool,
    /// Time of the last line.
    pub end: f64,
}

impl Run {
    /// The log ended without the exit event: the run was cut (or is still going).
    pub fn cut(&self) -> bool {
        self.exit.is_none()
    }

    pub fn main_pid(&self) -> Option<i64> {
        self.processes.get("main").and_then(|p| p.first().copied())
    }

    /// The times of everything drawn, sorted: the axis is laid out around them.
    pub fn key_times(&self) -> Vec<f64> {
        let mut times = vec![0.0, self.end];
        for c in &self.components {
            for i in &c.incarnations {
                times.extend(i.spawned);
                for s in &i.segments {
                    times.push(s.t0);
                    times.push(s.t1);
                }
            }
            times.extend(c.marks.iter().map(|m| m.t));
            for a in &c.activities {
                times.push(a.t0);
                times.push(a.t1);
            }
        }
        times.extend(self.signals.iter().map(|s| s.t));
        times.extend(self.exit.iter().map(|e| e.t));
        times.sort_by(f64::total_cmp);
        times.dedup();
        times
    }

    /// Whether some component is starting, stopping or updating somewhere in (a, b): such
    /// a stretch is never cut out of the axis.
    pub fn busy_between(&self, a: f64, b: f64) -> bool {
        self.components.iter().any(|c| {
            c.activities.iter().any(|x| x.t0 < b && x.t1 > a)
                || c.incarnations.iter().any(|i| {
                    i.segments
                        .iter()
                        .any(|s| s.phase != Phase::Running && s.t0 < b && s.t1 > a)
                })
        })
    }
}

/// Reads a log: one JSON object per line. Blank lines are skipped; anything else that is
/// not a JSON object is an error naming the line.
pub fn read(input: impl BufRead, name: &str) -> Result<Run> {
    let mut raw = Vec::new();
    for (index, line) in input.lines().enumerate() {
        let number = index + 1;
        let line = line.with_context(|| format!("{name}: cannot read line {number}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(&line).map_err(|error| {
            anyhow!(
                "{name}:{number}: not JSON ({error}): {}\n\
                 the timeline reads logs written with --log-format json",
                shorten(&line, 80)
            )
        })?;
        let Value::Object(fields) = value else {
            bail!("{name}:{number}: not a JSON object: {}", shorten(&line, 80));
        };
        let timestamp = fields
            .get("timestamp")
            .and_then(Value::as_str)
            .with_context(|| format!("{name}:{number}: no \"timestamp\""))?;
        let at = humantime::parse_rfc3339_weak(timestamp)
            .with_context(|| format!("{name}:{number}: bad timestamp {timestamp:?}"))?;
        raw.push((at, number, fields));
    }
    let Some(start) = raw.iter().map(|(at, _, _)| *at).min() else {
        bail!("{name}: empty: no log lines to draw");
    };
    let lines = raw
        .into_iter()
        .map(|(at, number, mut fields)| {
            let t = at.duration_since(start).unwrap_or_default().as_secs_f64() * 1000.0;
            let mut take = |key: &str| match fields.remove(key) {
                Some(Value::String(s)) => s,
                Some(other) => other.to_string(),
                None => String::new(),
            };
            let process = take("process");
            let thread = take("thread");
            let level = take("level");
            let message = take("message");
            let pid = fields.remove("pid").and_then(|v| v.as_i64()).unwrap_or(0);
            fields.remove("timestamp");
            Line {
                t,
                number,
                process: if process.is_empty() {
                    "main".into()
                } else {
                    process
                },
                pid,
                thread,
                level,
                message,
                fields,
            }
        })
        .collect();
    Ok(build(start, lines))
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max).collect();
        format!("{cut}…")
    }
}

fn build(start: SystemTime, lines: Vec<Line>) -> Run {
    let end = lines.iter().map(|l| l.t).fold(0.0, f64::max);
    let mut processes: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for l in &lines {
        let pids = processes.entry(l.process.clone()).or_default();
        if !pids.contains(&l.pid) {
            pids.push(l.pid);
        }
    }
    // Lifecycle and machinery lines, in time order (stable: lines of one millisecond keep
    // the order they were written in).
    let mut order: Vec<&Line> = lines.iter().collect();
    order.sort_by(|a, b| a.t.total_cmp(&b.t));

    let mut components: Vec<Component> = Vec::new();
    let mut signals = Vec::new();
    let mut exit = None;
    let mut forced = false;
    let index = |components: &mut Vec<Component>, name: &str| -> usize {
        if let Some(i) = components.iter().position(|c| c.name == name) {
            return i;
        }
        let process = if name.starts_with("worker-") { name } else { "main" };
        components.push(Component {
            name: name.to_string(),
            activities: Vec::new(),
            process: process.to_string(),
            incarnations: Vec::new(),
            marks: Vec::new(),
        });
        components.len() - 1
    };
    for l in order {
        let phase = l.str("phase");
        let event = l.str("event");
        if let (Some(signal), Some(action)) = (l.str("signal"), l.str("action")) {
            forced |= action == "forced";
            signals.push(Signal {
                t: l.t,
                process: l.process.clone(),
                pid: l.pid,
                thread: l.thread.clone(),
                signal: signal.to_string(),
                action: action.to_string(),
                count: l.int("count"),
                message: l.message.clone(),
            });
            continue;
        }
        if let Some(signal) = l.str("signal")
            && phase.is_none()
            && event.is_none()
            && l.message.starts_with("delivering the delayed")
        {
            signals.push(Signal {
                t: l.t,
                process: l.process.clone(),
                pid: l.pid,
                thread: l.thread.clone(),
                signal: signal.to_string(),
                action: "delivered".into(),
                count: None,
                message: l.message.clone(),
            });
            continue;
        }
        if phase == Some("exit") {
            exit = Some(Exit {
                t: l.t,
                status: l.int("status").unwrap_or(-1),
                signal: l.str("signal").map(str::to_string),
                message: l.message.clone(),
            });
            continue;
        }
        if let (Some(name), Some(phase)) = (l.str("component"), phase) {
            let c = index(&mut components, name);
            lifecycle(&mut components[c], l, phase);
            continue;
        }
        let Some(event) = event else { continue };
        match event {
            "spawned" | "restarting" | "truncated" => {
                let Some(worker) = l.str("worker").or_else(|| l.str("component")) else {
                    continue;
                };
                let c = index(&mut components, worker);
                let component = &mut components[c];
                match event {
                    "spawned" => {
                        let pid = l.int("worker_pid");
                        // The worker's first line may have been written before this one.
                        match component.incarnations.iter_mut().find(|i| i.pid == pid) {
                            Some(known) => known.spawned = Some(l.t),
                            None => component.incarnations.push(Incarnation {
                                pid,
                                spawned: Some(l.t),
                                segments: Vec::new(),
                            }),
                        }
                    }
                    "restarting" => component.marks.push(Mark {
                        t: l.t,
                        kind: MarkKind::Restarting(l.int("restart").unwrap_or(0)),
                        message: l.message.clone(),
                    }),
                    _ => component.marks.push(Mark {
                        t: l.t,
                        kind: MarkKind::Truncated,
                        message: l.message.clone(),
                    }),
                }
            }
            "update-started" | "update-finished" | "update-failed" => {
                let c = index(&mut components, "MPM");
                let activities = &mut components[c].activities;
                if event == "update-started" {
                    activities.push(Activity {
                        name: "update".into(),
                        t0: l.t,
                        t1: l.t,
                        failed: false,
                        open: true,
                    });
                } else if let Some(a) = activities.last_mut().filter(|a| a.open) {
                    a.t1 = l.t;
                    a.open = false;
                    a.failed = event == "update-failed";
                }
            }
            "log-dropped" => {
                let name = if l.process == "main" { "app" } else { &l.process };
                let c = index(&mut components, name);
                components[c].marks.push(Mark {
                    t: l.t,
                    kind: MarkKind::Dropped(l.int("dropped").unwrap_or(0)),
                    message: l.message.clone(),
                });
            }
            _ => {}
        }
    }
    let last = exit.as_ref().map_or(end, |e| e.t.max(end));
    for c in &mut components {
        for a in c.activities.iter_mut().filter(|a| a.open) {
            a.t1 = last;
        }
        for i in &mut c.incarnations {
            if let Some(s) = i.segments.last_mut()
                && s.open
            {
                s.t1 = last;
            }
        }
        c.incarnations
            .retain(|i| !i.segments.is_empty() || i.spawned.is_some());
    }
    // Main's components in order of appearance, then the workers by number.
    components.sort_by_key(|c| match c.name.strip_prefix("worker-") {
        Some(n) => (1, n.parse::<u64>().unwrap_or(u64::MAX)),
        None => (0, 0),
    });
    Run {
        start,
        lines,
        components,
        processes,
        signals,
        exit,
        forced,
        end: last,
    }
}

/// Applies one lifecycle line to its component's current incarnation.
fn lifecycle(component: &mut Component, l: &Line, phase: &str) {
    // A line from the worker's own process names its incarnation by pid; a line about it
    // from the manager (its death, seen from outside) belongs to the current one.
    let own = l.process == component.name;
    let main_side = component.process == "main";
    let pid = if own || main_side { Some(l.pid) } else { None };
    let current = component.incarnations.last();
    let new = match (current, pid) {
        (None, _) => true,
        (Some(i), Some(pid)) => i.pid.is_some_and(|p| p != pid),
        (Some(_), None) => false,
    };
    if new {
        component.incarnations.push(Incarnation {
            pid,
            spawned: None,
            segments: Vec::new(),
        });
    }
    let incarnation = component.incarnations.last_mut().expect("pushed above");
    if incarnation.pid.is_none() {
        incarnation.pid = pid;
    }
    let close = |segments: &mut Vec<Segment>, failed: bool| {
        if let Some(s) = segments.last_mut()
            && s.open
        {
            s.t1 = l.t;
            s.open = false;
            s.failed = failed;
        }
    };
    let open = |segments: &mut Vec<Segment>, phase: Phase| {
        segments.push(Segment {
            phase,
            t0: l.t,
            t1: l.t,
            failed: false,
            open: true,
        })
    };
    let segments = &mut incarnation.segments;
    match phase {
        "starting" => {
            close(segments, false);
            open(segments, Phase::Starting);
        }
        "started" => {
            close(segments, false);
            open(segments, Phase::Running);
        }
        "stopping" => {
            close(segments, false);
            open(segments, Phase::Stopping);
        }
        "stopped" => close(segments, false),
        "failed" => {
            if !segments.last().is_some_and(|s| s.open) {
                // Failed without a phase to end (a start that failed before it was logged):
                // a zero-length starting phase carries the failure.
                open(segments, Phase::Starting);
            }
            close(segments, true);
            let cause = l.str("cause").unwrap_or(&l.message).to_string();
            component.marks.push(Mark {
                t: l.t,
                kind: MarkKind::Failed(cause),
                message: l.message.clone(),
            });
        }
        _ => {}
    }
}

/// Milliseconds since the Unix epoch of t = 0, for the trace's metadata.
pub fn epoch_ms(start: SystemTime) -> f64 {
    start.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64() * 1000.0
}

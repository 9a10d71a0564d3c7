//! A run as both outputs draw it: the components' phases as intervals, the signals, the
//! workers' deaths and restarts, and the exit. It holds only what is drawn, never the log's
//! lines, so that its size follows the picture (lanes and marks) and not the log's length:
//! every list that a long log could grow without end is capped, and what the cap leaves out
//! is counted in `not_drawn`.

use std::collections::BTreeMap;
use std::time::SystemTime;

/// The most a lane keeps of each kind of thing (incarnations, marks, activities, signals);
/// the picture cannot show more than this many in one lane anyway.
pub const PER_LANE: usize = 200;

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
    /// The log's line numbers of both ends: they order lines written in the same millisecond.
    pub n0: usize,
    pub n1: usize,
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
    /// Signals the component's own process received (a worker's), drawn on its lane.
    pub signals: Vec<Signal>,
}

/// A signal event (`signal` and `action`), or the delivery of a delayed one.
#[derive(Clone, Debug)]
pub struct Signal {
    pub t: f64,
    pub process: String,
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
    /// The wall-clock time of t = 0 (the earliest line).
    pub start: SystemTime,
    /// How many lines the log had (blank lines aside).
    pub lines: usize,
    /// Main's components in order of first appearance, then workers by number.
    pub components: Vec<Component>,
    /// Process name to the pids it had, in order.
    pub processes: BTreeMap<String, Vec<i64>>,
    /// Signals of the main process (and of processes without a lane of their own).
    pub signals: Vec<Signal>,
    pub exit: Option<Exit>,
    /// A signal asked for a forced exit.
    pub forced: bool,
    /// Time of the last line.
    pub end: f64,
    /// Things the caps left out of the picture (they are still counted here).
    pub not_drawn: usize,
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
            times.extend(c.signals.iter().map(|s| s.t));
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

    /// The stretches in which some component is starting, stopping or updating, merged and
    /// sorted: such a stretch is never cut out of the axis. Merged once, so that a gap is
    /// checked by a binary search and not against every lane.
    pub fn busy(&self) -> Vec<(f64, f64)> {
        let mut spans: Vec<(f64, f64)> = Vec::new();
        for c in &self.components {
            spans.extend(c.activities.iter().map(|a| (a.t0, a.t1)));
            for i in &c.incarnations {
                let busy = i.segments.iter().filter(|s| s.phase != Phase::Running);
                spans.extend(busy.map(|s| (s.t0, s.t1)));
            }
        }
        spans.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut merged: Vec<(f64, f64)> = Vec::new();
        for (a, b) in spans {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        merged
    }

    /// Where the stop begins, and whose `stopping` it is: app's first (or, without app,
    /// the first of main's components to stop); None when nothing stopped.
    pub fn stop_begins(&self) -> Option<(&str, f64)> {
        fn first_stop(c: &Component) -> Option<(&str, f64)> {
            c.incarnations
                .iter()
                .flat_map(|i| &i.segments)
                .find(|s| s.phase == Phase::Stopping)
                .map(|s| (c.name.as_str(), s.t0))
        }
        let app = self.components.iter().find(|c| c.name == "app");
        app.and_then(first_stop).or_else(|| {
            let main = self.components.iter().filter(|c| c.process == "main");
            main.filter_map(first_stop).min_by(|a, b| a.1.total_cmp(&b.1))
        })
    }
}

/// Whether the merged, sorted `busy` spans meet the open stretch (a, b).
pub fn busy_between(busy: &[(f64, f64)], a: f64, b: f64) -> bool {
    // The first span that ends after a; it meets (a, b) if it starts before b.
    let i = busy.partition_point(|s| s.1 <= a);
    busy.get(i).is_some_and(|s| s.0 < b)
}

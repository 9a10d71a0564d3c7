//! Turns the log's lines, one at a time, into a `Run`. Lines are applied in the log's order
//! (each process writes its own lines in order, which is all the phases need), so nothing
//! is sorted and no line is kept; a component is found by name in a map, so each line costs
//! the same however many lanes the run has.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::model::{
    Activity, Component, Exit, Incarnation, Mark, MarkKind, PER_LANE, Phase, Run, Segment, Signal,
};
use crate::read::{Line, Read, Skipped};
use serde_json::Value;

/// How many signals the main process's row keeps; more cannot be told apart on it anyway.
const MAIN_SIGNALS: usize = 500;
/// How many pids a process keeps for its labels.
const PIDS: usize = 64;

#[derive(Default)]
pub struct Builder {
    components: Vec<Component>,
    by_name: HashMap<String, usize>,
    processes: BTreeMap<String, Vec<i64>>,
    signals: Vec<Signal>,
    exit: Option<Exit>,
    forced: bool,
    /// The earliest and latest times seen, relative to the first line.
    min: f64,
    max: f64,
    not_drawn: usize,
}

/// Pushes unless the list is full; counts what it leaves out.
fn push_capped<T>(list: &mut Vec<T>, item: T, cap: usize, not_drawn: &mut usize) {
    if list.len() < cap {
        list.push(item);
    } else {
        *not_drawn += 1;
    }
}

impl Builder {
    fn index(&mut self, name: &str) -> usize {
        if let Some(&i) = self.by_name.get(name) {
            return i;
        }
        let process = if name.starts_with("worker-") { name } else { "main" };
        self.components.push(Component {
            name: name.to_string(),
            activities: Vec::new(),
            process: process.to_string(),
            incarnations: Vec::new(),
            marks: Vec::new(),
            signals: Vec::new(),
        });
        let i = self.components.len() - 1;
        self.by_name.insert(name.to_string(), i);
        i
    }

    /// Applies one line; a line that cannot be placed is counted in `skipped`.
    pub fn line(&mut self, l: &Line, skipped: &mut Skipped) {
        self.min = self.min.min(l.t);
        self.max = self.max.max(l.t);
        // Looked up before inserted: a new key (and its allocation) is rare, a line is not.
        match self.processes.get_mut(&l.process) {
            Some(pids) if pids.len() < PIDS && !pids.contains(&l.pid) => pids.push(l.pid),
            Some(_) => {}
            None => {
                self.processes.insert(l.process.clone(), vec![l.pid]);
            }
        }
        // The fields that place a line must be strings; the reason names the culprit.
        for key in ["component", "phase", "event", "signal", "action", "worker"] {
            if let Some(kind) = l.fields.get(key).and_then(not_a_string) {
                skipped.add(&format!("with a \"{key}\" that is {kind}"), l.number);
                return;
            }
        }
        let (component, phase, event) = (l.str("component"), l.str("phase"), l.str("event"));
        let (signal, action) = (l.str("signal"), l.str("action"));
        if let (Some(signal), Some(action)) = (signal, action) {
            self.forced |= action == "forced";
            self.signal(l, signal, action);
            return;
        }
        if let Some(signal) = signal
            && phase.is_none()
            && event.is_none()
            && l.message.starts_with("delivering the delayed")
        {
            self.signal(l, signal, "delivered");
            return;
        }
        if phase == Some("exit") {
            self.exit = Some(Exit {
                t: l.t,
                status: l.int("status").unwrap_or(-1),
                signal: signal.map(str::to_string),
                message: l.message.clone(),
            });
            return;
        }
        if let Some(phase) = phase {
            let Some(name) = component else {
                skipped.add("with a phase but no component", l.number);
                return;
            };
            if !["starting", "started", "stopping", "stopped", "failed"].contains(&phase) {
                skipped.add("with an unknown phase", l.number);
                return;
            }
            let c = self.index(name);
            lifecycle(&mut self.components[c], l, phase, &mut self.not_drawn);
            return;
        }
        let Some(event) = event else { return };
        self.event(l, event, component, skipped);
    }

    fn signal(&mut self, l: &Line, signal: &str, action: &str) {
        let s = Signal {
            t: l.t,
            process: l.process.clone(),
            signal: signal.to_string(),
            action: action.to_string(),
            count: l.int("count"),
            message: l.message.clone(),
        };
        // A worker's signal goes on its lane; main's (or an unknown process's) on main's row.
        if l.process.starts_with("worker-") {
            let c = self.index(&l.process);
            push_capped(&mut self.components[c].signals, s, PER_LANE, &mut self.not_drawn)
        } else {
            push_capped(&mut self.signals, s, MAIN_SIGNALS, &mut self.not_drawn)
        }
    }

    fn event(&mut self, l: &Line, event: &str, component: Option<&str>, skipped: &mut Skipped) {
        match event {
            "spawned" | "restarting" | "truncated" => {
                let Some(worker) = l.str("worker").or(component) else {
                    skipped.add(
                        "with a spawned, restarting or truncated event naming no worker",
                        l.number,
                    );
                    return;
                };
                let c = self.index(worker);
                let component = &mut self.components[c];
                let not_drawn = &mut self.not_drawn;
                match event {
                    "spawned" => {
                        let pid = l.int("worker_pid");
                        // The worker's first line may have been written before this one.
                        match component.incarnations.iter_mut().rev().find(|i| i.pid == pid) {
                            Some(known) => known.spawned = Some(l.t),
                            None => {
                                let new = Incarnation {
                                    pid,
                                    spawned: Some(l.t),
                                    segments: Vec::new(),
                                };
                                push_capped(&mut component.incarnations, new, PER_LANE, not_drawn)
                            }
                        }
                    }
                    "restarting" => {
                        let kind = MarkKind::Restarting(l.int("restart").unwrap_or(0));
                        mark(component, l, kind, not_drawn)
                    }
                    _ => mark(component, l, MarkKind::Truncated, not_drawn),
                }
            }
            "update-started" | "update-finished" | "update-failed" => {
                let c = self.index("MPM");
                let activities = &mut self.components[c].activities;
                if event == "update-started" {
                    let a = Activity {
                        name: "update".into(),
                        t0: l.t,
                        t1: l.t,
                        failed: false,
                        open: true,
                    };
                    push_capped(activities, a, PER_LANE, &mut self.not_drawn);
                } else if let Some(a) = activities.last_mut().filter(|a| a.open) {
                    a.t1 = l.t.max(a.t0);
                    a.open = false;
                    a.failed = event == "update-failed";
                }
            }
            "log-dropped" => {
                let name = if l.process == "main" { "app" } else { &l.process };
                let c = self.index(name);
                let kind = MarkKind::Dropped(l.int("dropped").unwrap_or(0));
                mark(&mut self.components[c], l, kind, &mut self.not_drawn);
            }
            _ => {}
        }
    }

    /// The run: open phases end at the exit (or the last line), times start at the earliest
    /// line, and the lanes are put in drawing order.
    pub fn finish(self, read: &Read) -> Run {
        let Builder {
            mut components,
            processes,
            mut signals,
            mut exit,
            forced,
            min,
            max,
            not_drawn,
            ..
        } = self;
        let last = exit.as_ref().map_or(max, |e| e.t.max(max));
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
        // t = 0 is the earliest line, which need not be the first one written.
        let shift = -min;
        let at = |t: &mut f64| *t += shift;
        for c in &mut components {
            for i in &mut c.incarnations {
                i.spawned.iter_mut().for_each(at);
                for s in &mut i.segments {
                    at(&mut s.t0);
                    at(&mut s.t1);
                }
            }
            c.marks.iter_mut().for_each(|m| at(&mut m.t));
            c.signals.iter_mut().for_each(|s| at(&mut s.t));
            for a in &mut c.activities {
                at(&mut a.t0);
                at(&mut a.t1);
            }
        }
        signals.iter_mut().for_each(|s| at(&mut s.t));
        exit.iter_mut().for_each(|e| at(&mut e.t));
        let start = if min < 0.0 {
            read.first - Duration::from_secs_f64(-min / 1000.0)
        } else {
            read.first
        };
        Run {
            start,
            lines: read.lines,
            components,
            processes,
            signals,
            exit,
            forced,
            end: last + shift,
            not_drawn,
        }
    }
}

/// What a value is, when it is not a string.
fn not_a_string(value: &Value) -> Option<&'static str> {
    match value {
        Value::String(_) => None,
        Value::Null => Some("null"),
        Value::Bool(_) => Some("a boolean"),
        Value::Number(_) => Some("a number"),
        Value::Array(_) => Some("an array"),
        Value::Object(_) => Some("an object"),
    }
}

fn mark(component: &mut Component, l: &Line, kind: MarkKind, not_drawn: &mut usize) {
    let m = Mark {
        t: l.t,
        kind,
        message: l.message.clone(),
    };
    push_capped(&mut component.marks, m, PER_LANE, not_drawn);
}

/// Applies one lifecycle line to its component's current incarnation.
fn lifecycle(component: &mut Component, l: &Line, phase: &str, not_drawn: &mut usize) {
    // A line from the worker's own process names its incarnation by pid; a line about it
    // from the manager (its death, seen from outside) belongs to the current one.
    let own = l.process == component.name;
    let main_side = component.process == "main";
    let pid = if own || main_side { Some(l.pid) } else { None };
    let new = match (component.incarnations.last(), pid) {
        (None, _) => true,
        (Some(i), Some(pid)) => i.pid.is_some_and(|p| p != pid),
        (Some(_), None) => false,
    };
    if new {
        if component.incarnations.len() >= PER_LANE {
            *not_drawn += 1;
            return;
        }
        component.incarnations.push(Incarnation {
            pid,
            spawned: None,
            segments: Vec::new(),
        });
    }
    let Some(incarnation) = component.incarnations.last_mut() else {
        return;
    };
    if incarnation.pid.is_none() {
        incarnation.pid = pid;
    }
    let segments = &mut incarnation.segments;
    let close = |segments: &mut Vec<Segment>, failed: bool| {
        if let Some(s) = segments.last_mut()
            && s.open
        {
            // Lines of two processes may arrive a little out of time order.
            s.t1 = l.t.max(s.t0);
            s.n1 = l.number;
            s.open = false;
            s.failed = failed;
        }
    };
    let open = |segments: &mut Vec<Segment>, phase: Phase, not_drawn: &mut usize| {
        let s = Segment {
            phase,
            t0: l.t,
            t1: l.t,
            n0: l.number,
            n1: l.number,
            failed: false,
            open: true,
        };
        push_capped(segments, s, PER_LANE, not_drawn);
    };
    match phase {
        "starting" => {
            close(segments, false);
            open(segments, Phase::Starting, not_drawn);
        }
        "started" => {
            close(segments, false);
            open(segments, Phase::Running, not_drawn);
        }
        "stopping" => {
            close(segments, false);
            open(segments, Phase::Stopping, not_drawn);
        }
        "stopped" => close(segments, false),
        "failed" => {
            if !segments.last().is_some_and(|s| s.open) {
                // Failed without a phase to end (a start that failed before it was logged):
                // a zero-length starting phase carries the failure.
                open(segments, Phase::Starting, not_drawn);
            }
            close(segments, true);
            let cause = l.str("cause").unwrap_or(&l.message).to_string();
            mark(component, l, MarkKind::Failed(cause), not_drawn);
        }
        _ => {}
    }
}

//! Naming the log event a driver waits for or expects, by field: `phase("MPM", "started")`,
//! `signal_event("SIGINT", "delayed")`, `fields(&[("event", "cancelled"), ("task", "update")])`,
//! or any closure over an [`Event`]. Each describes itself, so a wait that times out or an
//! order that does not hold says what it looked for.

use crate::Event;

/// Something an [`Event`] can be checked against: a [`Pattern`], [`Fields`], or any closure
/// `|event: &Event| -> bool`.
pub trait Matcher {
    /// Whether `event` matches.
    fn matches(&self, event: &Event) -> bool;
    /// What is being looked for, for failure messages.
    fn describe(&self) -> String;
}

impl<F: Fn(&Event) -> bool> Matcher for F {
    fn matches(&self, event: &Event) -> bool {
        self(event)
    }
    fn describe(&self) -> String {
        "an event matching the test's predicate".to_owned()
    }
}

/// The kinds of contract events the drivers name, all by field.
#[derive(Clone, Copy, Debug)]
pub enum Pattern {
    /// `component=C phase=P`, from any process.
    Phase(&'static str, &'static str),
    /// `signal=S action=A`, from any process.
    Signal(&'static str, &'static str),
    /// `event=E`, a step of the manager, the pool or a worker, from any process.
    Event(&'static str),
    /// `event=E worker=W`: a step the parent logs about one of its workers.
    WorkerEvent(&'static str, &'static str),
}

/// The lifecycle event `component: phase`.
pub fn phase(component: &'static str, phase: &'static str) -> Pattern {
    Pattern::Phase(component, phase)
}

/// The signal event for `signal` (e.g. `SIGINT`) with `action` (e.g. `delayed`).
pub fn signal_event(signal: &'static str, action: &'static str) -> Pattern {
    Pattern::Signal(signal, action)
}

/// The step `name` (`event=update-started`, ...), from any process.
pub fn event(name: &'static str) -> Pattern {
    Pattern::Event(name)
}

/// The step `name` the parent logs about `worker` (`event=spawned worker=worker-1`).
pub fn worker_event(name: &'static str, worker: &'static str) -> Pattern {
    Pattern::WorkerEvent(name, worker)
}

impl Matcher for Pattern {
    fn matches(&self, event: &Event) -> bool {
        match *self {
            Self::Phase(component, phase) => event.is(component, phase),
            Self::Signal(signal, action) => event.is_signal(signal, action),
            Self::Event(name) => event.event() == Some(name),
            Self::WorkerEvent(name, worker) => {
                event.event() == Some(name) && event.str("worker") == Some(worker)
            }
        }
    }
    fn describe(&self) -> String {
        match self {
            Self::Phase(component, phase) => format!("component={component} phase={phase}"),
            Self::Signal(signal, action) => format!("signal={signal} action={action}"),
            Self::Event(name) => format!("event={name}"),
            Self::WorkerEvent(name, worker) => format!("event={name} worker={worker}"),
        }
    }
}

/// A log line with every one of these string fields, from any process: for the steps that
/// a single `event` does not name (`event=cancelled task=update in_hand=finished`).
#[derive(Clone, Copy, Debug)]
pub struct Fields(pub &'static [(&'static str, &'static str)]);

/// A log line with every one of `fields`.
pub fn fields(fields: &'static [(&'static str, &'static str)]) -> Fields {
    assert!(!fields.is_empty(), "no field to match would match every line");
    Fields(fields)
}

impl Matcher for Fields {
    fn matches(&self, event: &Event) -> bool {
        self.0.iter().all(|&(key, value)| event.str(key) == Some(value))
    }
    fn describe(&self) -> String {
        let pairs: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        pairs.join(" ")
    }
}

/// Whether each of `steps` is logged after the previous one (other lines may come
/// between); if not, which step is missing and where it is instead, in words.
pub fn in_sequence(lines: &[Event], steps: &[&dyn Matcher]) -> Result<(), String> {
    let position = |step: &dyn Matcher, from: usize| {
        lines[from..]
            .iter()
            .position(|e| step.matches(e))
            .map(|i| from + i)
    };
    let mut from = 0;
    let mut previous = "the start of the log".to_owned();
    for &step in steps {
        let Some(index) = position(step, from) else {
            let anywhere = position(step, 0).map_or_else(
                || "it is not logged at all".to_owned(),
                |i| format!("it is logged at line {}, too early", i + 1),
            );
            return Err(format!(
                "expected {} after {previous}; {anywhere}",
                step.describe()
            ));
        };
        from = index + 1;
        previous = format!("{} (line {})", step.describe(), index + 1);
    }
    Ok(())
}

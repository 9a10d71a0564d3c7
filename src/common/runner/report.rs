//! The stop report: one `event=stop-report` line at the end of every stop, with the whole
//! stop's duration and each component's, and how each one ended.
//!
//! **Problem.** After a slow or forced stop the log holds the answer to "was a timeout hit,
//! and by whom" only spread over dozens of lines, and after a forced exit not even that.
//!
//! **Fix.** The runner records each service's stop as it runs; the normal end and the
//! forced exit (which may run on another thread, the runtime stuck) both write the same
//! line, once, before the exit event. The components are one compact string field, so a
//! JSON line stays flat and a text line reads as a sentence.

use crate::sync::LockUnpoisoned;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// How one component's stop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StopOutcome {
    /// Its stop returned `Ok`.
    Stopped,
    /// Its stop returned an error or panicked.
    Failed,
    /// Its stop outlived its own deadline ([`crate::Service::stop_deadline`]).
    Cut,
    /// The exit was forced before it had stopped.
    Forced,
}

impl StopOutcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Stopped => "stopped",
            Self::Failed => "failed",
            Self::Cut => "cut",
            Self::Forced => "forced",
        }
    }
}

/// The record of one stop; clones share it.
#[derive(Clone, Default)]
pub(crate) struct StopReport(Arc<Mutex<Record>>);

#[derive(Default)]
struct Record {
    began: Option<Instant>,
    /// In stop order.
    entries: Vec<Entry>,
    written: bool,
}

struct Entry {
    name: String,
    began: Instant,
    /// How it ended, and after how long.
    ended: Option<(StopOutcome, Duration)>,
}

impl StopReport {
    /// The stop begins now.
    pub(crate) fn begin(&self) {
        self.lock().began.get_or_insert_with(Instant::now);
    }

    /// `name` begins stopping now.
    pub(crate) fn stopping(&self, name: &str) {
        let entry = Entry {
            name: name.to_owned(),
            began: Instant::now(),
            ended: None,
        };
        self.lock().entries.push(entry);
    }

    /// `name`'s stop ended with `outcome`.
    pub(crate) fn ended(&self, name: &str, outcome: StopOutcome) {
        let mut record = self.lock();
        if let Some(entry) = record.entries.iter_mut().rev().find(|e| e.name == name) {
            entry.ended.get_or_insert((outcome, entry.began.elapsed()));
        }
    }

    /// The forced exit: every component in `unfinished` that has not ended is `forced`
    /// (those whose stop had not begun, with 0 ms), then the line is written.
    pub(crate) fn write_forced(&self, unfinished: &[String]) {
        {
            let mut record = self.lock();
            let now = Instant::now();
            record.began.get_or_insert(now);
            for entry in &mut record.entries {
                entry
                    .ended
                    .get_or_insert((StopOutcome::Forced, now - entry.began));
            }
            for name in unfinished {
                if !record.entries.iter().any(|e| &e.name == name) {
                    record.entries.push(Entry {
                        name: name.clone(),
                        began: now,
                        ended: Some((StopOutcome::Forced, Duration::ZERO)),
                    });
                }
            }
        }
        self.write();
    }

    /// Writes the line, once: a forced exit racing the normal end does not repeat it.
    pub(crate) fn write(&self) {
        let (summary, table) = {
            let mut record = self.lock();
            if std::mem::replace(&mut record.written, true) {
                return;
            }
            (record.summary(), record.table())
        };
        let (stop_ms, timed_out) = (summary.stop_ms, summary.timed_out.as_str());
        // The message is a short table, one row a service (what a person reads in text
        // mode); the fields carry the same for tools.
        tracing::info!(
            target: "lifecycle",
            event = "stop-report",
            stop_ms,
            components = summary.components.as_str(),
            timed_out,
            "stop report: the stop took {stop_ms}ms; timed out: {timed_out}{table}"
        );
    }

    /// What the line says, so far.
    #[cfg(test)]
    pub(crate) fn summary(&self) -> Summary {
        self.lock().summary()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Record> {
        self.0.lock_unpoisoned()
    }
}

/// The stop report's fields.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Summary {
    /// The whole stop, from its beginning to now.
    pub(crate) stop_ms: u64,
    /// `name outcome Nms` for each component, in stop order, comma-separated.
    pub(crate) components: String,
    /// The components cut at their deadline or forced, or `none`.
    pub(crate) timed_out: String,
}

impl Record {
    /// Each component in stop order, with its outcome and how long its stop took.
    fn rows(&self) -> impl Iterator<Item = (&str, StopOutcome, u64)> {
        self.entries.iter().map(|Entry { name, ended, .. }| {
            let (outcome, took) = ended.unwrap_or((StopOutcome::Forced, Duration::ZERO));
            (name.as_str(), outcome, millis(took))
        })
    }

    /// The rows as lines of an aligned table, each after a newline.
    fn table(&self) -> String {
        let width = self.rows().map(|(name, ..)| name.len()).max().unwrap_or(0);
        self.rows()
            .map(|(name, outcome, ms)| format!("\n  {name:<width$}  {:<7} {:>5}ms", outcome.as_str(), ms))
            .collect()
    }

    fn summary(&self) -> Summary {
        let stop_ms = self.began.map_or(0, |began| millis(began.elapsed()));
        let components: Vec<String> = self
            .rows()
            .map(|(name, outcome, ms)| format!("{name} {} {ms}ms", outcome.as_str()))
            .collect();
        let timed_out: Vec<&str> = self
            .rows()
            .filter(|(_, outcome, _)| matches!(outcome, StopOutcome::Cut | StopOutcome::Forced))
            .map(|(name, ..)| name)
            .collect();
        Summary {
            stop_ms,
            components: listed(&components, "no service had started"),
            timed_out: listed(&timed_out, "none"),
        }
    }
}

/// `items` joined by ", ", or `if_none`.
fn listed<S: std::borrow::Borrow<str>>(items: &[S], if_none: &str) -> String {
    if items.is_empty() {
        if_none.to_owned()
    } else {
        items.join(", ")
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

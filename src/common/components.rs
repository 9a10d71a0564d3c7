//! Lifecycle events, and the record of who is where, for the forced exit.
//!
//! Every component logs its steps through [`Components`], so each line carries the
//! contract's `component` and `phase` fields, and the registry always knows which components
//! started and have not stopped. A forced exit reads that to log `failed` for each of them,
//! naming why, instead of vanishing mid-sentence.

use crate::sync::LockUnpoisoned;
use std::fmt::Display;
use std::sync::{Arc, Mutex};

/// A step of a component's life, as the `phase` field spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Start under way.
    Starting,
    /// Start completed.
    Started,
    /// Stop under way.
    Stopping,
    /// Stop completed.
    Stopped,
    /// Start or stop failed, or the exit was forced before it stopped.
    Failed,
}

impl Phase {
    /// The `phase` field's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Started => "started",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
        }
    }

    fn is_unfinished(self) -> bool {
        matches!(self, Self::Starting | Self::Started | Self::Stopping)
    }
}

/// The registry of this process's components; clones share it.
#[derive(Clone, Default)]
pub struct Components {
    inner: Arc<Mutex<Registry>>,
}

type Observer = Box<dyn Fn(&str, Phase) + Send + Sync>;

#[derive(Default)]
struct Registry {
    /// Each component's latest phase, in the order they first appeared.
    latest: Vec<(String, Phase)>,
    /// Every step, in order: a handful per component, so it stays small.
    history: Vec<(String, Phase)>,
    /// Told of every step after it is logged (a service manager's notifier).
    observer: Option<Observer>,
}

impl Components {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Logs `component: starting`.
    pub fn starting(&self, component: &str) {
        self.transition(component, Phase::Starting, None);
    }

    /// Logs `component: started`.
    pub fn started(&self, component: &str) {
        self.transition(component, Phase::Started, None);
    }

    /// Logs `component: stopping`.
    pub fn stopping(&self, component: &str) {
        self.transition(component, Phase::Stopping, None);
    }

    /// Logs `component: stopped`.
    pub fn stopped(&self, component: &str) {
        self.transition(component, Phase::Stopped, None);
    }

    /// Logs `component: failed` with its cause.
    pub fn failed(&self, component: &str, cause: &dyn Display) {
        self.transition(component, Phase::Failed, Some(cause));
    }

    /// Records and logs one step, both under the registry's lock, so the log's order is the
    /// registry's order. Once the process is ending (a forced exit has marked what had not
    /// finished as `failed`), only further failures are recorded: a stop still running on
    /// another thread must not log `stopped` after its component was declared `failed`.
    /// `cause` is a failure's, whose line is an error.
    fn transition(&self, component: &str, phase: Phase, cause: Option<&dyn Display>) {
        let mut registry = self.lock();
        if phase != Phase::Failed && crate::exit::is_exiting() {
            return;
        }
        let current = registry.latest.iter().position(|(name, _)| name == component);
        registry.history.push((component.to_owned(), phase));
        match current {
            Some(at) => registry.latest[at].1 = phase,
            None => registry.latest.push((component.to_owned(), phase)),
        }
        let name = phase.as_str();
        match cause {
            Some(cause) => {
                tracing::error!(target: "lifecycle", component, phase = name, cause = %cause, "{component}: {name}: {cause}");
            }
            None => tracing::info!(target: "lifecycle", component, phase = name, "{component}: {name}"),
        }
        if let Some(observer) = &registry.observer {
            observer(component, phase);
        }
    }

    /// Calls `observer` with every step from now on, right after it is logged (under the
    /// registry's lock, so in the log's order; it must not use this registry).
    pub fn observe(&self, observer: impl Fn(&str, Phase) + Send + Sync + 'static) {
        self.lock().observer = Some(Box::new(observer));
    }

    /// The components that are starting, started or stopping, in the order they began.
    pub fn unfinished(&self) -> Vec<String> {
        self.lock()
            .latest
            .iter()
            .filter(|(_, phase)| phase.is_unfinished())
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Logs `failed` for every unfinished component, latest first (reverse start order,
    /// like a stop), and returns their names.
    pub fn fail_unfinished(&self, cause: &dyn Display) -> Vec<String> {
        let names = self.unfinished();
        for name in names.iter().rev() {
            self.failed(name, cause);
        }
        names
    }

    /// The last recorded phase of `component`.
    pub fn phase(&self, component: &str) -> Option<Phase> {
        self.lock()
            .latest
            .iter()
            .find(|(name, _)| name == component)
            .map(|(_, phase)| *phase)
    }

    /// Every step recorded so far, in order (for tests and post-mortems).
    pub fn history(&self) -> Vec<(String, Phase)> {
        self.lock().history.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.inner.lock_unpoisoned()
    }
}

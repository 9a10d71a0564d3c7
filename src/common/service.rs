//! What a service is to the runner, and what the runner lends a service.

use crate::sync::LockUnpoisoned;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::{AbortHandle, JoinHandle};
use tokio_util::task::TaskTracker;

use crate::components::Components;
use crate::runner::StopReport;
use crate::shutdown::Shutdown;

/// A boxed future, so services of different types can sit in one list.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A part of the application with a start and a stop, run by [`crate::runner::Runner`].
///
/// The runner calls `start` under the shield, in order; `stop` under the shield, in reverse
/// order, only for services whose `start` succeeded. The runner logs each service's
/// `starting`/`started`/`stopping`/`stopped`/`failed`; a service logs its own details.
pub trait Service: Send {
    /// The component name in the logs (`AsyncService1`, ...).
    fn name(&self) -> &'static str;

    /// Brings the service up. On error, nothing of it may be left running.
    fn start<'a>(&'a mut self, ctx: &'a ServiceContext) -> BoxFuture<'a, anyhow::Result<()>>;

    /// Brings the service down, stopping every task it spawned.
    fn stop<'a>(&'a mut self, ctx: &'a ServiceContext) -> BoxFuture<'a, anyhow::Result<()>>;

    /// How long this service's own stop may take, counted from its `stopping`, inside the
    /// whole stop's `stop_timeout`. Past it the runner drops the stop future, marks the
    /// service `failed` (its deadline passed) and goes on with the next one, so one slow
    /// part cannot eat the time of those stopped after it. `None` (the default): only the
    /// whole stop's deadline applies.
    fn stop_deadline(&self) -> Option<Duration> {
        None
    }
}

/// What the runner lends every service: the shutdown controller, the lifecycle registry,
/// and a tracked `spawn`, so a task a service forgets to stop is found, reported and
/// cancelled at the end.
#[derive(Clone)]
pub struct ServiceContext {
    /// The shutdown controller, to request a stop on a fatal error.
    pub shutdown: Shutdown,
    /// The lifecycle registry, for sub-components (`pool`, `MPM`, `worker-N`).
    pub components: Components,
    tasks: TrackedTasks,
    /// What a forced exit runs; see [`on_force`](Self::on_force).
    force_hooks: Arc<Mutex<Vec<ForceHook>>>,
    stop_report: StopReport,
}

impl ServiceContext {
    pub(crate) fn new(shutdown: Shutdown, components: Components) -> Self {
        Self {
            shutdown,
            components,
            tasks: TrackedTasks::default(),
            force_hooks: Arc::default(),
            stop_report: StopReport::default(),
        }
    }

    /// Spawns a task the runner tracks: if it is still running when every service has
    /// stopped, the runner logs it by `name` and cancels it.
    pub fn spawn<F>(&self, name: impl Into<String>, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let handle = self.tasks.tracker.spawn(task);
        self.tasks
            .named
            .lock_unpoisoned()
            .push((name.into(), handle.abort_handle()));
        handle
    }

    /// Registers what a forced exit must do before the process ends (kill child processes).
    /// Hooks run on the forcing thread, newest first, and must not block for long.
    pub fn on_force(&self, hook: impl Fn() + Send + Sync + 'static) {
        self.force_hooks.lock_unpoisoned().push(Box::new(hook));
    }

    /// Runs the hooks registered with [`on_force`](Self::on_force), newest first.
    pub(crate) fn run_force_hooks(&self) {
        for hook in self.force_hooks.lock_unpoisoned().iter().rev() {
            hook();
        }
    }

    pub(crate) fn tasks(&self) -> &TrackedTasks {
        &self.tasks
    }

    pub(crate) fn stop_report(&self) -> &StopReport {
        &self.stop_report
    }
}

/// Tasks spawned through [`ServiceContext::spawn`].
#[derive(Clone, Default)]
pub(crate) struct TrackedTasks {
    pub(crate) tracker: TaskTracker,
    named: Arc<Mutex<Vec<(String, AbortHandle)>>>,
}

impl TrackedTasks {
    /// Closes the tracker and aborts every task still running; returns their names.
    pub(crate) fn abort_leftovers(&self) -> Vec<String> {
        self.tracker.close();
        let mut leftovers = Vec::new();
        for (name, handle) in self.named.lock_unpoisoned().iter() {
            if !handle.is_finished() {
                handle.abort();
                leftovers.push(name.clone());
            }
        }
        leftovers
    }
}

type ForceHook = Box<dyn Fn() + Send + Sync>;

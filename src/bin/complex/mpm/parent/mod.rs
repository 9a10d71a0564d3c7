//! `MPM`, the MultiProcessManager: a blocking API over N worker processes.
//!
//! `start` spawns every worker and runs the two-step handshake (any failure kills and reaps
//! every spawned worker); calls go to the least-loaded live worker, `update` to every worker,
//! one round at a time. One loop watches every worker; an unexpected end fails the calls in
//! flight on it, naming it, and a replacement starts within the restart budget (OTP's
//! restart intensity; past it the application is asked to stop), never once a stop was
//! requested. The stop withdraws every call no worker has begun (it waits for calls in hand,
//! never for a queue), sends the stop command, and kills the late at a deadline. Every
//! deadline is a `graceful::deadline::Deadline`: a stopped run is not counted, no signal
//! extends it, and once the stop has begun a caller waits no longer than the worker's own
//! stop deadline (`answers.rs`).
//!
//! Files: this one holds the state, the start and the stop; [`calls`] and [`answers`] the
//! callers; [`update`]; [`supervision`] (reports, ends, replacements) and [`pump`] (the
//! monitors' loop); [`handshake`] the parent's half of lesson 7; one worker process in
//! [`child`] and [`stdin`] (spawned by `graceful::spawn`, its log cut by
//! `graceful::logging::WholeLines`); [`latch`] a value set once.

use graceful::sync::LockUnpoisoned;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, mpsc::sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use graceful::components::Components;
use graceful::deadline::Deadline;
use nix::sys::resource::{Resource, getrlimit, setrlimit};

use crate::mpm::shared::config::MpmConfig;
use child::WorkerProcess;
use graceful::spawn::{self, Program};
use handshake::Handshaking;
use latch::Latch;
use pump::Pump;
use supervision::Withdrawal;

mod answers;
mod calls;
mod child;
mod handshake;
mod latch;
mod pump;
mod reply;
mod stdin;
mod supervision;
mod update;

pub use reply::{MpmError, Reply};

/// How long `stop` waits for the workers to finish the item in hand and exit.
const WORKER_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a forced exit waits for killed workers to be reaped.
const KILL_REAP_TIMEOUT: Duration = Duration::from_secs(1);

/// The manager; cheap to clone (clones share it).
#[derive(Clone)]
pub struct Mpm {
    shared: Arc<Shared>,
}

struct Shared {
    config: MpmConfig,
    /// This executable, opened once: what every worker runs.
    program: Program,
    components: Components,
    on_fatal: Box<dyn Fn(String) + Send + Sync>,
    /// Whether the application was asked to stop (even if its shield still delays it).
    stop_requested: Box<dyn Fn() -> bool + Send + Sync>,
    /// Current incarnation per slot (None before start and after a failed start).
    slots: Vec<Mutex<Option<Arc<WorkerProcess>>>>,
    pending: Mutex<HashMap<u64, calls::Pending>>,
    next_id: AtomicU64,
    next_turn: AtomicUsize,
    /// Set once the start is decided: `true` running, `false` aborted. A monitor whose
    /// worker dies during the start waits for it before deciding on a replacement.
    start_outcome: Latch<bool>,
    stopping: AtomicBool,
    /// Set by [`Mpm::withdraw_queued`], under the pending lock: no call is registered after.
    withdrawing: AtomicBool,
    /// Wakes the async callers once `withdrawing` is set: their wait is now bounded by the
    /// worker's stop deadline (see `answers.rs`).
    withdrawal_begun: tokio::sync::Notify,
    one_update_at_a_time: Mutex<()>,
    restarts: Mutex<VecDeque<Instant>>,
    /// The monitors' loop over every worker's pipes.
    pump: Pump,
    /// The threads that finish a worker's end (reap, report, replace).
    monitors: Mutex<Vec<JoinHandle<()>>>,
    stats: Stats,
}

#[derive(Default)]
struct Stats {
    calls_ok: AtomicU64,
    calls_failed: AtomicU64,
    calls_withdrawn: AtomicU64,
    calls_refused: AtomicU64,
    updates: AtomicU64,
    restarts: AtomicU64,
}

impl Mpm {
    /// A manager for `config.workers` workers (none spawned yet). `stop_requested` says
    /// whether the application was asked to stop (from then on no worker is replaced);
    /// `on_fatal` is called once the restart budget is exhausted: the application must stop.
    pub fn new(
        config: MpmConfig,
        components: Components,
        stop_requested: impl Fn() -> bool + Send + Sync + 'static,
        on_fatal: impl Fn(String) + Send + Sync + 'static,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                slots: (0..config.workers).map(|_| Mutex::new(None)).collect(),
                config,
                program: Program::this_executable(),
                components,
                on_fatal: Box::new(on_fatal),
                stop_requested: Box::new(stop_requested),
                pending: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                next_turn: AtomicUsize::new(0),
                start_outcome: Latch::new(),
                stopping: AtomicBool::new(false),
                withdrawing: AtomicBool::new(false),
                withdrawal_begun: tokio::sync::Notify::new(),
                one_update_at_a_time: Mutex::new(()),
                restarts: Mutex::new(VecDeque::new()),
                pump: Pump::new(),
                monitors: Mutex::new(Vec::new()),
                stats: Stats::default(),
            }),
        }
    }

    /// Spawns every worker and runs the two-step handshake (`handshake.rs`). On failure
    /// every spawned worker is killed and reaped before this returns.
    pub fn start(&self) -> Result<(), MpmError> {
        let shared = &self.shared;
        shared.components.starting("MPM");
        tracing::debug!("MPM.start: spawning {} workers", shared.config.workers);
        room_for_descriptors(shared.config.workers);
        let mut handshaking = Vec::new();
        for slot in 0..shared.config.workers {
            match shared.launch(slot) {
                Ok(launched) => handshaking.push(launched),
                Err(error) => return Err(self.abort_start(error)),
            }
        }
        if let Err(error) = handshake::complete(&handshaking) {
            return Err(self.abort_start(error));
        }
        shared.start_outcome.set(true);
        shared.components.started("MPM");
        Ok(())
    }

    fn abort_start(&self, error: MpmError) -> MpmError {
        let cause = graceful::logging::chain(&error);
        tracing::error!(
            event = "start-failed",
            cause,
            "MPM.start: start failed: {cause}; killing every spawned worker"
        );
        self.shared.start_outcome.set(false);
        self.kill_all();
        self.shared.join_monitors();
        self.shared.components.failed("MPM", &cause);
        error
    }

    /// The stop's first step: from now on new calls are refused, and each worker answers
    /// every call it has not begun, queued or arriving later, as [`MpmError::Withdrawn`]. The
    /// call in a worker's hands still finishes and is answered; updates are kept (one round
    /// at a time, it is the update task's item in hand). Never blocks (the withdraw command
    /// goes ahead of every call still waiting for room in a pipe; see `stdin.rs`). Idempotent.
    pub fn withdraw_queued(&self) {
        let shared = &self.shared;
        {
            // Under the pending lock: a call registered before this is sent before the
            // withdraw command or after it, and either way it is withdrawn or run.
            let _pending = shared.pending.lock_unpoisoned();
            if shared.withdrawing.swap(true, SeqCst) {
                return;
            }
        }
        shared.withdrawal_begun.notify_waiters();
        let workers = shared.current_workers();
        tracing::debug!(
            event = "withdrawing",
            workers = workers.len(),
            "MPM: withdrawing every call no worker has begun ({} workers); new calls are refused",
            workers.len()
        );
        for worker in &workers {
            // Calls still waiting for room in its stdin never reach it: withdrawn here.
            shared.withdrawn(worker, &worker.stdin.withdraw(), Withdrawal::Unsent);
        }
    }

    /// Stops every worker (withdraw, stop command, deadline, kill), reaps them all, releases
    /// every caller still waiting, and logs a summary. Idempotent.
    pub fn stop(&self) {
        let shared = &self.shared;
        if shared.stopping.swap(true, SeqCst) {
            return;
        }
        shared.components.stopping("MPM");
        self.withdraw_queued();
        let workers = shared.current_workers();
        let mut deadline = Deadline::after(WORKER_STOP_TIMEOUT);
        tracing::debug!(
            event = "stop-sent",
            workers = workers.len(),
            "MPM.stop: sending the stop command to {} workers",
            workers.len()
        );
        for worker in &workers {
            // Calls that came between the withdraw and now, still queued, go no further.
            shared.withdrawn(worker, &worker.stdin.close(), Withdrawal::Unsent);
        }
        tracing::debug!("MPM.stop: waiting for the workers to finish the item in hand and exit");
        for worker in &workers {
            if worker.ended.wait_within(&mut deadline).is_none() {
                Shared::kill_late(worker, "did not exit");
                worker.ended.wait_within(&mut Deadline::after(KILL_REAP_TIMEOUT));
            }
        }
        shared.join_monitors();
        shared.release_waiting_callers();
        let stats = &shared.stats;
        tracing::info!(
            target: "lifecycle",
            component = "MPM",
            event = "summary",
            calls_ok = stats.calls_ok.load(SeqCst),
            calls_failed = stats.calls_failed.load(SeqCst),
            calls_withdrawn = stats.calls_withdrawn.load(SeqCst),
            calls_refused = stats.calls_refused.load(SeqCst),
            updates = stats.updates.load(SeqCst),
            restarts = stats.restarts.load(SeqCst),
            "MPM.stop: summary"
        );
        shared.components.stopped("MPM");
    }

    /// The forced exit's hook: kill every worker now and wait (briefly) for their reaping.
    pub fn kill_all(&self) {
        let shared = &self.shared;
        shared.stopping.store(true, SeqCst);
        // The known workers through their handles first, so each end is reported as the kill
        // it is; then any child the kernel lists, which catches one still in its spawn (until
        // it is gone, its spawning thread waits, holding the reaper's registry).
        let workers = shared.current_workers();
        for worker in &workers {
            worker.kill();
        }
        spawn::kill_every_child();
        let mut deadline = Deadline::after(KILL_REAP_TIMEOUT);
        for worker in workers
            .iter()
            .filter(|worker| worker.ended.wait_within(&mut deadline).is_none())
        {
            tracing::error!(
                worker_pid = worker.pid,
                "MPM: {} was killed but not reaped in time",
                worker.name
            );
        }
    }
}

/// Each worker holds three descriptors of this process (its pipes), all open at once for the
/// monitors' loop: a thousand workers need more than the usual soft limit of 1,024, so it
/// is raised towards the hard limit.
fn room_for_descriptors(workers: usize) {
    let needed = u64::try_from(workers)
        .unwrap_or(u64::MAX)
        .saturating_mul(4)
        .saturating_add(256);
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < needed {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, needed.min(hard), hard);
        }
    }
}

/// Kills and reaps a worker nobody monitors, and settles whoever waits for it.
fn discard(worker: &WorkerProcess, how: &str) {
    worker.kill();
    worker.reap();
    worker.ended.set(how.into());
}

impl Shared {
    /// Spawns the worker for `slot` (signals blocked: see `graceful::spawn`), installs it, and
    /// hands it to the monitors' loop; the caller runs the handshake.
    fn launch(self: &Arc<Self>, slot: usize) -> Result<Handshaking, MpmError> {
        let name = format!("worker-{}", slot + 1);
        let failed = |cause: String| MpmError::StartFailed {
            worker: name.clone(),
            cause,
        };
        self.open_for_calls()
            .map_err(|_| failed("MPM is stopping".into()))?;
        let args = self.config.worker(slot).command_line();
        // No lock is held across the spawn: a child stopped before its exec holds the
        // spawning thread (vfork), and the runtime and the forced exit need the slots.
        let (worker, outputs) =
            WorkerProcess::spawn(&self.program, &args, slot).map_err(|source| MpmError::SpawnFailed {
                worker: name.clone(),
                source,
            })?;
        tracing::debug!(
            event = "spawned",
            worker = %name,
            worker_pid = worker.pid,
            "MPM: spawned {name} (pid {})",
            worker.pid
        );
        {
            // Under the slot's lock: a stop or a forced exit either finds it installed, or
            // began before, and then this worker is ended here.
            let mut current = self.slots[slot].lock_unpoisoned();
            if self.open_for_calls().is_err() {
                drop(current);
                discard(&worker, "killed: MPM began stopping during its spawn");
                return Err(failed("MPM is stopping".into()));
            }
            *current = Some(worker.clone());
        }
        let (hear, heard) = sync_channel(3);
        if let Err(error) = self.watch(worker.clone(), outputs, hear) {
            // Unwatched, nobody would reap it, nor fail its calls: do both here.
            self.fail_in_flight(&worker, "its monitor could not start");
            discard(&worker, "killed: no monitor");
            return Err(failed(format!("cannot create the monitors' thread: {error}")));
        }
        Ok(Handshaking { worker, heard })
    }

    /// Refuses a new call (or update) once the stop has begun.
    fn open_for_calls(&self) -> Result<(), MpmError> {
        match (self.stopping.load(SeqCst), self.withdrawing.load(SeqCst)) {
            (true, _) => Err(MpmError::Stopped),
            (false, true) => Err(MpmError::Stopping),
            (false, false) => Ok(()),
        }
    }

    /// Whether the stop has begun or been requested: no worker is replaced from then on.
    fn stop_begun(&self) -> bool {
        self.stopping.load(SeqCst) || self.withdrawing.load(SeqCst) || (self.stop_requested)()
    }

    fn current_workers(&self) -> Vec<Arc<WorkerProcess>> {
        self.slots
            .iter()
            .filter_map(|slot| slot.lock_unpoisoned().clone())
            .collect()
    }

    /// Ends the monitors' loop, then joins every thread that finishes a worker's end.
    fn join_monitors(&self) {
        self.close_pump();
        loop {
            let monitors = std::mem::take(&mut *self.monitors.lock_unpoisoned());
            if monitors.is_empty() {
                return;
            }
            for monitor in monitors {
                let _ = monitor.join();
            }
        }
    }
}

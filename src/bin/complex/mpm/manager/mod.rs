//! `MPM`, the MultiProcessManager: a blocking API over N worker processes.
//!
//! - `start`: spawn every worker, then the reference's two-step handshake: every worker
//!   `bootstrapped` within 5 s, then every worker `started` within 30 s. Any failure or delay
//!   kills and reaps every spawned worker and fails the start.
//! - `process_string` / `process_number`: sent to the least-loaded live worker; the caller
//!   blocks for the answer (30 s at most). `update`: sent to every worker, one update at a
//!   time, waiting for all.
//! - A monitor thread per worker reads its answers and notices its end at once (end of its
//!   stdout). An unexpected end fails the calls in flight on it, naming it, and starts a
//!   replacement with the handshake while the others keep serving; past the restart budget
//!   (OTP's restart intensity: N restarts within T) the manager asks the application to stop.
//! - `withdraw_queued`: the first step of the stop. New calls are refused, and every worker
//!   answers each call it has not begun as withdrawn, so the stop waits only for the calls in
//!   workers' hands, never for a queue, however many busy tasks there are.
//! - `stop`: withdraw (if not done yet), the stop command to every worker, wait with a
//!   deadline, kill the late ones, reap all, then release every caller still waiting with an
//!   error. Idempotent. Once a stop is requested (even while the shield still delays it),
//!   a worker that dies is reported `failed` and never replaced: a supervisor that is
//!   shutting down restarts nothing.
//! - Every deadline (each handshake step, an update round, a worker's stop, a call) judges
//!   what the worker had *sent* by then, not what this process happened to have read when it
//!   woke: see `arrivals.rs`.
//!
//! Files: this one holds the API, start and stop; [`supervision`] the monitors and
//! restarts; [`pump`] the monitor's loop over a worker's pipes; [`calls`] the waiting
//! callers.

use graceful::sync::LockUnpoisoned;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use graceful::components::Components;
use graceful::logging::LogFormat;
use graceful::time_scale::TimeScale;
use tracing_subscriber::filter::LevelFilter;

use super::child::WorkerProcess;
use super::latch::Latch;
use super::protocol::{Command, Method};
use crate::cli::{Fault, WorkerArgs};
use tokio::sync::oneshot;

mod calls;
mod pump;
mod supervision;

/// The reference's two-step handshake: each step, and how long every worker has for it.
const HANDSHAKE: [(Handshake, Duration); 2] = [
    (Handshake::Bootstrapped, Duration::from_secs(5)),
    (Handshake::Started, Duration::from_secs(30)),
];
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
const UPDATE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `stop` waits for the workers to finish the item in hand and exit.
const WORKER_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a forced exit waits for killed workers to be reaped.
const KILL_REAP_TIMEOUT: Duration = Duration::from_secs(1);

/// What the manager is told at construction.
#[derive(Clone, Debug)]
pub struct MpmConfig {
    /// How many worker processes.
    pub workers: usize,
    /// Passed to the workers: their simulated work is scaled by it.
    pub time_scale: TimeScale,
    /// Passed to the workers, so their lines match the parent's.
    pub log_format: LogFormat,
    /// Passed to the workers.
    pub log_level: LevelFilter,
    /// The worker (1-based) whose start fails on purpose (`--fail-start worker-N`).
    pub fail_start: Option<usize>,
    /// A planted fault, for proving the torture tool catches it.
    pub fault: Option<Fault>,
    /// Restart budget: at most this many restarts ...
    pub restart_limit: u32,
    /// ... within this window.
    pub restart_window: Duration,
}

/// What a call or an update answered.
#[derive(Debug)]
pub enum Reply {
    /// A `process_*` call ran at this DummyManager version; the parameter is echoed.
    Processed {
        /// The worker's DummyManager version.
        version: u64,
        /// The parameter, echoed.
        parameter: Method,
    },
    /// An update finished at this version.
    Updated {
        /// The new version.
        version: u64,
    },
}

/// Why a manager operation failed. Messages read after "failed to ...".
#[derive(Debug, thiserror::Error)]
pub enum MpmError {
    /// The manager is stopped (or stopping): nothing new is accepted.
    #[error("MPM is stopped")]
    Stopped,
    /// The stop has begun: new calls are refused.
    #[error("MPM is stopping and takes no new calls")]
    Stopping,
    /// The stop began while the call waited in a worker's queue: it never ran.
    #[error("withdrawn at the stop before a worker began it")]
    Withdrawn,
    /// The stop came first: the caller was released without a result.
    #[error("stopped while waiting for the result")]
    StoppedWhileWaiting,
    /// The stop came in the middle of an update.
    #[error("stopped while updating")]
    StoppedWhileUpdating,
    /// The worker handling the call ended before answering.
    #[error("{worker} crashed while handling the call ({how})")]
    WorkerCrashed {
        /// `worker-N`.
        worker: String,
        /// How it ended.
        how: String,
    },
    /// No worker can take a call right now (every one is being replaced).
    #[error("no worker is available")]
    NoWorker,
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// A worker could not be spawned or failed its handshake.
    #[error("{worker} failed to start: {cause}")]
    StartFailed {
        /// `worker-N`.
        worker: String,
        /// What went wrong.
        cause: String,
    },
}

impl MpmError {
    /// Whether the call was not run because the stop had begun (refused or withdrawn): the
    /// stop's doing, not a fault.
    pub fn is_the_stop(&self) -> bool {
        matches!(self, Self::Stopping | Self::Withdrawn | Self::Stopped)
    }
}

/// The manager; cheap to clone (clones share it).
#[derive(Clone)]
pub struct Mpm {
    shared: Arc<Shared>,
}

struct Shared {
    config: MpmConfig,
    exe: PathBuf,
    components: Components,
    on_fatal: Box<dyn Fn(String) + Send + Sync>,
    /// Whether the application was asked to stop (even if its shield still delays it).
    stop_requested: Box<dyn Fn() -> bool + Send + Sync>,
    /// Current incarnation per slot (None before start and after a failed start).
    slots: Vec<Mutex<Option<Arc<WorkerProcess>>>>,
    pending: Mutex<HashMap<u64, Pending>>,
    next_id: AtomicU64,
    next_turn: AtomicUsize,
    /// Set once the start is decided: `true` running, `false` aborted. A monitor whose
    /// worker dies during the start waits for it before deciding on a replacement.
    start_outcome: Latch<bool>,
    stopping: AtomicBool,
    /// Set by [`Mpm::withdraw_queued`], under the pending lock: no call is registered after.
    withdrawing: AtomicBool,
    one_update_at_a_time: Mutex<()>,
    restarts: Mutex<VecDeque<Instant>>,
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

/// A caller waiting for an answer from a given incarnation.
struct Pending {
    worker: Arc<WorkerProcess>,
    what: &'static str,
    waiter: Waiter,
}

/// How a caller waits: a blocked thread (the reference's API), or an async task.
enum Waiter {
    Blocking(SyncSender<Result<Reply, MpmError>>),
    Async(oneshot::Sender<Result<Reply, MpmError>>),
}

impl Waiter {
    /// Hands over the answer; `false` when the caller had stopped waiting.
    fn answer(self, answer: Result<Reply, MpmError>) -> bool {
        match self {
            Self::Blocking(reply) => reply.try_send(answer).is_ok(),
            Self::Async(reply) => reply.send(answer).is_ok(),
        }
    }
}

/// A call sent with [`Mpm::submit`]; await its answer with [`AwaitedReply::wait`].
#[must_use = "the call runs anyway; drop this only to abandon its answer"]
pub struct AwaitedReply {
    id: u64,
    worker: Arc<WorkerProcess>,
    answer: oneshot::Receiver<Result<Reply, MpmError>>,
    mpm: Mpm,
}

impl AwaitedReply {
    /// Waits for the answer, 30 s at most. Dropping this future abandons the answer, never
    /// the call: the worker runs it anyway, and the manager logs the answer nobody took.
    pub async fn wait(mut self) -> Result<Reply, MpmError> {
        let stats = &self.mpm.shared.stats;
        let deadline = Instant::now() + CALL_TIMEOUT;
        // `None`: no answer by the deadline; `Some(Err(()))`: released without one.
        let answer = match tokio::time::timeout_at(deadline.into(), &mut self.answer).await {
            Ok(answer) => Some(answer.map_err(drop)),
            Err(_) => {
                // Past the deadline: first take in what the worker sent by then.
                self.worker.arrivals.catch_up_async(deadline).await;
                match self.answer.try_recv() {
                    Ok(answer) => Some(Ok(answer)),
                    Err(oneshot::error::TryRecvError::Empty) => None,
                    Err(oneshot::error::TryRecvError::Closed) => Some(Err(())),
                }
            }
        };
        let result = match answer {
            Some(Ok(answer)) => answer,
            Some(Err(_)) => Err(MpmError::StoppedWhileWaiting),
            None => {
                self.mpm.shared.forget(self.id);
                tracing::error!("MPM: call {} timed out", self.id);
                Err(MpmError::Timeout(CALL_TIMEOUT))
            }
        };
        stats.count_call(&result);
        result
    }
}

/// A handshake step, from a monitor to whoever started the worker.
enum Handshake {
    Bootstrapped,
    Started,
    Failed(String),
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
        let exe = std::env::current_exe()
            .unwrap_or_else(|_| PathBuf::from(std::env::args_os().next().unwrap_or_default()));
        Self {
            shared: Arc::new(Shared {
                slots: (0..config.workers).map(|_| Mutex::new(None)).collect(),
                config,
                exe,
                components,
                on_fatal: Box::new(on_fatal),
                stop_requested: Box::new(stop_requested),
                pending: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                next_turn: AtomicUsize::new(0),
                start_outcome: Latch::new(),
                stopping: AtomicBool::new(false),
                withdrawing: AtomicBool::new(false),
                one_update_at_a_time: Mutex::new(()),
                restarts: Mutex::new(VecDeque::new()),
                monitors: Mutex::new(Vec::new()),
                stats: Stats::default(),
            }),
        }
    }

    /// Spawns every worker and runs the two-step handshake. On failure every spawned worker
    /// is killed and reaped before this returns.
    pub fn start(&self) -> Result<(), MpmError> {
        let shared = &self.shared;
        shared.components.starting("MPM");
        tracing::debug!("MPM.start: spawning {} workers", shared.config.workers);
        let mut handshakes = Vec::new();
        for slot in 0..shared.config.workers {
            match shared.launch(slot) {
                Ok(launched) => handshakes.push(launched),
                Err(error) => return Err(self.abort_start(error)),
            }
        }
        for (step, timeout) in &HANDSHAKE {
            let step_name = step.name();
            tracing::debug!(
                "MPM.start: waiting for every worker to report {step_name:?} (timeout {timeout:?})"
            );
            let deadline = Instant::now() + *timeout;
            for (worker, handshake) in &handshakes {
                if let Err(error) = await_step(worker, handshake, step, deadline) {
                    return Err(self.abort_start(error));
                }
            }
        }
        shared.start_outcome.set(true);
        shared.components.started("MPM");
        Ok(())
    }

    fn abort_start(&self, error: MpmError) -> MpmError {
        tracing::error!("MPM.start: start failed: {error}; killing every spawned worker");
        self.shared.start_outcome.set(false);
        self.kill_all();
        self.shared.join_monitors();
        self.shared.components.failed("MPM", &error);
        error
    }

    /// The stop's first step: from now on new calls are refused, and each worker answers
    /// every call it has not begun, queued or arriving later, as [`MpmError::Withdrawn`]. The
    /// call in a worker's hands still finishes and is answered; updates are kept (one round
    /// at a time, it is the update task's item in hand). Never blocks (the withdraw command
    /// is written when the pipe has room; see `child.rs`). Idempotent.
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
        let workers = shared.current_workers();
        tracing::debug!(
            "MPM: withdrawing every call no worker has begun ({} workers); new calls are refused",
            workers.len()
        );
        for worker in &workers {
            worker.withdraw();
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
        let deadline = Instant::now() + WORKER_STOP_TIMEOUT;
        tracing::debug!("MPM.stop: sending the stop command to {} workers", workers.len());
        for worker in &workers {
            worker.close();
        }
        tracing::debug!("MPM.stop: waiting for the workers to finish the item in hand and exit");
        for worker in &workers {
            if !ended_by(worker, deadline) {
                tracing::warn!(
                    worker_pid = worker.pid,
                    "MPM.stop: {} did not exit within {WORKER_STOP_TIMEOUT:?}; killing it",
                    worker.name
                );
                worker.kill();
                worker.wait_ended(Instant::now() + KILL_REAP_TIMEOUT);
            }
        }
        shared.join_monitors();
        shared.release_waiting_callers();
        let stats = &shared.stats;
        tracing::info!(
            target: "lifecycle",
            component = "MPM",
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
        self.shared.stopping.store(true, SeqCst);
        self.shared.kill_all_and_reap();
    }

    /// Runs `update()` in every worker, one update at a time; returns the new version.
    pub fn update(&self) -> Result<u64, MpmError> {
        let shared = &self.shared;
        let _one = shared.one_update_at_a_time.lock_unpoisoned();
        if shared.stopping.load(SeqCst) {
            return Err(MpmError::Stopped);
        }
        if shared.withdrawing.load(SeqCst) {
            return Err(MpmError::Stopping);
        }
        tracing::info!("MPM.update: started");
        // A worker being replaced misses this update: its replacement starts at version 1.
        let workers: Vec<_> = shared
            .current_workers()
            .into_iter()
            .filter(|w| w.alive.load(SeqCst))
            .collect();
        if workers.is_empty() {
            return Err(MpmError::NoWorker);
        }
        let (reply, replies) = sync_channel(workers.len());
        let mut expected = 0;
        for worker in &workers {
            let id = shared.next_id.fetch_add(1, SeqCst);
            shared.register(id, worker, "update", Waiter::Blocking(reply.clone()))?;
            match worker.send(&Command::Update { id }) {
                Ok(()) => expected += 1,
                Err(_) => shared.forget(id),
            }
        }
        drop(reply);
        let deadline = Instant::now() + UPDATE_TIMEOUT;
        let mut version = 0;
        let sent_to: Vec<&WorkerProcess> = workers.iter().map(|w| &**w).collect();
        for _ in 0..expected {
            let answer = match recv_by(&replies, deadline, &sent_to) {
                Ok(answer) => answer,
                Err(RecvTimeoutError::Timeout) => Err(MpmError::Timeout(UPDATE_TIMEOUT)),
                Err(RecvTimeoutError::Disconnected) => break,
            };
            match answer {
                Ok(Reply::Updated { version: v }) => version = version.max(v),
                Ok(Reply::Processed { .. }) => {}
                Err(_) if shared.stopping.load(SeqCst) => {
                    tracing::error!("MPM.update: stopped while updating");
                    return Err(MpmError::StoppedWhileUpdating);
                }
                Err(error) => {
                    tracing::error!("MPM.update: failed: {error}");
                    return Err(error);
                }
            }
        }
        shared.stats.updates.fetch_add(1, SeqCst);
        tracing::info!("MPM.update: finished, version {version}");
        Ok(version)
    }

    /// `process_string(parameter)` in some worker, blocking (the reference's API).
    pub fn process_string(&self, parameter: String) -> Result<Reply, MpmError> {
        self.call(Method::ProcessString(parameter))
    }

    /// `process_number(parameter)` in some worker, blocking (the reference's API).
    pub fn process_number(&self, parameter: i64) -> Result<Reply, MpmError> {
        self.call(Method::ProcessNumber(parameter))
    }

    /// Runs `method` in some worker; this thread blocks until the answer (30 s at most).
    pub fn call(&self, method: Method) -> Result<Reply, MpmError> {
        let result = self.shared.call(method);
        self.shared.stats.count_call(&result);
        result
    }

    /// Sends `method` to some worker and returns at once: no thread waits for the answer,
    /// which arrives on the returned handle. (Writing the frame may block if the worker's
    /// pipe is full, so async callers still submit from the blocking pool.)
    pub fn submit(&self, method: Method) -> Result<AwaitedReply, MpmError> {
        let (reply, answer) = oneshot::channel();
        let (id, worker) = self.shared.dispatch(method, Waiter::Async(reply))?;
        Ok(AwaitedReply {
            id,
            worker,
            answer,
            mpm: self.clone(),
        })
    }
}

impl Stats {
    fn count_call(&self, result: &Result<Reply, MpmError>) {
        let counter = match result {
            Ok(_) => &self.calls_ok,
            Err(MpmError::Withdrawn) => &self.calls_withdrawn,
            Err(MpmError::Stopping | MpmError::Stopped) => &self.calls_refused,
            Err(_) => &self.calls_failed,
        };
        counter.fetch_add(1, SeqCst);
    }
}

/// Receives from `channel`, fed by the monitors of `workers`, by `deadline`. At the deadline
/// it decides only after those monitors took in everything sent before it (see
/// `arrivals.rs`): a report that was in a pipe counts, however late this thread woke.
fn recv_by<T>(
    channel: &Receiver<T>,
    deadline: Instant,
    workers: &[&WorkerProcess],
) -> Result<T, RecvTimeoutError> {
    match channel.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Err(RecvTimeoutError::Timeout) => {
            for worker in workers {
                worker.arrivals.catch_up(deadline);
            }
            channel.try_recv().map_err(|error| match error {
                TryRecvError::Empty => RecvTimeoutError::Timeout,
                TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
            })
        }
        received => received,
    }
}

/// Waits until `worker` ended and was reaped, judging by `deadline` whether it closed its
/// report stream (it exits right after) in time, not whether this thread woke in time.
fn ended_by(worker: &WorkerProcess, deadline: Instant) -> bool {
    if worker.wait_ended(deadline) {
        return true;
    }
    worker.arrivals.catch_up(deadline);
    // Its stream ended by the deadline: it is exiting; its monitor reaps it at once.
    worker.arrivals.ended() && worker.wait_ended(Instant::now() + KILL_REAP_TIMEOUT)
}

impl Handshake {
    fn name(&self) -> &'static str {
        match self {
            Self::Bootstrapped => "bootstrapped",
            Self::Started => "started",
            Self::Failed(_) => "failed",
        }
    }
}

/// Waits for `worker` to report `step` by `deadline`.
fn await_step(
    worker: &WorkerProcess,
    handshake: &Receiver<Handshake>,
    step: &Handshake,
    deadline: Instant,
) -> Result<(), MpmError> {
    let failed = |cause: String| MpmError::StartFailed {
        worker: worker.name.clone(),
        cause,
    };
    match recv_by(handshake, deadline, &[worker]) {
        Ok(Handshake::Failed(cause)) => Err(failed(cause)),
        Ok(reported) if reported.name() == step.name() => Ok(()),
        Ok(reported) => Err(failed(format!(
            "reported {:?} instead of {:?}",
            reported.name(),
            step.name()
        ))),
        Err(RecvTimeoutError::Timeout) => Err(failed(format!("no {:?} report in time", step.name()))),
        Err(RecvTimeoutError::Disconnected) => Err(failed("ended during the handshake".into())),
    }
}

impl Shared {
    /// Spawns the worker for `slot`, installs it, and starts its monitor thread.
    fn launch(self: &Arc<Self>, slot: usize) -> Result<(Arc<WorkerProcess>, Receiver<Handshake>), MpmError> {
        let name = format!("worker-{}", slot + 1);
        let failed = |cause: String| MpmError::StartFailed {
            worker: name.clone(),
            cause,
        };
        let mut current = self.slots[slot].lock_unpoisoned();
        if self.stopping.load(SeqCst) || self.withdrawing.load(SeqCst) {
            return Err(failed("MPM is stopping".into()));
        }
        let (worker, outputs) = WorkerProcess::spawn(&self.exe, &self.worker_args(slot), slot)
            .map_err(|e| failed(e.to_string()))?;
        tracing::debug!(
            worker_pid = worker.pid,
            "MPM: spawned {name} (pid {})",
            worker.pid
        );
        *current = Some(worker.clone());
        drop(current);
        let (handshake, handshakes) = sync_channel(3);
        let shared = self.clone();
        let monitored = worker.clone();
        let monitor = std::thread::Builder::new()
            .name(format!("MPM-{name}"))
            .spawn(move || shared.monitor(monitored, outputs, handshake));
        match monitor {
            Ok(monitor) => self.monitors.lock_unpoisoned().push(monitor),
            Err(error) => {
                // Without a monitor nobody would reap it, nor fail its calls: do both here.
                self.fail_in_flight(&worker, "its monitor thread could not start");
                worker.kill();
                worker.reap();
                worker.arrivals.end();
                worker.set_ended("killed: no monitor".into());
                return Err(failed(format!("cannot create its monitor thread: {error}")));
            }
        }
        Ok((worker, handshakes))
    }

    fn worker_args(&self, slot: usize) -> Vec<String> {
        let config = &self.config;
        WorkerArgs {
            index: u16::try_from(slot + 1).unwrap_or(u16::MAX),
            time_scale: config.time_scale,
            log_format: config.log_format,
            log_level: config.log_level,
            fail_start: config.fail_start == Some(slot + 1),
            inject_fault: config.fault,
        }
        .to_args()
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

    fn kill_all_and_reap(&self) {
        let workers = self.current_workers();
        for worker in &workers {
            worker.kill();
        }
        let deadline = Instant::now() + KILL_REAP_TIMEOUT;
        for worker in &workers {
            if !worker.wait_ended(deadline) {
                tracing::error!(
                    worker_pid = worker.pid,
                    "MPM: {} was killed but not reaped in time",
                    worker.name
                );
            }
        }
    }

    /// Joins every monitor thread, including any started while joining (a replacement).
    fn join_monitors(&self) {
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

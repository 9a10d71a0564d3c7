//! The shutdown controller: where signals, the shield and the stop request meet.
//!
//! Every way a stop can be asked for ends here: a signal ([`Shutdown::on_signal`]),
//! `--run-for` elapsing or a fatal error ([`Shutdown::request`]). The controller counts the
//! signals, asks [`escalation::decide`] what each one means, logs the decision, and
//! performs it: cancel the stop token now, defer that through the [`Shield`], or force the
//! exit through the handler the application installed.

use crate::sync::LockUnpoisoned;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::{SetOnce, watch};
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::escalation::{self, SignalAction};
use crate::shield::{Shield, ShieldGuard};
use crate::signals::ShutdownSignal;

/// Why a stop was requested; the first request wins and decides the exit status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// A shutdown signal (the first one received).
    Signal(ShutdownSignal),
    /// `--run-for` elapsed.
    RunForElapsed,
    /// Something the application cannot run without failed (e.g. the worker restart budget).
    Fatal(String),
    /// A service failed to start; what had started is being stopped.
    StartFailed(String),
}

impl StopReason {
    /// The `reason` field's value in the logs: `signal`, `run-for`, `fatal`, `start-failed`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Signal(_) => "signal",
            Self::RunForElapsed => "run-for",
            Self::Fatal(_) => "fatal",
            Self::StartFailed(_) => "start-failed",
        }
    }
}

/// Why the exit is being forced.
#[derive(Clone, Debug)]
pub enum ForceReason {
    /// The `--force-after`th signal arrived.
    Signal {
        /// The signal that tipped it.
        signal: ShutdownSignal,
        /// How many shutdown signals had arrived, this one included.
        count: u32,
    },
    /// The stop outlived `--stop-timeout`.
    StopTimeout(std::time::Duration),
}

impl std::fmt::Display for ForceReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Signal { signal, count } => write!(f, "{signal} was shutdown signal #{count}"),
            Self::StopTimeout(timeout) => {
                write!(
                    f,
                    "stop did not finish within --stop-timeout {}",
                    humantime::format_duration(*timeout)
                )
            }
        }
    }
}

type ForceHandler = Box<dyn Fn(ForceReason) + Send + Sync>;

/// Shared handle to the controller; clones share the state.
///
/// Protocol: [`token`](Self::token) is cancelled when a stop is *delivered*: at once when
/// nothing is shielded, or when the last [`ShieldGuard`] drops. Until then the request is
/// only recorded. Signals after the first are counted; the `force_after`th forces the exit.
#[derive(Clone)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

struct Inner {
    shield: Shield,
    token: CancellationToken,
    requested: AtomicBool,
    state: Mutex<State>,
    force_after: u32,
    on_force: OnceLock<ForceHandler>,
    /// Without a handler, a forced exit is recorded here and the runner returns at once.
    forced: SetOnce<ForceReason>,
    /// The signal count, for services whose stop has stages of their own.
    signals: watch::Sender<u32>,
}

#[derive(Default)]
struct State {
    signal_count: u32,
    first_signal: Option<ShutdownSignal>,
    reason: Option<StopReason>,
    fatal: Option<String>,
    /// What the shield currently protects, for the "delaying until ..." message.
    stage: &'static str,
    /// The exit status is decided and the exit event on its way: a signal now changes
    /// nothing, and is not logged ([`Shutdown::seal`]).
    sealed: bool,
}

impl Shutdown {
    /// A controller whose `force_after`th signal forces the exit (0: never).
    pub fn new(force_after: u32) -> Self {
        Self {
            inner: Arc::new(Inner {
                shield: Shield::new(),
                token: CancellationToken::new(),
                requested: AtomicBool::new(false),
                state: Mutex::new(State {
                    stage: "start",
                    ..State::default()
                }),
                force_after,
                on_force: OnceLock::new(),
                forced: SetOnce::new(),
                signals: watch::Sender::new(0),
            }),
        }
    }

    /// Installs what a forced exit does in a process (it must not return): it acts at once,
    /// on the forcing thread, whatever the runtime is doing. Only the first call counts.
    /// Without one (the runner embedded in a test or another program), a forced exit makes
    /// [`Runner::run`](crate::runner::Runner::run) return instead.
    pub fn set_force_handler(&self, handler: impl Fn(ForceReason) + Send + Sync + 'static) {
        let _ = self.inner.on_force.set(Box::new(handler));
    }

    /// Raises the shield: requests are delayed until every guard has dropped.
    /// `stage` names what is protected ("start", "stop") in the delay message.
    pub fn shield(&self, stage: &'static str) -> ShieldGuard {
        self.lock().stage = stage;
        self.inner.shield.hold()
    }

    /// The stop token: cancelled once a stop request is delivered.
    pub fn token(&self) -> CancellationToken {
        self.inner.token.clone()
    }

    /// Resolves when a stop request is delivered. Cancel-safe.
    pub fn delivered(&self) -> WaitForCancellationFuture<'_> {
        self.inner.token.cancelled()
    }

    /// Whether a stop request has been delivered (the token is cancelled).
    pub fn is_delivered(&self) -> bool {
        self.inner.token.is_cancelled()
    }

    /// How many shutdown signals have been received, as a watch that changes with each one
    /// (counted before it is acted on). For a service whose stop has stages of its own: an
    /// HTTP drain ends its floor early at the second signal, while the `force_after`th still
    /// forces the exit as always.
    pub fn signal_count(&self) -> watch::Receiver<u32> {
        self.inner.signals.subscribe()
    }

    /// Whether a stop was requested, delivered or still delayed by the shield.
    pub fn is_requested(&self) -> bool {
        self.inner.requested.load(SeqCst)
    }

    /// The first shutdown signal received, if any: the process ends by it.
    pub fn first_signal(&self) -> Option<ShutdownSignal> {
        self.lock().first_signal
    }

    /// Why the stop was requested, if it was.
    pub fn reason(&self) -> Option<StopReason> {
        self.lock().reason.clone()
    }

    /// Requests a stop for a reason other than a signal. Not shielded: `--run-for` fires
    /// only while running, and a fatal error must not wait. The first request is the stop's
    /// reason; a fatal error is remembered even when it comes later (it decides the exit
    /// status), so a crash loop during a `--run-for` stop still exits 1.
    pub fn request(&self, reason: StopReason) {
        {
            let mut state = self.lock();
            if let StopReason::Fatal(cause) = &reason {
                state.fatal.get_or_insert_with(|| cause.clone());
            }
            if self.inner.requested.swap(true, SeqCst) {
                if let StopReason::Fatal(cause) = &reason {
                    tracing::error!(target: "lifecycle", "fatal error during the stop: {cause}");
                }
                return;
            }
            tracing::info!(target: "lifecycle", reason = reason.kind(), "stop requested: {}", describe(&reason));
            state.reason = Some(reason);
        }
        self.inner.token.cancel();
    }

    /// The first fatal error reported, if any: the process then exits 1 (or by its signal).
    pub fn fatal(&self) -> Option<String> {
        self.lock().fatal.clone()
    }

    /// Handles one arriving shutdown signal: count, decide, log, act.
    ///
    /// Counted, decided and logged under the state's lock, which [`seal`](Self::seal) takes
    /// too: a signal is either logged before the exit event and decides the status, or
    /// arrives after the seal and does neither. Logging hands the line to a queue and never
    /// waits for stderr (see [`crate::logging`]), so holding the lock meanwhile is short.
    /// The act comes after the lock is released: it may run the force handler, which reads
    /// this state again.
    pub fn on_signal(&self, signal: ShutdownSignal) {
        let action_count_stage = {
            let mut state = self.lock();
            if state.sealed {
                return;
            }
            state.signal_count += 1;
            self.inner.signals.send_replace(state.signal_count);
            state.first_signal.get_or_insert(signal);
            let action = escalation::decide(
                state.signal_count,
                self.inner.requested.load(SeqCst),
                self.inner.shield.is_held(),
                self.inner.force_after,
            );
            if matches!(action, SignalAction::Delayed | SignalAction::Shutdown) {
                self.inner.requested.store(true, SeqCst);
                state.reason = Some(StopReason::Signal(signal));
            }
            log_received(
                signal,
                action,
                state.signal_count,
                state.stage,
                self.inner.force_after,
            );
            (action, state.signal_count, state.stage)
        };
        match action_count_stage {
            (SignalAction::Delayed, _, stage) => {
                let name = signal.name();
                let token = self.inner.token.clone();
                self.inner.shield.defer(move || {
                    tracing::warn!(target: "lifecycle", signal = name, "delivering the delayed {name}: {stage} completed, stopping now");
                    token.cancel();
                });
            }
            (SignalAction::Shutdown, ..) => self.inner.token.cancel(),
            (SignalAction::Counted { .. }, ..) => {}
            (SignalAction::Forced, count, _) => self.force(ForceReason::Signal { signal, count }),
        }
    }

    /// The exit status is being decided, and the exit event written next: from now on a
    /// signal is neither counted nor logged. Returns the first signal received, which
    /// decides the status (the process ends by it).
    pub fn seal(&self) -> Option<ShutdownSignal> {
        let mut state = self.lock();
        state.sealed = true;
        state.first_signal
    }

    /// Forces the exit through the installed handler; without one, records the reason and
    /// wakes [`forced`](Self::forced). Only the first forced exit counts.
    pub fn force(&self, reason: ForceReason) {
        match self.inner.on_force.get() {
            Some(handler) => handler(reason),
            None => {
                let _ = self.inner.forced.set(reason);
            }
        }
    }

    /// Why the exit was forced, if it was (without a force handler).
    pub fn forced_reason(&self) -> Option<ForceReason> {
        self.inner.forced.get().cloned()
    }

    /// Resolves with the reason once the exit is forced (without a force handler). Cancel-safe.
    pub async fn forced(&self) -> ForceReason {
        self.inner.forced.wait().await.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock_unpoisoned()
    }
}

/// The line for a received signal: what it did, and why.
fn log_received(signal: ShutdownSignal, action: SignalAction, count: u32, stage: &str, force_after: u32) {
    let (name, act) = (signal.name(), action.as_str());
    match action {
        SignalAction::Delayed => {
            tracing::warn!(target: "lifecycle", signal = name, action = act, count, "{name} received; delaying shutdown until {stage} completes");
        }
        SignalAction::Shutdown => {
            tracing::warn!(target: "lifecycle", signal = name, action = act, count, "{name} received; shutting down");
        }
        SignalAction::Counted {
            remaining: Some(remaining),
        } => {
            tracing::warn!(
                target: "lifecycle",
                signal = name, action = act, count, remaining,
                "{name} received (#{count}); the stop is already under way; {remaining} more will force the exit"
            );
        }
        SignalAction::Counted { remaining: None } => {
            tracing::warn!(
                target: "lifecycle",
                signal = name, action = act, count,
                "{name} received (#{count}); the stop is already under way; forcing is off (--force-after 0)"
            );
        }
        SignalAction::Forced => {
            tracing::error!(target: "lifecycle", signal = name, action = act, count, "{name} received (#{count}); forcing the exit (--force-after {force_after})");
        }
    }
}

fn describe(reason: &StopReason) -> String {
    match reason {
        StopReason::Signal(signal) => format!("{signal} received"),
        StopReason::RunForElapsed => "--run-for elapsed".into(),
        StopReason::Fatal(cause) => format!("fatal error: {cause}"),
        StopReason::StartFailed(component) => format!("{component} failed to start"),
    }
}

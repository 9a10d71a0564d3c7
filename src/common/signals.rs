//! Signal intake: OS signals become [`ShutdownSignal`] values at this one edge.
//!
//! **Problem.** Three signals mean "please stop": SIGINT (a terminal's Ctrl+C), SIGTERM
//! (`kill`, an init system) and SIGHUP (the terminal went away). The logs must name the one
//! that arrived and the process must, once stopped, end by that same signal. `ctrlc` is the
//! portable way to catch Ctrl+C (it also covers the Windows console), but its handler does
//! not say which signal fired (ctrlc issue #129), and it *overwrites* an existing SIGINT
//! handler, while signal-hook's handlers chain.
//!
//! **Fix.** One intake per process, and each signal has exactly one owner: `ctrlc` owns
//! SIGINT (built without its `termination` feature, so it touches nothing else); one
//! signal-hook thread owns every other signal the process watches: SIGTERM and SIGHUP, and
//! SIGCHLD when the process must reap orphans ([`crate::reaper`]). Each is mapped to a
//! domain value at this edge and handed to its consumer on an ordinary thread (never inside
//! the async-signal context), so the consumer may lock and log.
//!
//! **Two more rules of the Unix convention.** A signal ignored when the process starts stays
//! ignored: `nohup` ignores SIGHUP, a non-interactive shell's background job starts with
//! SIGINT ignored, and a program that installs a handler anyway defeats them (CPython checks
//! first; ctrlc and signal-hook do not). So [`install`] leaves such a signal alone and
//! reports it. And no signal is lost before intake: `main` calls [`block_until_intake`]
//! first thing, so a Ctrl+C during argument parsing or logging setup stays pending and is
//! acted on once [`install`] unblocks it, instead of killing the process silently.
//!
//! Past this module no code registers a handler or sees a signal number, except
//! the process edge, which resets a signal to its default to end the process by it.

use std::fmt;
use std::sync::Arc;

use nix::sys::signal::{SigSet, Signal};
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGTERM};
use signal_hook::iterator::Signals;

/// A request to stop, named by the signal that carried it.
///
/// The variants are named by the Unix signal because that is what the logs and the exit
/// status report; the Windows counterpart is given on each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShutdownSignal {
    /// SIGINT: a terminal's Ctrl+C. Windows: the console's Ctrl+C or Ctrl+Break (via ctrlc).
    Interrupt,
    /// SIGTERM: `kill PID`, an init system, a container runtime. Windows: none.
    Terminate,
    /// SIGHUP: the controlling terminal closed. Windows: none.
    Hangup,
}

impl ShutdownSignal {
    /// Every variant, in the order the docs list them.
    pub const ALL: [ShutdownSignal; 3] = [Self::Interrupt, Self::Terminate, Self::Hangup];

    /// The conventional Unix name, as the logs spell it (`SIGINT`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Interrupt => "SIGINT",
            Self::Terminate => "SIGTERM",
            Self::Hangup => "SIGHUP",
        }
    }

    /// The signal as nix names it, for the few calls that act on it.
    pub fn nix(self) -> Signal {
        match self {
            Self::Interrupt => Signal::SIGINT,
            Self::Terminate => Signal::SIGTERM,
            Self::Hangup => Signal::SIGHUP,
        }
    }

    /// The signal's number on this platform (2, 15 and 1 on Linux).
    pub fn number(self) -> i32 {
        self.nix() as i32
    }

    /// The status a shell reports for a process ended by this signal: 128 + N.
    pub fn exit_code(self) -> i32 {
        128 + self.number()
    }
}

impl fmt::Display for ShutdownSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why the signal handlers could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    /// ctrlc refused: another handler already owns SIGINT.
    #[error("failed to install the Ctrl+C handler")]
    CtrlC(#[source] ctrlc::Error),
    /// ctrlc could not create its pipe or its thread `ctrl-c` (EMFILE, RLIMIT_NPROC).
    #[error("cannot create the Ctrl+C handler's pipe or its thread 'ctrl-c'")]
    CtrlCResources(#[source] std::io::Error),
    /// signal-hook could not register the other signals.
    #[error("failed to install the SIGTERM/SIGHUP/SIGCHLD handlers")]
    Hook(#[source] std::io::Error),
    /// The thread that forwards the other signals could not be started.
    #[error("cannot start thread 'signals'")]
    Thread(#[source] std::io::Error),
}

/// What [`install`] did.
#[derive(Debug, Default)]
pub struct Intake {
    /// Signals that were ignored when the process started, and so were left ignored.
    pub ignored_at_start: Vec<ShutdownSignal>,
}

/// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread (and in the threads it spawns
/// until [`install`]). Call it as the first thing in `main`: a signal that arrives before
/// the handlers are in place then waits, pending, instead of ending the process.
pub fn block_until_intake() {
    // Only fails for an invalid `how`, which this is not.
    let _ = mask_of(&ShutdownSignal::ALL).thread_block();
}

/// Installs the handlers for SIGINT, SIGTERM and SIGHUP and calls `on_signal` for each
/// arrival, on a dedicated thread, in arrival order per signal; then unblocks them in the
/// calling thread (see [`block_until_intake`]), so one that was pending is delivered now.
///
/// A signal ignored when the process started is left ignored and listed in the result.
/// Call it once, early, before anything else installs a SIGINT handler: ctrlc replaces
/// whatever was there.
pub fn install<F>(on_signal: F) -> Result<Intake, SignalError>
where
    F: Fn(ShutdownSignal) + Send + Sync + 'static,
{
    install_watching(on_signal, None)
}

/// [`install`], and also calls `on_child_exit` (on the same thread as SIGTERM and SIGHUP)
/// each time a child process ends: the reaper's wake-up.
pub(crate) fn install_watching<F>(
    on_signal: F,
    on_child_exit: Option<Box<dyn Fn() + Send>>,
) -> Result<Intake, SignalError>
where
    F: Fn(ShutdownSignal) + Send + Sync + 'static,
{
    let ignored_at_start: Vec<ShutdownSignal> = ShutdownSignal::ALL
        .into_iter()
        .filter(|&signal| is_ignored(signal))
        .collect();
    let wanted = |signal| !ignored_at_start.contains(&signal);
    let on_signal = Arc::new(on_signal);
    if wanted(ShutdownSignal::Interrupt) {
        let on_interrupt = on_signal.clone();
        ctrlc::set_handler(move || on_interrupt(ShutdownSignal::Interrupt)).map_err(|e| match e {
            ctrlc::Error::System(io) => SignalError::CtrlCResources(io),
            other => SignalError::CtrlC(other),
        })?;
    }
    let mut numbers: Vec<i32> = [ShutdownSignal::Terminate, ShutdownSignal::Hangup]
        .into_iter()
        .filter(|&signal| wanted(signal))
        .map(|signal| signal.number())
        .collect();
    if on_child_exit.is_some() {
        numbers.push(SIGCHLD);
    }
    if !numbers.is_empty() {
        let mut signals = Signals::new(numbers).map_err(SignalError::Hook)?;
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                // The one mapping from signal numbers to what they mean to this process.
                for number in signals.forever() {
                    match number {
                        SIGTERM => on_signal(ShutdownSignal::Terminate),
                        SIGHUP => on_signal(ShutdownSignal::Hangup),
                        SIGCHLD => {
                            if let Some(wake) = &on_child_exit {
                                wake();
                            }
                        }
                        _ => {}
                    }
                }
            })
            .map_err(SignalError::Thread)?;
    }
    unblock(&ShutdownSignal::ALL);
    Ok(Intake { ignored_at_start })
}

/// The signal set holding `signals`, as the OS's mask calls take it.
pub fn mask_of(signals: &[ShutdownSignal]) -> SigSet {
    let mut set = SigSet::empty();
    for signal in signals {
        set.add(signal.nix());
    }
    set
}

/// Unblocks `signals` in the calling thread (threads it spawns afterwards inherit that).
pub fn unblock(signals: &[ShutdownSignal]) {
    // Only fails for an invalid `how`, which this is not.
    let _ = mask_of(signals).thread_unblock();
}

/// Whether `signal`'s disposition is "ignore" (inherited across `exec`). nix offers no way
/// to read a disposition without replacing it, hence libc.
fn is_ignored(signal: ShutdownSignal) -> bool {
    // SAFETY: with a null new action, sigaction only reads the current one into `old`.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal.number(), std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN
    }
}

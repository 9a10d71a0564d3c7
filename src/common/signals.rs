//! Signal intake: OS signals become [`ShutdownSignal`] values at this one edge.
//!
//! **Problem.** Three signals mean "please stop": SIGINT (a terminal's Ctrl+C), SIGTERM
//! (`kill`, an init system) and SIGHUP (the terminal went away). The logs must name the one
//! that arrived and the process must, once stopped, end by that same signal. `ctrlc` is the
//! portable way to catch Ctrl+C (it also covers the Windows console), but its handler does
//! not say which signal fired (ctrlc issue #129), and it *overwrites* an existing SIGINT
//! handler, while signal-hook's handlers chain.
//!
//! **Fix.** Each signal has exactly one owner: `ctrlc` owns SIGINT (built without its
//! `termination` feature, so it touches nothing else); signal-hook owns SIGTERM and SIGHUP
//! on Unix. Both hand the signal, already named, to one callback, on an ordinary thread
//! (never inside the async-signal context), so the callback may lock and log.
//!
//! **Two more rules of the Unix convention.** A signal ignored when the process starts stays
//! ignored: `nohup` ignores SIGHUP, a non-interactive shell's background job starts with
//! SIGINT ignored, and a program that installs a handler anyway defeats them (CPython checks
//! first; ctrlc and signal-hook do not). So [`install`] leaves such a signal alone and
//! reports it. And no signal is lost before intake: `main` calls [`block_until_intake`]
//! first thing, so a Ctrl+C during argument parsing or logging setup stays pending and is
//! acted on once [`install`] unblocks it, instead of killing the process silently.
//!
//! Past this module no code sees a libc signal number, except [`ShutdownSignal::number`]
//! used to end the process by the same signal.

use std::fmt;

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

    /// The signal's number on this platform (2, 15 and 1 on Linux).
    pub fn number(self) -> i32 {
        match self {
            Self::Interrupt => libc::SIGINT,
            Self::Terminate => libc::SIGTERM,
            Self::Hangup => libc::SIGHUP,
        }
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
    /// signal-hook could not register SIGTERM/SIGHUP.
    #[error("failed to install the SIGTERM/SIGHUP handlers")]
    Hook(#[source] std::io::Error),
    /// The thread that forwards SIGTERM/SIGHUP could not be started.
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
    #[cfg(unix)]
    {
        let set = mask_of(&ShutdownSignal::ALL);
        // SAFETY: changes only this thread's signal mask; `set` is a valid, initialised set.
        unsafe {
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        }
    }
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
    let ignored_at_start: Vec<ShutdownSignal> = ShutdownSignal::ALL
        .into_iter()
        .filter(|&signal| platform::is_ignored(signal))
        .collect();
    let wanted = |signal| !ignored_at_start.contains(&signal);
    let on_signal = std::sync::Arc::new(on_signal);
    if wanted(ShutdownSignal::Interrupt) {
        let on_interrupt = on_signal.clone();
        ctrlc::set_handler(move || on_interrupt(ShutdownSignal::Interrupt)).map_err(|e| match e {
            ctrlc::Error::System(io) => SignalError::CtrlCResources(io),
            other => SignalError::CtrlC(other),
        })?;
    }
    let others: Vec<ShutdownSignal> = [ShutdownSignal::Terminate, ShutdownSignal::Hangup]
        .into_iter()
        .filter(|&signal| wanted(signal))
        .collect();
    platform::install_others(&others, move |signal| on_signal(signal))?;
    #[cfg(unix)]
    unblock(&ShutdownSignal::ALL);
    Ok(Intake { ignored_at_start })
}

/// The signal set holding `signals`, as the OS's mask calls take it.
#[cfg(unix)]
pub fn mask_of(signals: &[ShutdownSignal]) -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the zeroed set; sigaddset adds valid signal numbers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in signals {
            libc::sigaddset(&mut set, signal.number());
        }
        set
    }
}

/// Unblocks `signals` in the calling thread (threads it spawns afterwards inherit that).
#[cfg(unix)]
pub fn unblock(signals: &[ShutdownSignal]) {
    let set = mask_of(signals);
    // SAFETY: changes only this thread's signal mask; `set` is a valid, initialised set.
    unsafe {
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

#[cfg(unix)]
mod platform {
    use super::{ShutdownSignal, SignalError};
    use signal_hook::iterator::Signals;

    /// Whether `signal`'s disposition is "ignore" (inherited across `exec`).
    pub(super) fn is_ignored(signal: ShutdownSignal) -> bool {
        // SAFETY: with a null new action, sigaction only reads the current one into `old`.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(signal.number(), std::ptr::null(), &mut old) == 0
                && old.sa_sigaction == libc::SIG_IGN
        }
    }

    /// SIGTERM and SIGHUP (those in `wanted`) through signal-hook's self-pipe, forwarded
    /// from a named thread.
    pub(super) fn install_others<F>(wanted: &[ShutdownSignal], on_signal: F) -> Result<(), SignalError>
    where
        F: Fn(ShutdownSignal) + Send + 'static,
    {
        if wanted.is_empty() {
            return Ok(());
        }
        let numbers: Vec<i32> = wanted.iter().map(|s| s.number()).collect();
        let mut signals = Signals::new(numbers).map_err(SignalError::Hook)?;
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for number in signals.forever() {
                    let signal = if number == libc::SIGTERM {
                        ShutdownSignal::Terminate
                    } else {
                        ShutdownSignal::Hangup
                    };
                    on_signal(signal);
                }
            })
            .map_err(SignalError::Thread)?;
        Ok(())
    }
}

#[cfg(not(unix))]
mod platform {
    use super::{ShutdownSignal, SignalError};

    /// Windows has no inherited "ignore" to respect here.
    pub(super) fn is_ignored(_signal: ShutdownSignal) -> bool {
        false
    }

    /// Windows has no SIGTERM or SIGHUP to catch: ctrlc already covers the console events.
    pub(super) fn install_others<F>(_wanted: &[ShutdownSignal], _on_signal: F) -> Result<(), SignalError>
    where
        F: Fn(ShutdownSignal) + Send + 'static,
    {
        Ok(())
    }
}

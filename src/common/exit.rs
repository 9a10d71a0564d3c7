//! Ending the process the way a shell expects.
//!
//! After a signal-initiated stop the process ends *by that same signal* (its default
//! action, re-raised), so a shell sees 128+N and a `while` loop around the program is
//! interrupted by one Ctrl+C (Cracauer, "Proper handling of SIGINT/SIGQUIT"; systemd reads
//! it the same way). A process that is PID 1 in a container cannot die by its own signal
//! (the kernel drops it), so there it exits with 128+N instead: the same number.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

use crate::signals::ShutdownSignal;

/// How the process ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// `--run-for` elapsed and the stop was clean: 0.
    Clean,
    /// A start failed, a fatal error, or a forced stop without a signal: 1.
    Failed,
    /// Stopped because of this signal: the process ends by it (128+N).
    Signalled(ShutdownSignal),
}

impl ExitStatus {
    /// The one rule for how a run ends: by the first shutdown signal received, if any (even
    /// when the exit was forced, so a shell loop around the program still stops); else 1 if
    /// anything failed, else 0.
    pub fn decide(first_signal: Option<ShutdownSignal>, failed: bool) -> Self {
        match (first_signal, failed) {
            (Some(signal), _) => Self::Signalled(signal),
            (None, true) => Self::Failed,
            (None, false) => Self::Clean,
        }
    }

    /// The status a shell will see.
    pub fn code(self) -> i32 {
        match self {
            Self::Clean => 0,
            Self::Failed => 1,
            Self::Signalled(signal) => signal.exit_code(),
        }
    }

    /// The signal the process ends by, if any.
    pub fn signal(self) -> Option<ShutdownSignal> {
        match self {
            Self::Signalled(signal) => Some(signal),
            _ => None,
        }
    }
}

/// Process-wide because ending is: whichever thread claims it (the normal end, a forced exit
/// from the signal thread or the deadline thread) is the only one that logs the exit event.
static EXITING: AtomicBool = AtomicBool::new(false);

/// Whether some thread has begun ending the process.
pub fn is_exiting() -> bool {
    EXITING.load(SeqCst)
}

/// Claims the right to end the process. The first caller gets `true`; any later caller
/// (say a forced exit racing the normal one) must not log or exit: it gets `false`.
pub fn claim() -> bool {
    !EXITING.swap(true, SeqCst)
}

/// Ends the process with `status`; for a signal, by that signal (see the module docs).
pub fn terminate(status: ExitStatus) -> ! {
    if let ExitStatus::Signalled(signal) = status {
        if std::process::id() != 1 {
            die_by(signal);
        }
    }
    std::process::exit(status.code())
}

/// Restores the default action of `signal`, unblocks it and raises it. Returns only if the
/// process survived that (PID 1 in a container).
fn die_by(signal: ShutdownSignal) {
    use nix::sys::signal::{SigHandler, kill, signal as set_handler};
    // SAFETY: installing SIG_DFL runs no code of ours in a handler, so nothing can observe
    // Rust state from the async-signal context.
    let _ = unsafe { set_handler(signal.nix(), SigHandler::SigDfl) };
    crate::signals::unblock(&[signal]);
    // Process-directed, so it is delivered even if another thread is the one not blocking it.
    let _ = kill(nix::unistd::getpid(), signal.nix());
    // Delivery to ourselves is immediate for an unblocked signal; give the kernel a moment
    // in case another thread is the one it chose.
    std::thread::sleep(std::time::Duration::from_millis(50));
}

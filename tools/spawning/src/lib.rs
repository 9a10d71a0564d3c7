//! What every driver of the suite's real binaries (the integration tests, the torture tool,
//! the benchmark, the timeline's tests) needs to start and watch them the same way.
//!
//! - [`default_signal_dispositions`]: an ignored disposition survives `exec`, and a CI job
//!   or a script's background job may run with SIGINT ignored (or blocked). A binary started
//!   from there would ignore the very signal it is tested on, so every spawn resets SIGINT,
//!   SIGTERM and SIGHUP to their default and unblocks them, then ignores exactly the ones
//!   the caller asks for: the environment a test chooses, not the one it ran in.
//! - [`Gate`]: a reader thread passes it before each read of a child's stderr; closing it
//!   stalls the reader, which is how a full pipe nobody reads is made on purpose.
//! - [`Stderr`]: that reader thread, on a pipe or a growing file, and how full the pipe is.
//! - [`wait_exited`], [`is_alive`], [`wait_signal_taken`]: what a run's processes are
//!   doing, seen from outside.

mod reader;
mod watch;

pub use reader::Stderr;
pub use watch::{is_alive, wait_exited, wait_proc_state, wait_signal_taken};

use std::os::unix::process::CommandExt as _;
use std::process::Command;
use std::sync::{Condvar, Mutex};

/// The signals a shutdown is asked with.
const SHUTDOWN_SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Makes `command` start its program with SIGINT, SIGTERM and SIGHUP at their default
/// disposition and unblocked, then with the signals in `ignored` (numbers) ignored.
pub fn default_signal_dispositions(command: &mut Command, ignored: &[i32]) {
    let ignored = ignored.to_vec();
    // SAFETY: between fork and exec the closure calls only async-signal-safe functions
    // (signal, sigemptyset, sigaddset, pthread_sigmask) and reads memory allocated before
    // the fork.
    unsafe {
        command.pre_exec(move || {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for signal in SHUTDOWN_SIGNALS {
                libc::signal(signal, libc::SIG_DFL);
                libc::sigaddset(&mut set, signal);
            }
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            for &signal in &ignored {
                libc::signal(signal, libc::SIG_IGN);
            }
            Ok(())
        });
    }
}

/// A gate a reader passes before each read: open by default.
#[derive(Default)]
pub struct Gate {
    closed: Mutex<bool>,
    changed: Condvar,
}

impl Gate {
    /// Closes (`true`) or opens the gate.
    pub fn set(&self, closed: bool) {
        *self.closed.lock().unwrap_or_else(|p| p.into_inner()) = closed;
        self.changed.notify_all();
    }

    /// Returns once the gate is open.
    pub fn pass(&self) {
        let mut closed = self.closed.lock().unwrap_or_else(|p| p.into_inner());
        while *closed {
            closed = self.changed.wait(closed).unwrap_or_else(|p| p.into_inner());
        }
    }
}

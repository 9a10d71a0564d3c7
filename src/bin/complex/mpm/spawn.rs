//! Spawning a worker so that no signal can kill it before it is ready to handle signals.
//!
//! **Problem.** A terminal's Ctrl+C goes to the whole process group. A worker hit in the
//! moment between `exec` and the installation of its handlers dies by the default action:
//! abruptly, maybe mid-handshake, exactly what the reference's "synchronise worker start"
//! lesson warns about. Blocking the signals in the parent before spawning does not help:
//! std resets the child's signal mask before `exec`.
//!
//! **Fix.** Block SIGINT, SIGTERM and SIGHUP in the child itself, after std's reset and just
//! before `exec` (`pre_exec`); the mask survives `exec`. The worker installs its handlers,
//! then unblocks ([`unblock_shutdown_signals`]): a signal that came in the window is still
//! pending, is delivered then, and is logged as ignored like any other.
//! Proof: `tests/complex.rs` signals the group during the handshake.

use std::io;
use std::process::{Child, Command};

/// The set {SIGINT, SIGTERM, SIGHUP}.
fn shutdown_signal_set() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the zeroed set; sigaddset adds valid signal numbers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, signal);
        }
        set
    }
}

/// Spawns `command` with the shutdown signals blocked in the child from before `exec`.
pub fn spawn_with_signals_blocked(command: &mut Command) -> io::Result<Child> {
    use std::os::unix::process::CommandExt;
    let set = shutdown_signal_set();
    // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
    // functions may be called: pthread_sigmask is one, and the closure allocates nothing
    // (the set was built in the parent and is copied in).
    unsafe {
        command.pre_exec(move || {
            if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.spawn()
}

/// Unblocks the shutdown signals in the calling thread (the worker's main thread, once its
/// handlers are installed). Threads spawned afterwards inherit the unblocked mask.
pub fn unblock_shutdown_signals() {
    let set = shutdown_signal_set();
    // SAFETY: changes only this thread's signal mask; `set` is a valid, initialised set.
    unsafe {
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

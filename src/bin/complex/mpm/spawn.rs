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
//! then unblocks (`graceful::signals::unblock`): a signal that came in the window is still
//! pending, is delivered then, and is logged as ignored like any other.
//! Proof: `tests/complex.rs` signals the group during the handshake.

use std::io;

use graceful::signals::{self, ShutdownSignal};
use std::process::{Child, Command};

/// Spawns `command` with the shutdown signals blocked in the child from before `exec`.
pub fn spawn_with_signals_blocked(command: &mut Command) -> io::Result<Child> {
    use std::os::unix::process::CommandExt;
    let set = signals::mask_of(&ShutdownSignal::ALL);
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

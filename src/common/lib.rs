//! Graceful shutdown, from the top: the shared library of the `simple` and `complex` binaries.
//!
//! A program must survive Ctrl+C, SIGTERM or SIGHUP at any moment (during its start, while it
//! runs, in the middle of its stop) and still stop cleanly, in order, losing nothing. This
//! library is the machinery that makes that hold; the binaries are its worked examples,
//! each a Rust counterpart of a script of the Python reference *python-graceful-shutdown*.
//!
//! ```text
//!  Ctrl+C / SIGTERM / SIGHUP
//!        │  signals: one owner per signal, named at the edge
//!        ▼
//!  Shutdown::on_signal ──► escalation::decide(count, requested, shielded, force_after)
//!        │ delayed (shield held)      │ shutdown            │ counted   │ forced
//!        ▼                            ▼                     ▼           ▼
//!  Shield keeps it ──last guard──► stop token cancelled     (logged)   force handler:
//!  until start is done              │                                  fail what is left,
//!                                   ▼                                  kill children, exit
//!  runner: start in order (shielded) → wait → stop in reverse (shielded, deadline-bounded)
//!          → leftover tasks cancelled → an exit status returned
//!  app (the process edge): runtime shut down (bounded) → final `phase=exit` event
//!          → the process ends by the same signal (or 0 / 1)
//! ```
//!
//! Nothing here waits on stderr: every line goes through [`logging`]'s bounded queue, so a
//! stalled log reader can cost lines, never the stop.
//!
//! # Layout
//! - [`signals`]: SIGINT via ctrlc, SIGTERM/SIGHUP via signal-hook, as [`signals::ShutdownSignal`].
//! - [`escalation`]: the pure policy deciding what the Nth signal does.
//! - [`shield`]: the `DelayedKeyboardInterrupt` counterpart.
//! - [`shutdown`]: the controller where signals, shield and stop token meet.
//! - [`runner`]: the runner: start in order, wait, stop in reverse, bounded; returns a status.
//! - [`app`]: the process edge: logging, signal intake, runtime, forced exit, process end.
//! - [`service`]: the [`service::Service`] trait and what the runner lends a service.
//! - [`components`]: lifecycle events (`component`, `phase`) and who has not stopped.
//! - [`exit`]: ending the process by the same signal, or 0 / 1.
//! - [`logging`]: the text and JSON line formats, the non-blocking writer, the sealed final line.
//! - [`notify`]: the systemd notify protocol (ready, status, stopping, extensions, watchdog).
//! - [`reaper`]: as PID 1, reap adopted orphans without stealing a worker's status.
//! - [`panics`]: a panic becomes one log line and exit status 1.
//! - [`cli`]: the options both binaries share.
//! - [`time_scale`]: `--time-scale` for the simulated work.
//! - [`sync`]: mutexes that survive a panicking holder.

pub mod app;
pub mod cli;
pub mod components;
pub mod deadline;
pub mod escalation;
pub mod exit;
pub mod logging;
pub mod notify;
pub mod panics;
pub mod reaper;
pub mod runner;
pub mod service;
pub mod shield;
pub mod shutdown;
pub mod signals;
pub mod sync;
pub mod time_scale;

//! Graceful shutdown for a whole process: survive Ctrl+C, SIGTERM or SIGHUP at any moment
//! (during the start, while running, in the middle of the stop) and still stop cleanly, in
//! order, losing nothing, and end the way a shell and a supervisor expect.
//!
//! A program describes its parts as [`Service`]s and hands them to the [`Edge`], which runs
//! them as the process: started in order under a shield (a stop request waits for the start
//! to finish), stopped in reverse under one deadline, the Nth signal forcing the exit, and
//! the process ending by the same signal it was stopped with.
//!
//! ```no_run
//! use graceful::{BoxFuture, Edge, Service, ServiceContext, Settings};
//! use std::time::Duration;
//!
//! struct Database;
//!
//! impl Service for Database {
//!     fn name(&self) -> &'static str {
//!         "Database"
//!     }
//!     fn start<'a>(&'a mut self, _ctx: &'a ServiceContext) -> BoxFuture<'a, anyhow::Result<()>> {
//!         Box::pin(async { Ok(()) }) // connect; a Ctrl+C now waits until this returns
//!     }
//!     fn stop<'a>(&'a mut self, _ctx: &'a ServiceContext) -> BoxFuture<'a, anyhow::Result<()>> {
//!         Box::pin(async { Ok(()) }) // flush and close; bounded by the stop's deadline
//!     }
//! }
//!
//! fn main() {
//!     let edge = Edge::begin(); // first line: signals are held from here on
//!     let settings = Settings { stop_timeout: Duration::from_secs(10), ..Settings::default() };
//!     edge.settings(settings).run(vec![Box::new(Database)])
//! }
//! ```
//!
//! ```text
//!  Ctrl+C / SIGTERM / SIGHUP ──► signals (one intake) ──► Shutdown::on_signal
//!        escalation: delayed (shield held) │ shutdown │ counted │ forced
//!  Runner: start in order (shielded) → wait → stop in reverse (shielded, one deadline,
//!          each service's own if it has one) → leftover tasks cancelled → stop report
//!  Edge:   runtime shut down (bounded) → one exit decision → `phase=exit` event
//!          → the process ends by the same signal (or 0 / 1)
//! ```
//!
//! # The surface
//! - [`Edge`]: the whole process edge in one call (logging, signal intake, forced exit,
//!   stop deadline, panic hook, systemd notify and watchdog, PID 1 reaper, bounded runtime
//!   shutdown, the end by the same signal).
//! - [`Runner`] and [`Settings`]: the lifecycle alone, returning an [`ExitStatus`]; for a
//!   test or a program that owns its process edge.
//! - [`Service`], [`ServiceContext`]: what a part of the application is, and what it is lent.
//! - [`Shutdown`], [`Shield`]: the controller a stop request goes through, and the guard that
//!   delays one.
//!
//! # Building blocks
//! For a process that is not run by an [`Edge`] (`complex`'s worker processes): [`logging`]
//! (one bounded writer per process), [`signals`] (the intake), [`panics`], [`components`]
//! (lifecycle events), [`reaper`] (children the PID 1 reaper must leave alone), [`notify`]
//! (the variables a child must not inherit), [`deadline`] (a bound on waiting for another
//! party that the time this process spent stopped never spends), [`spawn`] (a worker
//! process that starts with the shutdown signals blocked and nothing of ours but its
//! pipes), [`sync`].
//!
//! # Process-wide state, and why
//! Four globals remain, each because what it guards is process-wide by nature: the log
//! writer (tracing's subscriber is global, and one writer per process keeps lines whole),
//! whether the process is ending (only one thread may write the exit event), whether any
//! thread panicked (the panic hook is global), and the children this process reaps itself
//! (any thread's spawn must be known to the reaper).
//!
//! # Platforms
//! Unix only (Linux first): process groups, `posix_spawn`, signal dispositions and PID 1
//! are the subject. ctrlc would cover a Windows console's Ctrl+C, but the rest has no
//! counterpart there, so the library does not pretend to build. [`spawn`] needs Linux with
//! glibc 2.34 or later: it closes every other descriptor in the child with
//! `posix_spawn_file_actions_addclosefrom_np`, which musl does not have.

#[cfg(not(unix))]
compile_error!("graceful is Unix-only: its subject is signals, process groups and PID 1");

pub mod components;
pub mod deadline;
#[cfg(feature = "demo")]
pub mod demo;
mod edge;
mod escalation;
mod exit;
pub mod logging;
pub mod notify;
pub mod panics;
pub mod reaper;
mod runner;
mod service;
mod shield;
mod shutdown;
pub mod signals;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub mod spawn;
pub mod sync;

pub use edge::Edge;
pub use escalation::SignalAction;
pub use exit::ExitStatus;
pub use logging::LogFormat;
pub use runner::{Runner, Settings};
pub use service::{BoxFuture, Service, ServiceContext};
pub use shield::{Shield, ShieldGuard};
pub use shutdown::{ForceReason, Shutdown, StopReason};
pub use signals::ShutdownSignal;

//! The process layer: the MultiProcessManager (`MPM`) and its worker processes.
//!
//! Where the reference's process lessons live, one file each:
//! - Lesson 5 (catch the signal in workers) and lesson 6 (or ignore it, but notice the
//!   parent's death): [`worker`], the worker's side; end-of-file on stdin in `worker/intake.rs`.
//! - Lesson 7 (synchronise worker start): [`handshake`], both sides, for the first start
//!   and for every restart.
//! - Stop outranks every queued call: [`lanes`], fed by the work loop in [`worker`].
//!
//! The rest is the machinery they stand on:
//! - [`config`]: the layer's own settings (the command line maps its flags onto them).
//! - [`manager`]: the parent side, a blocking API (start, stop, update, process_*).
//! - [`child`]: one worker process as the parent holds it (pipes, kill, reap).
//! - [`protocol`]: the frames on the pipes, JSON lines.
//! - [`dummy`]: the DummyManager that does the simulated work.
//! - [`latch`]: a value set once and awaited by threads.
//! - [`wake`]: waking a worker's monitor.
//! - [`worker_logs`]: a worker's log lines, carried whole to the main process's writer.

pub mod child;
pub mod config;
pub mod dummy;
pub mod handshake;
pub mod lanes;
pub mod latch;
pub mod manager;
pub mod protocol;
pub mod spawn;
pub mod wake;
pub mod worker;
pub mod worker_logs;

pub use config::{Fault, MpmConfig, WorkerConfig};
pub use manager::{Mpm, MpmError, Reply, Submitted};
pub use protocol::Method;

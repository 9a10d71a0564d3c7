//! The process layer: the MultiProcessManager (`MPM`) and its worker processes.
//!
//! - [`manager`]: the parent side, a blocking API (start, stop, update, process_*).
//! - [`child`]: one worker process as the parent holds it (pipes, kill, reap).
//! - [`spawn`]: spawning with the shutdown signals blocked until the worker is ready.
//! - [`protocol`]: the frames on the pipes.
//! - [`worker`]: the child side, `complex worker`.
//! - [`lanes`]: the worker's stop > update > call priority lanes.
//! - [`dummy`]: the DummyManager that does the simulated work.
//! - [`latch`]: a value set once and awaited by threads.
//! - [`arrivals`]: deadlines that judge what a worker had sent, not when we woke.
//! - [`worker_logs`]: a worker's log lines, carried whole to the main process's writer.

pub mod arrivals;
pub mod child;
pub mod dummy;
pub mod lanes;
pub mod latch;
pub mod manager;
pub mod protocol;
pub mod spawn;
pub mod worker;
pub mod worker_logs;

pub use manager::{Mpm, MpmConfig, MpmError, Reply};
pub use protocol::Method;

//! The process layer: the MultiProcessManager (`MPM`) and its worker processes, by side.
//! The sides import [`shared`] and never each other.
//!
//! - [`parent`]: the main process's side, a blocking API (start, calls, update, stop) over
//!   N worker processes.
//! - [`worker`]: the worker process, `complex worker`: its signals, intake and work loop.
//! - [`shared`]: what both agree on: the settings, the frames (JSON lines), the handshake.
//!
//! The reference's process lessons, each file opening with its number (the README's table):
//! lesson 5, catch the signal in workers: `worker/mod.rs`; lesson 6, or ignore it but notice
//! the parent's death: `worker/intake.rs`; lesson 7, synchronise worker start:
//! `shared/handshake.rs` (the parent's half in `parent/handshake.rs`); lesson 8, the
//! worker's command lanes: `worker/lanes.rs`.

pub mod parent;
pub mod shared;
pub mod worker;

pub use parent::{Mpm, MpmError, Reply};
pub use shared::config::{Fault, MpmConfig, WorkerConfig};
pub use shared::protocol::Method;

//! The process layer: the MultiProcessManager (`MPM`) and its worker processes, by side.
//!
//! - [`parent`]: the main process's side, a blocking API (start, calls, update, stop) over
//!   N worker processes, each watched by a monitor thread.
//! - [`worker`]: the worker process's side, `complex worker`: its signal policy, its intake
//!   and its work loop.
//! - [`shared`]: what both sides agree on: the settings, the frames on the pipes (JSON
//!   lines), and the handshake's steps.
//!
//! Where the reference's process lessons live, each file opening with its number (as in the
//! README's lesson table):
//! - lesson 5, catch the signal in workers: `worker/mod.rs`;
//! - lesson 6, or ignore it, but notice the parent's death: `worker/intake.rs`;
//! - lesson 7, synchronise worker start: `shared/handshake.rs` (the parent's half in
//!   `parent/handshake.rs`);
//! - lesson 8, the worker's command lanes (stop > update > call): `worker/lanes.rs`.
//!
//! The sides import `shared` and never each other.

pub mod parent;
pub mod shared;
pub mod worker;

pub use parent::{Mpm, MpmError, Reply, Submitted};
pub use shared::config::{Fault, MpmConfig, WorkerConfig};
pub use shared::protocol::Method;

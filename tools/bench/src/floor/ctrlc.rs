//! Floor 1: the least a Rust program can do to be "ready, and gone on Ctrl+C".
//!
//! It installs a Ctrl+C handler with the `ctrlc` crate (as the suite does), says it is
//! ready, waits for SIGINT and ends by it. The tool measures it exactly like `simple`:
//! launch to the ready line, SIGINT to reaped. Whatever `simple` costs beyond this is the
//! suite's own machinery (tokio runtime, logging, services, shield, ordered stop).

#[path = "common.rs"]
mod common;

fn main() {
    let (interrupted, interrupt) = std::sync::mpsc::channel();
    if let Err(error) = ctrlc::set_handler(move || {
        let _ = interrupted.send(());
    }) {
        eprintln!("floor-ctrlc: failed to install the Ctrl+C handler: {error}");
        std::process::exit(1);
    }
    common::announce_ready(&[]);
    // An error means the handler (and its sender) is gone: nothing left to wait for.
    let _ = interrupt.recv();
    common::die_by_sigint()
}

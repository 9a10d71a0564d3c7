//! Floor 2: a parent that re-executes itself as 4 children, the least `complex` could do.
//!
//! The parent installs its Ctrl+C handler, spawns `floor-children child` N times (default
//! 4) with piped stdin and stdout, waits for one byte from each (a one-step handshake), and
//! says it is ready. On SIGINT it closes every child's stdin (the lifeline: end-of-file
//! means "stop"), reaps them all, and ends by SIGINT. Each child ignores SIGINT, as the
//! suite's workers do, and exits at end-of-file.
//!
//! The tool measures it exactly like `complex --workers 4`; what `complex` costs beyond it
//! is the suite's own machinery (runtime, pool, manager, two-step handshake, logging).

#[path = "common.rs"]
mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};

fn main() {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("child") => child(),
        Some("--children") => match args.next().and_then(|n| n.parse().ok()) {
            Some(n) => parent(n),
            None => usage(),
        },
        None => parent(4),
        Some(_) => usage(),
    }
}

fn usage() -> ! {
    eprintln!("usage: floor-children [--children N]");
    std::process::exit(2)
}

fn parent(count: usize) -> ! {
    let (interrupted, interrupt) = std::sync::mpsc::channel();
    if let Err(error) = ctrlc::set_handler(move || {
        let _ = interrupted.send(());
    }) {
        fail(&format!("failed to install the Ctrl+C handler: {error}"));
    }
    let exe = std::env::current_exe().unwrap_or_else(|e| fail(&format!("failed to find itself: {e}")));
    let mut children = Vec::with_capacity(count);
    for _ in 0..count {
        let child = Command::new(&exe)
            .arg("child")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| fail(&format!("failed to spawn a child: {e}")));
        children.push(child);
    }
    for child in &mut children {
        let mut ready = [0u8; 1];
        if let Some(stdout) = child.stdout.as_mut() {
            if stdout.read_exact(&mut ready).is_err() {
                fail("a child ended before its handshake");
            }
        }
    }
    let pids: Vec<u32> = children.iter().map(|c| c.id()).collect();
    common::announce_ready(&pids);
    let _ = interrupt.recv();
    for child in &mut children {
        // Dropping the write end is the stop command: the child reads end-of-file.
        drop(child.stdin.take());
    }
    for child in &mut children {
        let _ = child.wait();
    }
    common::die_by_sigint()
}

fn child() -> ! {
    // SAFETY: ignoring SIGINT touches no Rust state; the parent decides when we stop.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
    }
    let mut stdout = std::io::stdout().lock();
    if stdout.write_all(b"R").and_then(|()| stdout.flush()).is_err() {
        std::process::exit(1);
    }
    // Block until end-of-file (or an error): the parent is done with us, or gone.
    let mut sink = [0u8; 64];
    let mut stdin = std::io::stdin().lock();
    while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
    std::process::exit(0)
}

fn fail(message: &str) -> ! {
    eprintln!("floor-children: {message}");
    std::process::exit(1)
}

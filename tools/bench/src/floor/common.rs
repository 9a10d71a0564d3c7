//! What every floor program shares: the ready line the tool waits for, and ending by SIGINT.
//!
//! The floor must be measured exactly like the suite, so it speaks the one piece of the
//! suite's contract the tool reads (a JSON line with `component=app phase=started` on
//! stderr) and ends the way the suite does after Ctrl+C: by SIGINT itself, so a shell sees
//! 130. Nothing else of the suite is here; that is what makes it a floor.

/// Writes the readiness event the tool synchronises on, naming any child processes so the
/// tool can read their memory.
pub fn announce_ready(children: &[u32]) {
    let children: Vec<String> = children.iter().map(u32::to_string).collect();
    // One `eprintln!` is one write of a short line: never split on the pipe.
    eprintln!(
        r#"{{"component":"app","phase":"started","pid":{},"children":[{}]}}"#,
        std::process::id(),
        children.join(",")
    );
}

/// Ends the process by SIGINT, as the suite does after a Ctrl+C (default action re-raised).
pub fn die_by_sigint() -> ! {
    // SAFETY: restoring SIGINT's default disposition and sending it to ourselves touch no
    // Rust state; the process is meant to end here.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_DFL);
        libc::kill(libc::getpid(), libc::SIGINT);
    }
    // Only reached if delivery is late (another thread took it) or impossible (PID 1).
    std::thread::sleep(std::time::Duration::from_millis(50));
    std::process::exit(130)
}

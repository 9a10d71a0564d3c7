//! Floor 3: the fastest request/response a parent can have with child processes over pipes.
//!
//! `floor-pipes --threads N --run-for D` spawns N children (itself, re-executed as
//! `floor-pipes child`); each of N threads owns one child and, until D has passed, writes a
//! 16-byte request to its stdin and reads the 16-byte answer from its stdout. At the end it
//! closes the children's stdin, reaps them, and prints one JSON line on stderr with the
//! round trips made and the seconds they took. The tool compares `complex`'s calls per second
//! (each call is one such round trip, plus the suite's pool, manager and framing) to this.

use std::io::{Read, Write};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// A request and its answer: an id and a payload, about the size of the suite's frames.
const MESSAGE: usize = 16;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("child") {
        child();
    }
    let (mut threads, mut run_for) = (4usize, Duration::from_secs(2));
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().map(String::as_str).unwrap_or_default();
        match flag.as_str() {
            "--threads" => threads = value.parse().unwrap_or_else(|_| usage()),
            "--run-for" => run_for = humantime::parse_duration(value).unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    parent(threads.max(1), run_for);
}

fn usage() -> ! {
    eprintln!("usage: floor-pipes [--threads N] [--run-for DURATION]");
    std::process::exit(2)
}

fn parent(threads: usize, run_for: Duration) {
    let exe = std::env::current_exe().unwrap_or_else(|e| fail(&format!("failed to find itself: {e}")));
    let mut children = Vec::with_capacity(threads);
    let mut ends: Vec<(ChildStdin, ChildStdout)> = Vec::with_capacity(threads);
    for _ in 0..threads {
        let mut child = Command::new(&exe)
            .arg("child")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| fail(&format!("failed to spawn a child: {e}")));
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            fail("a child's pipes were not created");
        };
        children.push(child);
        ends.push((stdin, stdout));
    }
    let started = Instant::now();
    let deadline = started + run_for;
    let talkers: Vec<_> = ends
        .into_iter()
        .map(|(stdin, stdout)| std::thread::spawn(move || talk(stdin, stdout, deadline)))
        .collect();
    // Each talker drops its child's stdin when done: the child sees end-of-file and exits.
    let round_trips: u64 = talkers.into_iter().map(|t| t.join().unwrap_or(0)).sum();
    let seconds = started.elapsed().as_secs_f64();
    for child in &mut children {
        let _ = child.wait();
    }
    eprintln!(
        r#"{{"component":"floor-pipes","threads":{threads},"round_trips":{round_trips},"seconds":{seconds}}}"#
    );
}

/// One thread's loop: request, answer, until the deadline. Returns the round trips made.
fn talk(mut stdin: ChildStdin, mut stdout: ChildStdout, deadline: Instant) -> u64 {
    let mut request = [0u8; MESSAGE];
    let mut answer = [0u8; MESSAGE];
    let mut done = 0u64;
    while Instant::now() < deadline {
        request[..8].copy_from_slice(&done.to_le_bytes());
        if stdin.write_all(&request).is_err() || stdout.read_exact(&mut answer).is_err() {
            break;
        }
        done += 1;
    }
    done
}

/// Answers every 16-byte request with the same bytes, until end-of-file.
fn child() -> ! {
    let mut stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    let mut message = [0u8; MESSAGE];
    while stdin.read_exact(&mut message).is_ok() {
        if stdout.write_all(&message).and_then(|()| stdout.flush()).is_err() {
            break;
        }
    }
    std::process::exit(0)
}

fn fail(message: &str) -> ! {
    eprintln!("floor-pipes: {message}");
    std::process::exit(1)
}

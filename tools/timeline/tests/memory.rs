//! The picture's memory follows what it draws, not the log's length: a log ten times as
//! long, with the same lanes, must not take much more memory to draw, nor much more than
//! ten times as long. Alone in its test
//! binary, because the peak it reads (getrusage of the children) covers every child this
//! process waited for.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Writes to `path` a run of app and MPM in which MPM updates `updates` times, with
/// chatter in between. Line by line: the log is never in this process's memory, whose
/// peak a child forked from it can count as its own.
fn log(updates: u64, path: &Path) {
    let mut log = BufWriter::new(File::create(path).expect("create the log"));
    let mut line = |ms: u64, extra: &str| {
        let (s, ms) = (ms / 1000, ms % 1000);
        let (m, s) = (s / 60, s % 60);
        writeln!(
            log,
            r#"{{"timestamp":"2026-01-01T00:{m:02}:{s:02}.{ms:03}Z","level":"INFO","process":"main","pid":1,"thread":"main","message":"m"{extra}}}"#
        )
        .expect("write the log");
    };
    line(0, r#","component":"app","phase":"starting""#);
    line(0, r#","component":"MPM","phase":"starting""#);
    line(1, r#","component":"MPM","phase":"started""#);
    line(1, r#","component":"app","phase":"started""#);
    for n in 0..updates {
        let ms = 2 + n / 10;
        line(ms, r#","event":"update-started""#);
        line(ms, r#","call":"work","worker":"worker-1","elapsed_ms":3"#);
        line(ms, r#","event":"update-finished""#);
    }
    let end = 3 + updates / 10;
    line(end, r#","component":"app","phase":"stopping""#);
    line(end, r#","component":"MPM","phase":"stopping""#);
    line(end, r#","component":"MPM","phase":"stopped""#);
    line(end, r#","component":"app","phase":"stopped""#);
    line(end, r#","component":"app","phase":"exit","status":0"#);
}

/// Draws a log of `updates` updates; returns the largest peak memory (KB) of any child
/// waited for so far, and how long the drawing took.
fn draw(updates: u64) -> (i64, Duration) {
    let name = format!("timeline-memory-{}-{updates}.jsonl", std::process::id());
    let path = std::env::temp_dir().join(name);
    log(updates, &path);
    let start = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_timeline"))
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run the timeline");
    let took = start.elapsed();
    let _ = std::fs::remove_file(&path);
    assert!(status.success());
    // SAFETY: getrusage writes only into the struct it is given, which lives here.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    (usage.ru_maxrss, took)
}

#[test]
fn memory_stays_flat_as_the_log_grows() {
    let (small, t_small) = draw(3_000);
    let (large, t_large) = draw(30_000);
    assert!(
        large <= small + small / 2 + 4_096,
        "ten times the log took {large} KB at its peak, against {small} KB"
    );
    // Linear in lines: ten times the lines in at most twice ten times the time (a ratio, so
    // that a loaded machine slows both alike).
    let ratio = t_large.as_secs_f64() / t_small.as_secs_f64();
    assert!(
        ratio < 20.0,
        "ten times the log took {ratio:.1} times as long ({t_small:?} then {t_large:?})"
    );
}

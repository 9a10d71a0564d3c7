//! Clean output: a process that dies abruptly or prints junk (a panic, a backtrace, a stray
//! `eprintln!`) shows it here first, often in a worker hit by a signal at a bad moment. And
//! every line says truly who wrote it: `process=main` lines carry the main process's pid.

use super::{Facts, Invariant, Violation};
use crate::{Event, REQUIRED_KEYS};

/// Texts that mean a panic or a backtrace, wherever they appear (even inside a JSON message).
pub const PANIC_MARKERS: [&str; 3] = ["panicked at", "RUST_BACKTRACE", "stack backtrace:"];

/// At most this many offending lines are quoted in the detail.
const QUOTED: usize = 3;

/// Only JSON lines with the contract's keys on stderr (`lines`), nothing on `stdout`, no
/// panic text, no `event=panic` but the ones planted, and `process=main` lines with the
/// main process's pid (when [`Facts::main_pid`] is known).
pub fn clean_output(lines: &[Event], stdout: &[Event], facts: &Facts) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut panic_text = Vec::new();
    let mut panic_events = Vec::new();
    let mut not_json = Vec::new();
    let mut incomplete = Vec::new();
    let mut wrong_pid = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        // An event's own `pid` field must not overwrite the writer's (a tool that hunts
        // leftovers by the pids in the log would chase the wrong process).
        if facts.main_pid != 0 && line.is_main() && line.pid().is_some_and(|pid| pid != facts.main_pid) {
            wrong_pid.push(index);
        }
        if PANIC_MARKERS.iter().any(|m| line.raw.contains(m)) {
            panic_text.push(index);
        } else if line.event() == Some("panic") {
            // The suite's panic hook turns a panic into a JSON line without the markers:
            // the `event=panic` field says it.
            panic_events.push(index);
        }
        match line.fields() {
            None => not_json.push(index),
            Some(map) if REQUIRED_KEYS.iter().any(|k| !map.contains_key(*k)) => incomplete.push(index),
            Some(_) => {}
        }
    }
    if panic_events.len() != facts.panics_planted {
        // A planted panic is expected to be logged; it is no excuse for panic text.
        panic_text.extend(panic_events);
        panic_text.sort_unstable();
    }
    let quote = |indices: &[usize]| -> String {
        indices
            .iter()
            .take(QUOTED)
            .map(|&i| format!("line {}: {}", i + 1, shorten(&lines[i].raw)))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let mut found = |indices: Vec<usize>, what: String| {
        if !indices.is_empty() {
            let detail = format!("{} line(s) {what}: {}", indices.len(), quote(&indices));
            violations.push(Violation::new(Invariant::CleanOutput, detail, indices));
        }
    };
    let planted = match facts.panics_planted {
        0 => String::new(),
        n => format!(" ({n} planted)"),
    };
    found(panic_text, format!("show a panic or backtrace{planted}"));
    found(not_json, "are not JSON objects".to_owned());
    found(incomplete, format!("lack one of the keys {REQUIRED_KEYS:?}"));
    found(
        wrong_pid,
        format!(
            "of process main carry another pid than the main process's {}",
            facts.main_pid
        ),
    );
    if let Some(first) = stdout.first() {
        let detail = format!(
            "{} line(s) on stdout (the logs go to stderr): {}",
            stdout.len(),
            shorten(&first.raw)
        );
        violations.push(Violation::new(Invariant::CleanOutput, detail, Vec::new()));
    }
    violations
}

fn shorten(text: &str) -> String {
    const MAX: usize = 200;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

//! Clean output: a process that dies abruptly or prints junk (a panic, a backtrace, a stray
//! `eprintln!`) shows it here first, often in a worker hit by a signal at a bad moment. And
//! every line says truly who wrote it: `process=main` lines carry the main process's pid.

use super::{Invariant, Violation};
use crate::logs::REQUIRED_KEYS;
use crate::trial::Observation;

/// Texts that mean a panic or a backtrace, wherever they appear (even inside a JSON message).
const PANIC_MARKERS: [&str; 3] = ["panicked at", "RUST_BACKTRACE", "stack backtrace:"];

/// At most this many offending lines are quoted in the detail.
const QUOTED: usize = 3;

pub fn check(observation: &Observation) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut panics = Vec::new();
    let mut not_json = Vec::new();
    let mut incomplete = Vec::new();
    let mut wrong_pid = Vec::new();
    let main_pid = i64::from(observation.main_pid);
    for (index, line) in observation.lines.iter().enumerate() {
        // An event's own `pid` field must not overwrite the writer's (a tool that hunts
        // leftovers by the pids in the log would chase the wrong process).
        if line.is_main() && line.int("pid").is_some_and(|pid| pid != main_pid) {
            wrong_pid.push(index);
        }
        // The suite's panic hook turns a panic into a JSON line without the markers: the
        // `event=panic` field says it.
        if line.event() == Some("panic") || PANIC_MARKERS.iter().any(|m| line.raw.contains(m)) {
            panics.push(index);
        }
        match line.fields() {
            None => not_json.push(index),
            Some(map) if REQUIRED_KEYS.iter().any(|k| !map.contains_key(*k)) => incomplete.push(index),
            Some(_) => {}
        }
    }
    let quote = |indices: &[usize]| -> String {
        indices
            .iter()
            .take(QUOTED)
            .map(|&i| format!("line {}: {}", i + 1, shorten(&observation.lines[i].raw)))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    if !panics.is_empty() {
        let detail = format!(
            "{} line(s) show a panic or backtrace: {}",
            panics.len(),
            quote(&panics)
        );
        violations.push(Violation::new(Invariant::CleanOutput, detail, panics));
    }
    if !not_json.is_empty() {
        let detail = format!(
            "{} line(s) are not JSON objects: {}",
            not_json.len(),
            quote(&not_json)
        );
        violations.push(Violation::new(Invariant::CleanOutput, detail, not_json));
    }
    if !incomplete.is_empty() {
        let detail = format!(
            "{} line(s) lack one of the keys {REQUIRED_KEYS:?}: {}",
            incomplete.len(),
            quote(&incomplete)
        );
        violations.push(Violation::new(Invariant::CleanOutput, detail, incomplete));
    }
    if !wrong_pid.is_empty() {
        let detail = format!(
            "{} line(s) of process main carry another pid than the main process's {main_pid}: {}",
            wrong_pid.len(),
            quote(&wrong_pid)
        );
        violations.push(Violation::new(Invariant::CleanOutput, detail, wrong_pid));
    }
    if let Some(first) = observation.stdout.first() {
        let detail = format!(
            "{} line(s) on stdout (the logs go to stderr): {}",
            observation.stdout.len(),
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

//! The converter fed with logs written here: odd lines that must be counted, crowded labels
//! at the canvas's edge, and logs large enough to show how the time grows with their size.

use std::time::{Duration, Instant};

mod common;

use common::convert;

/// A line of the suite's JSON log at `ms` after the start, with extra fields.
fn line(ms: u64, process: &str, pid: u64, message: &str, extra: &str) -> String {
    let (s, ms) = (ms / 1000, ms % 1000);
    let (m, s) = (s / 60, s % 60);
    format!(
        r#"{{"timestamp":"2026-01-01T00:{m:02}:{s:02}.{ms:03}Z","level":"INFO","process":"{process}","pid":{pid},"thread":"main","message":"{message}"{extra}}}"#
    )
}

fn phase(ms: u64, process: &str, pid: u64, component: &str, phase: &str) -> String {
    let extra = format!(r#","component":"{component}","phase":"{phase}""#);
    line(ms, process, pid, &format!("{component}: {phase}"), &extra)
}

/// A run of app with `workers` worker lanes that start, run and stop in turn.
fn run_with_workers(workers: u64) -> String {
    let mut log = vec![phase(0, "main", 1, "app", "starting")];
    for w in 1..=workers {
        let name = format!("worker-{w}");
        log.push(phase(1, &name, 100 + w, &name, "starting"));
        log.push(phase(2, &name, 100 + w, &name, "started"));
    }
    log.push(phase(3, "main", 1, "app", "started"));
    log.push(line(
        5000,
        "main",
        1,
        "SIGINT received",
        r#","signal":"SIGINT","action":"shutdown""#,
    ));
    log.push(phase(5000, "main", 1, "app", "stopping"));
    for w in 1..=workers {
        let name = format!("worker-{w}");
        log.push(line(
            5001,
            &name,
            100 + w,
            "ignored",
            r#","signal":"SIGINT","action":"ignored""#,
        ));
        log.push(phase(5002, &name, 100 + w, &name, "stopping"));
        log.push(phase(5003, &name, 100 + w, &name, "stopped"));
    }
    log.push(phase(5004, "main", 1, "app", "stopped"));
    log.push(line(
        5004,
        "main",
        1,
        "app: ends",
        r#","component":"app","phase":"exit","status":130,"signal":"SIGINT""#,
    ));
    log.join("\n") + "\n"
}

#[test]
fn lines_that_cannot_be_placed_are_counted_and_said() {
    let mut log = run_with_workers(2);
    log.push_str(&line(
        10,
        "main",
        1,
        "a number",
        r#","component":5,"phase":"starting""#,
    ));
    log.push('\n');
    log.push_str(&line(
        11,
        "main",
        1,
        "a null",
        r#","component":null,"phase":"started""#,
    ));
    log.push('\n');
    log.push_str(r#"{"level":"INFO","message":"no time"}"#);
    log.push('\n');
    let (svg, err, code) = convert(&log, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("skipped 3 lines"),
        "stderr does not count them: {err}"
    );
    for why in [
        r#""component" that is a number"#,
        r#""component" that is null"#,
        "timestamp",
    ] {
        assert!(err.contains(why), "stderr does not say why ({why}): {err}");
    }
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    let note = doc
        .descendants()
        .find(|n| n.attribute("class") == Some("skipped"))
        .expect("the picture notes the skipped lines");
    let text: String = note
        .descendants()
        .filter(|t| t.is_text())
        .filter_map(|t| t.text())
        .collect();
    assert!(text.contains("3 lines skipped"), "{text}");
    // The trace says the same on stderr.
    let (_, err, code) = convert(&log, &["--format", "trace"]);
    assert_eq!(code, 0);
    assert!(err.contains("skipped 3 lines"), "{err}");
}

#[test]
fn crowded_labels_stay_apart_and_on_the_canvas() {
    // Signals piled at the very end, names longer than the left column, a narrow picture.
    let mut log = run_with_workers(6);
    for n in 0..12 {
        let extra = format!(r#","signal":"SIGTERM","action":"counted","count":{n}"#);
        log.push_str(&line(5003, "main", 1, "again", &extra));
        log.push('\n');
    }
    log.push_str(&phase(
        4,
        "main",
        1,
        "AVeryLongServiceNameThatDoesNotFitTheColumn",
        "starting",
    ));
    log.push('\n');
    for width in ["500", "900"] {
        let (svg, err, code) = convert(&log, &["--width", width, "--title", &"long title ".repeat(20)]);
        assert_eq!(code, 0, "{err}");
        common::assert_labels_apart(&svg);
    }
}

fn time_to_draw(log: &str) -> Duration {
    let start = Instant::now();
    let (_, err, code) = convert(log, &[]);
    assert_eq!(code, 0, "{err}");
    start.elapsed()
}

#[test]
fn time_grows_linearly_with_lanes() {
    // Eight times the lanes (and lines) take about eight times as long; a search of every
    // lane for each line or each lane would make it sixty-four once it dominates. The bound
    // is generous (a debug build, a busy machine): it stops a cost per lane that grows with
    // the lanes, not a few percent. The best of two runs of each size.
    let small = run_with_workers(500);
    let large = run_with_workers(4_000);
    let t_small = time_to_draw(&small).min(time_to_draw(&small));
    let t_large = time_to_draw(&large).min(time_to_draw(&large));
    let ratio = t_large.as_secs_f64() / t_small.as_secs_f64();
    assert!(
        ratio < 16.0,
        "8x the lanes took {ratio:.1}x the time ({t_small:?} then {t_large:?}): not linear"
    );
}

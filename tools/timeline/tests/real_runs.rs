//! The converter fed with logs made by the suite's real binaries: a clean run, a signal
//! during the start, a forced exit, a crashed worker. The SVG is read back as XML and the
//! trace as JSON, and both are checked against the log they came from.
//!
//! The binaries are not built here: `cargo test --workspace` builds them first.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

mod common;
mod suite_run;

use common::convert;
use suite_run::Run;

fn parse_log(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn attr_f64(node: roxmltree::Node, name: &str) -> f64 {
    node.attribute(name)
        .unwrap_or_else(|| panic!("{} has no {name}", node.tag_name().name()))
        .parse()
        .expect("a number")
}

fn has_class(node: &roxmltree::Node, class: &str) -> bool {
    node.attribute("class")
        .is_some_and(|c| c.split_whitespace().any(|c| c == class))
}

/// A bar read back: its start, its end (ms) and its phase.
type Bar = (f64, f64, String);

/// Checks the picture against the log it was drawn from.
fn check_svg(log: &str, expected_status: i32) -> String {
    let (svg, stderr, code) = convert(log, &[]);
    assert_eq!(code, 0, "the timeline failed: {stderr}");
    common::assert_labels_apart(&svg);
    let doc = roxmltree::Document::parse(&svg).expect("the SVG is well-formed XML");
    let events = parse_log(log);

    // One lane per component.
    let components: BTreeSet<&str> = events
        .iter()
        .filter(|e| e["phase"].is_string() && e["phase"] != "exit")
        .filter_map(|e| e["component"].as_str())
        .collect();
    let lanes: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("g") && has_class(n, "lane"))
        .map(|n| n.attribute("data-component").expect("a lane names its component"))
        .collect();
    let lane_set: BTreeSet<&str> = lanes.iter().copied().collect();
    assert_eq!(
        lanes.len(),
        lane_set.len(),
        "a component has two lanes: {lanes:?}"
    );
    assert_eq!(lane_set, components, "lanes and components differ");

    // A mark per signal event, with its action.
    let mut wanted: BTreeMap<(String, String), usize> = BTreeMap::new();
    for e in &events {
        if let (Some(signal), Some(action)) = (e["signal"].as_str(), e["action"].as_str()) {
            *wanted.entry((signal.into(), action.into())).or_default() += 1;
        }
        if e["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("delivering the delayed"))
        {
            let signal = e["signal"].as_str().expect("the delivery names its signal");
            *wanted.entry((signal.into(), "delivered".into())).or_default() += 1;
        }
    }
    let mut marks: BTreeMap<(String, String), usize> = BTreeMap::new();
    for n in doc
        .descendants()
        .filter(|n| n.has_tag_name("g") && has_class(n, "signal"))
    {
        let key = (
            n.attribute("data-signal").expect("data-signal").to_string(),
            n.attribute("data-action").expect("data-action").to_string(),
        );
        *marks.entry(key).or_default() += 1;
    }
    assert_eq!(marks, wanted, "signal marks and signal events differ");

    // Bars within the axis, and in order within each incarnation.
    let axis = doc.descendants().find(|n| has_class(n, "axis")).expect("an axis");
    let (x0, x1) = (attr_f64(axis, "data-x0"), attr_f64(axis, "data-x1"));
    let mut per_incarnation: BTreeMap<(String, String), Vec<Bar>> = BTreeMap::new();
    for bar in doc
        .descendants()
        .filter(|n| n.has_tag_name("rect") && has_class(n, "bar"))
    {
        let (x, w) = (attr_f64(bar, "x"), attr_f64(bar, "width"));
        assert!(
            x >= x0 - 0.5 && x + w <= x1 + 0.5 && w > 0.0,
            "a bar leaves the axis [{x0}, {x1}]: x {x}, width {w}"
        );
        let (t0, t1) = (attr_f64(bar, "data-t0"), attr_f64(bar, "data-t1"));
        assert!(t0 <= t1, "a bar ends before it starts");
        let key = (
            bar.attribute("data-component").unwrap().to_string(),
            bar.attribute("data-incarnation").unwrap().to_string(),
        );
        let phase = bar.attribute("data-phase").unwrap().to_string();
        per_incarnation.entry(key).or_default().push((t0, t1, phase));
    }
    let rank = |p: &str| ["starting", "running", "stopping"].iter().position(|q| *q == p);
    for ((component, n), bars) in &per_incarnation {
        for pair in bars.windows(2) {
            let ((a0, a1, pa), (b0, _, pb)) = (&pair[0], &pair[1]);
            assert!(
                a1 <= b0 && a0 <= b0 && rank(pa) < rank(pb),
                "{component} (incarnation {n}): {pa} then {pb} out of order: {bars:?}"
            );
        }
    }
    assert!(!per_incarnation.is_empty(), "no bars at all in the picture");

    // The exit and its status.
    let exit = doc
        .descendants()
        .find(|n| has_class(n, "exit"))
        .expect("the exit is drawn");
    assert_eq!(
        exit.attribute("data-status"),
        Some(expected_status.to_string().as_str())
    );
    let shown: String = exit
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .flat_map(|n| n.descendants().filter(|t| t.is_text()))
        .filter_map(|t| t.text())
        .collect();
    assert!(
        shown.contains(&format!("status {expected_status}")),
        "the exit's text does not show status {expected_status}: {shown:?}"
    );
    svg
}

/// Checks the stop panel: each component's stop is a bar, and the stops end in the reverse
/// of the order the components began to start, each end a few pixels from the next.
fn check_stop_panel(log: &str, svg: &str) {
    let doc = roxmltree::Document::parse(svg).unwrap();
    let panel = doc
        .descendants()
        .find(|n| has_class(n, "stop"))
        .expect("the picture has a stop panel");
    let mut ends: BTreeMap<String, (usize, f64)> = BTreeMap::new();
    for bar in panel.descendants().filter(|n| has_class(n, "stop-bar")) {
        let name = bar.attribute("data-component").unwrap().to_string();
        let step: usize = bar.attribute("data-step1").unwrap().parse().unwrap();
        ends.insert(name, (step, attr_f64(bar, "x") + attr_f64(bar, "width")));
    }
    let mut started: Vec<String> = Vec::new();
    for e in parse_log(log) {
        if e["phase"] == "starting"
            && let Some(c) = e["component"].as_str()
            && !c.starts_with("worker-")
            && !started.iter().any(|s| s == c)
        {
            started.push(c.to_string());
        }
    }
    let mut stopped: Vec<&String> = started.iter().filter(|c| ends.contains_key(*c)).collect();
    assert!(stopped.len() >= 4, "too few stops in the panel: {ends:?}");
    let reverse: Vec<&String> = stopped.iter().rev().copied().collect();
    stopped.sort_by_key(|c| ends[*c].0);
    assert_eq!(
        stopped, reverse,
        "the stops do not end in the reverse start order: {ends:?}"
    );
    for pair in stopped.windows(2) {
        let (a, b) = (ends[pair[0]].1, ends[pair[1]].1);
        assert!(
            b - a >= 4.0,
            "{} and {} end too close to tell apart: {a} {b}",
            pair[0],
            pair[1]
        );
    }
    // The workers stop inside MPM's stop.
    let mpm = ends["MPM"].0;
    for (name, (step, _)) in ends.iter().filter(|(n, _)| n.starts_with("worker-")) {
        assert!(*step < mpm, "{name} ends its stop after MPM: {ends:?}");
    }
}

/// Checks the trace: it parses, names every process, nests on every thread.
fn check_trace(log: &str) -> Value {
    let (out, stderr, code) = convert(log, &["--format", "trace"]);
    assert_eq!(code, 0, "the trace failed: {stderr}");
    let trace: Value = serde_json::from_str(&out).expect("the trace is JSON");
    let events = trace["traceEvents"].as_array().expect("traceEvents");
    let named: BTreeSet<i64> = events
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "process_name")
        .filter_map(|e| e["pid"].as_i64())
        .collect();
    let pids: BTreeSet<i64> = parse_log(log).iter().filter_map(|e| e["pid"].as_i64()).collect();
    assert_eq!(named, pids, "every process of the log is named in the trace");
    for e in events.iter().filter(|e| e["ph"] != "M") {
        let pid = e["pid"].as_i64().expect("an event has a pid");
        let tid = e["tid"].as_i64().expect("an event has a tid");
        assert!(named.contains(&pid), "an event on an unnamed process: {e}");
        assert!(
            events
                .iter()
                .any(|m| m["ph"] == "M" && m["name"] == "thread_name" && m["pid"] == pid && m["tid"] == tid),
            "an event on an unnamed thread: {e}"
        );
    }
    // Complete events nest on every thread: each is inside the open one or after it.
    let mut per_thread: BTreeMap<(i64, i64), Vec<(i64, i64)>> = BTreeMap::new();
    for e in events.iter().filter(|e| e["ph"] == "X") {
        let ts = e["ts"].as_i64().expect("ts");
        let dur = e["dur"].as_i64().expect("dur");
        assert!(dur >= 0, "a negative duration: {e}");
        per_thread
            .entry((e["pid"].as_i64().unwrap(), e["tid"].as_i64().unwrap()))
            .or_default()
            .push((ts, ts + dur));
    }
    assert!(!per_thread.is_empty(), "no complete events");
    for (thread, mut spans) in per_thread {
        spans.sort_by_key(|&(start, end)| (start, std::cmp::Reverse(end)));
        let mut open: Vec<(i64, i64)> = Vec::new();
        for (start, end) in spans {
            while open.last().is_some_and(|&(_, e)| e <= start) {
                open.pop();
            }
            if let Some(&(_, e)) = open.last() {
                assert!(
                    end <= e,
                    "on {thread:?}, [{start}, {end}] overlaps its parent ending at {e}"
                );
            }
            open.push((start, end));
        }
    }
    // A signal instant per signal event.
    let signals = events.iter().filter(|e| e["cat"] == "signal").count();
    let wanted = parse_log(log)
        .iter()
        .filter(|e| {
            e["signal"].is_string()
                && (e["action"].is_string()
                    || e["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("delivering the delayed")))
        })
        .count();
    assert_eq!(
        signals, wanted,
        "signal instants and signal events (with deliveries) differ"
    );
    trace
}

#[test]
fn a_clean_run() {
    let run = Run::start("complex", &["--time-scale", "0.05", "--run-for", "150ms"]);
    let (log, status) = run.finish();
    assert_eq!(status, 0, "{log}");
    check_svg(&log, 0);
    check_trace(&log);
}

#[test]
fn a_signal_during_the_start_is_delayed_then_delivered() {
    let mut run = Run::start("simple", &["--time-scale", "0.2"]);
    run.wait_phase("AsyncService1", "starting");
    run.signal(libc::SIGINT);
    let (log, status) = run.finish();
    assert_eq!(status, 130, "{log}");
    let svg = check_svg(&log, 130);
    assert!(svg.contains(r#"data-action="delayed""#) && svg.contains(r#"data-action="delivered""#));
    assert!(
        svg.contains(r#"class="delivery""#),
        "no arrow from the delayed signal to its delivery"
    );
    check_trace(&log);
}

#[test]
fn a_forced_exit_stands_out() {
    let mut run = Run::start("complex", &["--time-scale", "0.2"]);
    run.wait_phase("app", "started");
    run.signal(libc::SIGINT);
    run.wait_phase("AsyncService2", "stopping");
    run.signal(libc::SIGINT);
    run.wait_for("the second signal", |v| v["action"] == "counted");
    run.signal(libc::SIGINT);
    let (log, status) = run.finish();
    assert_eq!(status, 130, "{log}");
    let svg = check_svg(&log, 130);
    assert!(
        svg.contains(r#"data-forced="true""#),
        "the exit is not shown forced"
    );
    assert!(
        svg.contains(r#"data-failed="true""#),
        "no failed bar in a forced exit"
    );
    check_trace(&log);
}

#[test]
fn a_crashed_worker_is_replaced_and_both_pids_are_drawn() {
    let mut run = Run::start("complex", &["--time-scale", "0.1"]);
    let spawned = run.wait_for("worker-2 spawned", |v| {
        v["event"] == "spawned" && v["worker"] == "worker-2"
    });
    let first = spawned["worker_pid"].as_i64().expect("worker_pid") as i32;
    run.wait_phase("app", "started");
    // SAFETY: kill has no memory effects; the pid is the worker the log just named.
    unsafe { libc::kill(first, libc::SIGKILL) };
    let replaced = run.wait_for("worker-2 replaced", |v| {
        v["event"] == "replaced" && v["worker"] == "worker-2"
    });
    let second = replaced["worker_pid"].as_i64().expect("worker_pid");
    run.signal_group(libc::SIGINT);
    let (log, status) = run.finish();
    assert_eq!(status, 130, "{log}");
    let svg = check_svg(&log, 130);
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let pids: BTreeSet<i64> = doc
        .descendants()
        .filter(|n| n.attribute("data-component") == Some("worker-2") && has_class(n, "bar"))
        .filter_map(|n| n.attribute("data-pid")?.parse().ok())
        .collect();
    assert_eq!(
        pids,
        BTreeSet::from([first as i64, second]),
        "both incarnations drawn by pid"
    );
    assert!(
        doc.descendants().any(|n| has_class(&n, "restart")),
        "the restart is not drawn"
    );
    let death = doc
        .descendants()
        .find(|n| has_class(n, "failure"))
        .expect("the death is drawn");
    // The restart's dot beside the death's cross (half-width 5), not under it (radius 4.5).
    let cross_x = attr_f64(death, "data-x");
    for restart in doc.descendants().filter(|n| has_class(n, "restart")) {
        let circle = restart
            .descendants()
            .find(|n| n.has_tag_name("circle"))
            .expect("a restart is a dot");
        let cx = attr_f64(circle, "cx");
        assert!(
            (cx - cross_x).abs() >= 9.5,
            "the restart's dot at x {cx} hides under the cross at x {cross_x}"
        );
    }
    check_stop_panel(&log, &svg);
    let trace = check_trace(&log);
    let names: Vec<&str> = trace["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == "process_name")
        .filter_map(|e| e["args"]["name"].as_str())
        .collect();
    assert!(
        names.contains(&format!("worker-2 (pid {first})").as_str()),
        "{names:?}"
    );
    assert!(
        names.contains(&format!("worker-2 (pid {second})").as_str()),
        "{names:?}"
    );
}

#[test]
fn bad_input_is_refused_with_a_clear_error() {
    let (out, err, code) = convert("this is a text log line\n", &[]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(
        err.contains("not JSON") && err.contains("--log-format json"),
        "{err}"
    );

    let (out, err, code) = convert("", &[]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(err.contains("empty"), "{err}");

    let (_, err, code) = convert("[1, 2]\n", &["--format", "trace"]);
    assert_eq!(code, 1);
    assert!(err.contains("not a JSON object"), "{err}");
}

#[test]
fn a_cut_log_is_drawn_and_said_to_be_cut() {
    let run = Run::start("complex", &["--time-scale", "0.05", "--run-for", "100ms"]);
    let (log, status) = run.finish();
    assert_eq!(status, 0, "{log}");
    // Keep the log up to the middle of the stop.
    let lines: Vec<&str> = log.lines().collect();
    let stopping = lines
        .iter()
        .position(|l| l.contains(r#""phase":"stopping""#))
        .expect("a stop in the log");
    let cut = lines[..=stopping + 2].join("\n") + "\n";

    let (svg, err, code) = convert(&cut, &[]);
    assert_eq!(code, 3, "a cut log is drawn, and the status says it was cut");
    assert!(err.contains("cut"), "{err}");
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    assert!(
        doc.descendants().any(|n| has_class(&n, "cut")),
        "the title says cut"
    );
    assert!(
        doc.descendants().any(|n| has_class(&n, "cut-end")),
        "the end is marked"
    );
    assert!(
        doc.descendants()
            .any(|n| n.attribute("data-open") == Some("true")),
        "the unfinished phases are drawn open"
    );

    let (trace, _, code) = convert(&cut, &["--format", "trace"]);
    assert_eq!(code, 3);
    let trace: Value = serde_json::from_str(&trace).expect("the trace of a cut log is JSON");
    assert_eq!(trace["otherData"]["cut"], true);
}

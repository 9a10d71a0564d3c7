//! The run as an SVG picture: a timeline (time left to right, one lane per component
//! grouped by process, phases as bars, signals as marks, the exit as a line across every
//! lane), then the stop step by step, then the legend.
//!
//! Elements carry `class` and `data-*` attributes (lane, bar, signal, exit, axis, stop) so
//! that the picture can be checked by reading it back as XML.

mod axis;
mod labels;
mod lane;
mod shapes;
mod signals;
mod stop;

use std::fmt::Write as _;

use svg::Document;
use svg::node::Blob;
use svg::node::element::path::Data;
use svg::node::element::{Definitions, Group, Marker, Path, Rectangle, Title};

use strips::style::{FONT, GREY, INK, TEXT};

use self::axis::{Axis, axis_row};
use self::labels::{Anchor, Label, Placer, fmt_px};
use self::shapes::{FAILED, STOP_INK, action_colour, fmt_duration, line};
use crate::model::Run;

/// The left column, for the lanes' names.
const LEFT: f64 = 150.0;
const RIGHT: f64 = 24.0;
/// Where the lanes begin, under the title and the exit's label.
const TOP: f64 = 74.0;

/// Everything above the lanes: what ran, when, how it ended.
fn title(run: &Run, given: Option<&str>) -> (String, String) {
    let pid = run.main_pid().map_or(String::new(), |p| format!("pid {p}"));
    let first = given.map_or_else(|| format!("Run of main {pid}"), str::to_string);
    let mut second = format!(
        "{} · {} · {} lines",
        humantime::format_rfc3339_millis(run.start),
        fmt_duration(run.end),
        run.lines
    );
    if given.is_some() && !pid.is_empty() {
        second = format!("main {pid} · {second}");
    }
    if run.cut() {
        second.push_str(" · CUT: the log ends without the exit event");
    }
    (first, second)
}

enum Row {
    Header(String),
    Signals,
    Lane(usize),
}

/// The rows, top to bottom: main's group (a header, its signals, its lanes), then each
/// worker's lane.
fn rows(run: &Run) -> Vec<Row> {
    let main_pids = run.processes.get("main").cloned().unwrap_or_default();
    let pids: Vec<String> = main_pids.iter().map(i64::to_string).collect();
    let mut rows = vec![Row::Header(format!("process main · pid {}", pids.join(", ")))];
    if !run.signals.is_empty() {
        rows.push(Row::Signals);
    }
    let (main, workers): (Vec<_>, Vec<_>) =
        (0..run.components.len()).partition(|&i| run.components[i].process == "main");
    rows.extend(main.into_iter().map(Row::Lane));
    if !workers.is_empty() {
        rows.push(Row::Header("worker processes (one each)".into()));
    }
    rows.extend(workers.into_iter().map(Row::Lane));
    rows
}

/// Draws the run. `width` is the picture's width in pixels; `skipped` the lines the reader
/// could not place, said at the bottom. The document is printed by the caller, straight to
/// its output: the picture is not held twice, once as a tree and once as text.
pub fn draw(run: &Run, width: f64, given_title: Option<&str>, skipped: usize) -> Document {
    let width = width.max(500.0);
    let mut placer = Placer::new(width);
    let axis = Axis::new(run, LEFT, width - RIGHT);
    let rows = rows(run);
    let layout = signals::Layout::new(run, &axis, width);
    let mut y = TOP;
    let mut row_y = Vec::new();
    for row in &rows {
        row_y.push(y);
        y += match row {
            Row::Header(_) => 18.0,
            Row::Signals => layout.height(),
            Row::Lane(_) => lane::LANE,
        };
    }
    let bottom = y + 4.0;

    let mut doc = Group::new().set("font-family", FONT).set("fill", INK);
    let (first, second) = title(run, given_title);
    let first = placer.fixed(Label::new(12.0, 22.0, 15.0, first).bold());
    let second = placer.fixed(Label::new(12.0, 40.0, TEXT, second));
    doc = doc.add(first.to_text()).add({
        let t = second.to_text().set("fill", GREY);
        if run.cut() {
            t.set("class", "cut").set("fill", FAILED)
        } else {
            t
        }
    });

    // Group separators, then the breaks (quiet stretches cut short) under the bars.
    let mut background = Group::new().set("class", "background");
    for (row, &ry) in rows.iter().zip(&row_y) {
        if let Row::Header(_) = row
            && ry > TOP
        {
            background = background.add(line(8.0, ry + 2.0, width - 8.0, ry + 2.0, "#bbb"));
        }
    }
    for p in axis.pieces.iter().filter(|p| p.broken) {
        background = background.add(
            Rectangle::new()
                .set("x", fmt_px(p.x0 + 4.0))
                .set("y", fmt_px(TOP))
                .set("width", fmt_px(p.x1 - p.x0 - 8.0))
                .set("height", fmt_px(bottom - TOP))
                .set("fill", "#f3f3f3")
                .add(Title::new(format!(
                    "{} in which every component that was up was running, cut short",
                    fmt_duration(p.t1 - p.t0)
                ))),
        );
    }
    doc = doc.add(background);

    // The exit first: its label is the one that must not give way to another.
    let exit = exit_mark(run, &axis, bottom, &mut placer);
    let mut signals_layout = Some(layout);
    // Lanes are turned into markup as they are drawn: a tree of every lane's elements would
    // take several times the memory of the text it prints.
    let mut lanes = String::new();
    for (row, &ry) in rows.iter().zip(&row_y) {
        match row {
            Row::Header(label) => {
                let label = placer.fixed(Label::new(12.0, ry + 14.0, 10.5, label.clone()));
                doc = doc.add(label.to_text().set("fill", GREY).set("font-style", "italic"));
            }
            Row::Signals => {
                if let Some(layout) = signals_layout.take() {
                    doc = doc.add(signals::signals_row(run, &axis, ry, layout, &mut placer));
                }
            }
            Row::Lane(i) => {
                let lane = lane::lane(&run.components[*i], &axis, ry, &mut placer);
                let _ = write!(lanes, "{lane}");
            }
        }
    }
    doc = doc.add(Blob::new(lanes)).add(exit);

    // Break marks over the bars: two slanted strokes at each side of the cut.
    let mut cuts = Group::new();
    for p in axis.pieces.iter().filter(|p| p.broken) {
        for x in [p.x0 + 4.0, p.x1 - 4.0] {
            cuts = cuts.add(
                line(x - 3.0, bottom + 6.0, x + 3.0, TOP - 4.0, "#999")
                    .set("stroke-width", 1.2)
                    .set("stroke-dasharray", "4 3"),
            );
        }
    }
    doc = doc.add(cuts);

    let (axis_group, mut y) = axis_row(&axis, bottom + 4.0, LEFT, &mut placer);
    doc = doc.add(axis_group);
    // A bracket under the stop's stretch of the axis points to the panel that spreads it out.
    if let Some((_, begin)) = run.stop_begins() {
        let end = run.exit.as_ref().map_or(run.end, |e| e.t);
        let (a, b) = (axis.x(begin), axis.x(end));
        let data = Data::new()
            .move_to((a, y - 4.0))
            .line_to((a, y))
            .line_to((b, y))
            .line_to((b, y - 4.0));
        doc = doc.add(
            Path::new()
                .set("class", "stop-bracket")
                .set("d", data)
                .set("fill", "none")
                .set("stroke", STOP_INK)
                .set("stroke-width", 1.5),
        );
        let say = |x: f64, anchor| Label::new(x, y + 12.0, 10.0, "the stop, step by step ↓").anchor(anchor);
        let candidates = [
            say((a + b) / 2.0, Anchor::Middle),
            say(b, Anchor::End),
            say(a, Anchor::Start),
        ];
        if let Some(l) = placer.place(candidates) {
            doc = doc.add(l.to_text().set("fill", STOP_INK));
        }
        y += 14.0;
    }
    if let Some((panel, panel_bottom)) = stop::panel(run, y + 6.0, LEFT, width - RIGHT, &mut placer) {
        doc = doc.add(panel);
        y = panel_bottom;
    }
    let (legend, mut y) = shapes::legend(width, y + 10.0, &mut placer);
    doc = doc.add(legend);
    // What the picture leaves out, said where it cannot be missed.
    let mut notes = Vec::new();
    if skipped > 0 {
        notes.push(format!("{skipped} lines skipped (the tool's stderr says why)"));
    }
    if run.not_drawn > 0 {
        notes.push(format!(
            "{} marks beyond {} per lane not drawn",
            run.not_drawn,
            crate::model::PER_LANE
        ));
    }
    if !notes.is_empty() {
        let note = placer.fixed(Label::new(12.0, y + 14.0, 10.0, notes.join(" · ")));
        doc = doc.add(note.to_text().set("class", "skipped").set("fill", FAILED));
        y += 16.0;
    }

    let defs = Definitions::new().add(
        Marker::new()
            .set("id", "arrow")
            .set("viewBox", "0 0 10 10")
            .set("refX", 9)
            .set("refY", 5)
            .set("markerWidth", 7)
            .set("markerHeight", 7)
            .set("orient", "auto-start-reverse")
            .add(
                Path::new()
                    .set("d", "M 0 0 L 10 5 L 0 10 z")
                    .set("fill", action_colour("delayed")),
            ),
    );
    let height = y + 8.0;
    Document::new()
        .set("width", width)
        .set("height", fmt_px(height))
        .set("viewBox", format!("0 0 {width} {}", fmt_px(height)))
        .add(defs)
        .add(
            Rectangle::new()
                .set("width", "100%")
                .set("height", "100%")
                .set("fill", "white"),
        )
        .add(doc)
}

/// The exit (or where the log stops) as a line across every lane, its label above them.
fn exit_mark(run: &Run, axis: &Axis, bottom: f64, placer: &mut Placer) -> Group {
    let (t, label, colour, class) = match &run.exit {
        Some(exit) => {
            let bad = run.forced || (exit.status != 0 && exit.signal.is_none());
            let mut label = match &exit.signal {
                Some(signal) => format!("exit status {} (ends by {signal})", exit.status),
                None => format!("exit status {}", exit.status),
            };
            if run.forced {
                label = format!("forced · {label}");
            }
            (exit.t, label, if bad { FAILED } else { INK }, "exit")
        }
        None => (run.end, "log cut here: no exit event".into(), FAILED, "cut-end"),
    };
    let x = axis.x(t);
    let at = |x: f64, anchor| {
        Label::new(x, TOP - 12.0, 12.0, label.clone())
            .bold()
            .anchor(anchor)
    };
    let candidates = [
        at(x, Anchor::Middle),
        at(x + 4.0, Anchor::End),
        at(x - 4.0, Anchor::Start),
    ];
    let label = placer
        .place(candidates)
        .unwrap_or_else(|| placer.fixed(at(x + 4.0, Anchor::End)));
    let mut g = Group::new().set("class", class);
    if let Some(exit) = &run.exit {
        g = g
            .set("data-status", exit.status)
            .set("data-forced", run.forced)
            .add(Title::new(exit.message.clone()));
    }
    let (width, dash) = if run.exit.is_some() {
        (2.0, "5 3")
    } else {
        (1.5, "2 3")
    };
    g.add(
        line(x, TOP - 8.0, x, bottom, colour)
            .set("stroke-width", width)
            .set("stroke-dasharray", dash),
    )
    .add(label.to_text().set("fill", colour))
}

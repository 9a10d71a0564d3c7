//! The run as an SVG timeline: time left to right, one lane per component grouped by
//! process, phases as bars, signals as marks, the exit as a line across every lane.
//!
//! Elements carry `class` and `data-*` attributes (lane, bar, signal, exit, axis) so that
//! the picture can be checked by reading it back as XML.

use std::fmt::Write as _;

use svg::Document;
use svg::node::element::path::Data;
use svg::node::element::{Circle, Definitions, Group, Line, Marker, Path, Polygon, Rectangle, Text, Title};

use crate::model::{Component, MarkKind, Phase, Run, Signal};

use strips::style::{FONT, GREY, INK, TEXT};

const LEFT: f64 = 150.0;
const RIGHT: f64 = 24.0;
const LANE: f64 = 26.0;
const BAR_TOP: f64 = 7.0;
const BAR: f64 = 12.0;
const BREAK: f64 = 60.0;
/// The narrowest a stretch drawn to scale may be, when it lies between two breaks.
const MIN_PIECE: f64 = 40.0;

const STARTING: &str = "#9ecae1";
const RUNNING: &str = "#c7e9c0";
const STOPPING: &str = "#fdbe85";
const FAILED: &str = "#d62728";

fn phase_colour(phase: Phase) -> &'static str {
    match phase {
        Phase::Starting => STARTING,
        Phase::Running => RUNNING,
        Phase::Stopping => STOPPING,
    }
}

fn action_colour(action: &str) -> &'static str {
    match action {
        "delayed" => "#d99a00",
        "shutdown" => "#6a3d9a",
        "counted" => "#9e7fc4",
        "forced" => "#a50f15",
        "delivered" => "#d99a00",
        _ => "#8c8c8c",
    }
}

/// Width of `text` at `size` px in a sans-serif font: an estimate on the wide side, used
/// only to keep labels apart.
fn text_width(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * size * 0.62
}

fn fmt_px(v: f64) -> String {
    format!("{v:.1}")
}

/// Seconds since the start, with as many decimals as `step` (in ms) needs.
fn fmt_time(ms: f64, step: f64) -> String {
    let decimals = if step >= 1000.0 {
        0
    } else {
        (3.0 - step.log10().floor()).clamp(0.0, 3.0) as usize
    };
    format!("{:.*} s", decimals, ms / 1000.0)
}

/// A duration in the units that read best.
fn fmt_duration(ms: f64) -> String {
    if ms >= 10_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{ms:.0} ms")
    }
}

/// A piece of the axis: drawn to scale, or a long quiet stretch cut short (a break).
#[derive(Clone, Debug)]
struct Piece {
    t0: f64,
    t1: f64,
    x0: f64,
    x1: f64,
    broken: bool,
}

/// Time to x: linear except for the breaks. A stretch in which every component that is up
/// is merely running, and that is long next to the rest of the run, is cut to a fixed width
/// so that a short stop after a long run keeps a readable size.
struct Axis {
    pieces: Vec<Piece>,
    /// Pixels per millisecond in the pieces drawn to scale.
    scale: f64,
}

impl Axis {
    fn new(run: &Run, x0: f64, x1: f64) -> Axis {
        let keys = run.key_times();
        let span = run.end.max(1.0);
        let mut gaps: Vec<(f64, f64)> = keys
            .windows(2)
            .map(|w| (w[0], w[1]))
            .filter(|&(a, b)| b - a > 20.0 && !run.busy_between(a, b))
            .collect();
        gaps.sort_by(|p, q| (q.1 - q.0).total_cmp(&(p.1 - p.0)));
        let mut shown = span;
        let mut broken = Vec::new();
        for (a, b) in gaps {
            let g = b - a;
            if broken.len() < 4 && g > 0.5 * (shown - g) {
                broken.push((a, b));
                shown -= g;
            }
        }
        broken.sort_by(|p, q| p.0.total_cmp(&q.0));
        // The stretches drawn to scale, between the breaks.
        let mut spans = Vec::new();
        let mut t = 0.0;
        for &(a, b) in &broken {
            spans.push((t, a));
            t = b;
        }
        spans.push((t, span));
        // A stretch between two breaks (a worker's death and its replacement, a few ms)
        // gets room enough for its marks; the others share what is left, to one scale.
        let width = x1 - x0 - BREAK * broken.len() as f64;
        let mut scale = width / shown.max(1.0);
        let narrow = |&(a, b): &(f64, f64), scale: f64| (b - a) * scale < MIN_PIECE;
        let (fixed, fixed_ms) = spans
            .iter()
            .filter(|s| narrow(s, scale) && spans.len() > 1)
            .fold((0.0, 0.0), |(n, ms), (a, b)| (n + MIN_PIECE, ms + (b - a)));
        if fixed > 0.0 {
            scale = (width - fixed) / (shown - fixed_ms).max(1.0);
        }
        let mut pieces = Vec::new();
        let mut x = x0;
        for (n, &(a, b)) in spans.iter().enumerate() {
            let w = if fixed > 0.0 && (b - a) * scale < MIN_PIECE {
                MIN_PIECE
            } else {
                (b - a) * scale
            };
            let w = if n + 1 == spans.len() { x1 - x } else { w };
            pieces.push(Piece {
                t0: a,
                t1: b,
                x0: x,
                x1: x + w,
                broken: false,
            });
            x += w;
            if let Some(&(c, d)) = broken.get(n) {
                pieces.push(Piece {
                    t0: c,
                    t1: d,
                    x0: x,
                    x1: x + BREAK,
                    broken: true,
                });
                x += BREAK;
            }
        }
        Axis { pieces, scale }
    }

    fn x(&self, t: f64) -> f64 {
        let piece = self
            .pieces
            .iter()
            .find(|p| t <= p.t1)
            .unwrap_or_else(|| self.pieces.last().expect("an axis has a piece"));
        if piece.t1 <= piece.t0 {
            return piece.x0;
        }
        let f = ((t - piece.t0) / (piece.t1 - piece.t0)).clamp(0.0, 1.0);
        piece.x0 + f * (piece.x1 - piece.x0)
    }

    fn left(&self) -> f64 {
        self.pieces[0].x0
    }

    fn right(&self) -> f64 {
        self.pieces.last().expect("an axis has a piece").x1
    }
}

/// Keeps labels on one line from overlapping.
#[derive(Default)]
struct Shelf {
    taken: Vec<(f64, f64)>,
}

impl Shelf {
    fn free(&self, a: f64, b: f64) -> bool {
        self.taken.iter().all(|&(p, q)| b + 3.0 <= p || a >= q + 3.0)
    }

    fn take(&mut self, a: f64, b: f64) -> bool {
        if self.free(a, b) {
            self.taken.push((a, b));
            true
        } else {
            false
        }
    }
}

fn text(x: f64, y: f64, size: f64, content: impl Into<String>) -> Text {
    Text::new(content)
        .set("x", fmt_px(x))
        .set("y", fmt_px(y))
        .set("font-size", size)
}

/// Text with a white halo, to stay readable over a bar.
fn halo(t: Text) -> Text {
    t.set("stroke", "white")
        .set("stroke-width", 3)
        .set("stroke-linejoin", "round")
        .set("paint-order", "stroke")
}

fn line(x1: f64, y1: f64, x2: f64, y2: f64, colour: &str) -> Line {
    Line::new()
        .set("x1", fmt_px(x1))
        .set("y1", fmt_px(y1))
        .set("x2", fmt_px(x2))
        .set("y2", fmt_px(y2))
        .set("stroke", colour)
}

fn triangle(x: f64, y: f64, size: f64, colour: &str) -> Polygon {
    let h = size;
    let w = size * 0.65;
    Polygon::new()
        .set(
            "points",
            format!(
                "{},{} {},{} {},{}",
                fmt_px(x - w),
                fmt_px(y),
                fmt_px(x + w),
                fmt_px(y),
                fmt_px(x),
                fmt_px(y + h)
            ),
        )
        .set("fill", colour)
        .set("stroke", "white")
        .set("stroke-width", 0.8)
}

fn cross(x: f64, y: f64, r: f64) -> Path {
    let data = Data::new()
        .move_to((x - r, y - r))
        .line_to((x + r, y + r))
        .move_to((x - r, y + r))
        .line_to((x + r, y - r));
    Path::new()
        .set("d", data)
        .set("stroke", FAILED)
        .set("stroke-width", 2.5)
        .set("fill", "none")
}

fn signal_label(s: &Signal) -> String {
    match (s.action.as_str(), s.count) {
        ("delivered", _) => format!("delayed {} delivered", s.signal),
        ("counted" | "forced", Some(n)) => format!("{} {} #{n}", s.signal, s.action),
        (action, _) => format!("{} {action}", s.signal),
    }
}

/// The short form of a failure's cause for a label: its last clause.
fn short_cause(cause: &str) -> String {
    let last = cause.rsplit(": ").next().unwrap_or(cause);
    let last = last.split(" (").next().unwrap_or(last);
    let mut s: String = last.chars().take(34).collect();
    if last.chars().count() > 34 {
        s.push('…');
    }
    format!("failed: {s}")
}

/// Everything above the lanes: what ran, when, how it ended.
fn title(run: &Run, given: Option<&str>) -> (String, String) {
    let pid = run.main_pid().map_or(String::new(), |p| format!("pid {p}"));
    let first = given.map_or_else(|| format!("Run of main {pid}"), str::to_string);
    let mut second = format!(
        "{} · {} · {} lines",
        humantime::format_rfc3339_millis(run.start),
        fmt_duration(run.end),
        run.lines.len()
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
    Signals(String),
    Lane(usize),
}

/// Draws the run. `width` is the picture's width in pixels.
pub fn draw(run: &Run, width: f64, given_title: Option<&str>) -> String {
    let width = width.max(500.0);
    let axis = Axis::new(run, LEFT, width - RIGHT);

    // Rows, top to bottom: main's group (a header, its signals, its lanes), then each
    // worker's lane.
    let mut rows: Vec<Row> = Vec::new();
    let main_pids = run.processes.get("main").cloned().unwrap_or_default();
    let pid_list = |pids: &[i64]| pids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
    rows.push(Row::Header(format!(
        "process main · pid {}",
        pid_list(&main_pids)
    )));
    let lane_of = |process: &str| {
        run.components
            .iter()
            .position(|c| c.name == process && c.process == process)
    };
    let main_signals = run
        .signals
        .iter()
        .any(|s| s.process == "main" || lane_of(&s.process).is_none());
    if main_signals {
        rows.push(Row::Signals("main".into()));
    }
    for (i, c) in run.components.iter().enumerate() {
        if c.process == "main" {
            rows.push(Row::Lane(i));
        }
    }
    let mut first_worker = true;
    for (i, c) in run.components.iter().enumerate() {
        if c.process != "main" {
            if first_worker {
                rows.push(Row::Header("worker processes (one each)".into()));
                first_worker = false;
            }
            rows.push(Row::Lane(i));
        }
    }

    // The signals row's labels are stacked on as many levels as they need.
    let mut levels: Vec<Shelf> = Vec::new();
    let mut placed: Vec<(usize, usize)> = Vec::new();
    let main_row: Vec<usize> = run
        .signals
        .iter()
        .enumerate()
        .filter(|(_, s)| s.process == "main" || lane_of(&s.process).is_none())
        .map(|(i, _)| i)
        .collect();
    for &i in &main_row {
        let s = &run.signals[i];
        let x = axis.x(s.t);
        let w = text_width(&signal_label(s), TEXT);
        let (a, b) = if x + 8.0 + w > axis.right() {
            (x - 8.0 - w, x - 4.0)
        } else {
            (x - 4.0, x + 8.0 + w)
        };
        let level = match levels.iter().position(|shelf| shelf.free(a, b)) {
            Some(level) => level,
            None => {
                levels.push(Shelf::default());
                levels.len() - 1
            }
        };
        levels[level].take(a, b);
        placed.push((i, level));
    }
    let signal_row_height = 22.0 + 13.0 * levels.len() as f64;

    let top = 74.0;
    let mut y = top;
    let mut row_y = Vec::new();
    for row in &rows {
        row_y.push(y);
        y += match row {
            Row::Header(_) => 18.0,
            Row::Signals(_) => signal_row_height,
            Row::Lane(_) => LANE,
        };
    }
    let bottom = y + 4.0;
    let axis_y = bottom + 4.0;

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

    let mut doc = Group::new().set("font-family", FONT).set("fill", INK);

    // Title.
    let (first, second) = title(run, given_title);
    doc = doc
        .add(text(12.0, 22.0, 15.0, first).set("font-weight", "bold"))
        .add({
            let t = text(12.0, 40.0, TEXT, second).set("fill", GREY);
            if run.cut() {
                t.set("class", "cut").set("fill", FAILED)
            } else {
                t
            }
        });

    // Zebra background per lane and group separators.
    let mut lanes_bg = Group::new().set("class", "background");
    for (row, &ry) in rows.iter().zip(&row_y) {
        if let Row::Header(_) = row
            && ry > top
        {
            lanes_bg = lanes_bg.add(line(8.0, ry + 2.0, width - 8.0, ry + 2.0, "#bbb"));
        }
    }
    doc = doc.add(lanes_bg);

    // Breaks: the quiet stretches cut short, drawn under the bars.
    let mut breaks = Group::new().set("class", "breaks");
    for p in axis.pieces.iter().filter(|p| p.broken) {
        breaks = breaks.add(
            Rectangle::new()
                .set("x", fmt_px(p.x0 + 4.0))
                .set("y", fmt_px(top))
                .set("width", fmt_px(p.x1 - p.x0 - 8.0))
                .set("height", fmt_px(bottom - top))
                .set("fill", "#f3f3f3")
                .add(Title::new(format!(
                    "{} in which every component that was up was running, cut short",
                    fmt_duration(p.t1 - p.t0)
                ))),
        );
    }
    doc = doc.add(breaks);

    // Rows.
    for (row, &ry) in rows.iter().zip(&row_y) {
        match row {
            Row::Header(label) => {
                doc = doc.add(
                    text(12.0, ry + 14.0, 10.5, label.clone())
                        .set("fill", GREY)
                        .set("font-style", "italic"),
                );
            }
            Row::Signals(process) => {
                doc = doc.add(signals_row(run, &axis, process, ry, &placed, levels.len()));
            }
            Row::Lane(i) => {
                doc = doc.add(lane(run, &run.components[*i], &axis, ry));
            }
        }
    }

    // The exit, or where the log stops.
    doc = doc.add(exit_mark(run, &axis, top, bottom));

    // Break marks over the bars: two slanted strokes at each side of the cut.
    let mut cuts = Group::new();
    for p in axis.pieces.iter().filter(|p| p.broken) {
        for x in [p.x0 + 4.0, p.x1 - 4.0] {
            cuts = cuts.add(
                line(x - 3.0, bottom + 6.0, x + 3.0, top - 4.0, "#999")
                    .set("stroke-width", 1.2)
                    .set("stroke-dasharray", "4 3"),
            );
        }
    }
    doc = doc.add(cuts);

    let (axis_group, axis_bottom) = axis_row(&axis, axis_y);
    doc = doc.add(axis_group);
    let (legend, legend_bottom) = legend(width, axis_bottom + 10.0);
    doc = doc.add(legend);

    let height = legend_bottom + 8.0;
    let document = Document::new()
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
        .add(doc);
    let mut out = String::new();
    let _ = writeln!(out, "{document}");
    out
}

fn signals_row(
    run: &Run,
    axis: &Axis,
    process: &str,
    y: f64,
    placed: &[(usize, usize)],
    levels: usize,
) -> Group {
    let mark_y = y + 6.0 + 13.0 * levels as f64;
    let mut g = Group::new()
        .set("class", "signals")
        .set("data-process", process.to_string());
    g = g.add(
        text(LEFT - 10.0, mark_y + 8.0, TEXT, "signals")
            .set("text-anchor", "end")
            .set("fill", GREY),
    );
    // Arrows from each delayed signal to its delivery.
    let mut pending: Option<f64> = None;
    for s in &run.signals {
        if s.process != process {
            continue;
        }
        if s.action == "delayed" && pending.is_none() {
            pending = Some(axis.x(s.t));
        } else if s.action == "delivered"
            && let Some(from) = pending.take()
        {
            let to = axis.x(s.t);
            let mid = (from + to) / 2.0;
            let lift = ((to - from) / 4.0).clamp(4.0, 14.0);
            let data = Data::new()
                .move_to((from + 4.0, mark_y + 10.0))
                .quadratic_curve_to((mid, mark_y + 10.0 + lift, to - 2.0, mark_y + 10.0));
            g = g.add(
                Path::new()
                    .set("class", "delivery")
                    .set("d", data)
                    .set("fill", "none")
                    .set("stroke", action_colour("delayed"))
                    .set("stroke-width", 1.5)
                    .set("marker-end", "url(#arrow)"),
            );
        }
    }
    for &(i, level) in placed {
        let s = &run.signals[i];
        let x = axis.x(s.t);
        let label = signal_label(s);
        let colour = action_colour(&s.action);
        let w = text_width(&label, TEXT);
        let baseline = y + 12.0 + 13.0 * level as f64;
        let mut mark = Group::new()
            .set("class", "signal")
            .set("data-signal", s.signal.clone())
            .set("data-action", s.action.clone())
            .set("data-process", s.process.clone())
            .set("data-t", format!("{:.3}", s.t))
            .add(Title::new(format!("{} · {}", fmt_time(s.t, 1.0), s.message)));
        mark = if s.action == "delivered" {
            mark.add(
                Circle::new()
                    .set("cx", fmt_px(x))
                    .set("cy", fmt_px(mark_y + 6.0))
                    .set("r", 4)
                    .set("fill", "white")
                    .set("stroke", colour)
                    .set("stroke-width", 2),
            )
        } else {
            mark.add(triangle(x, mark_y, 11.0, colour))
        };
        // A leader from the label down to its mark.
        mark = mark.add(line(x, baseline + 2.0, x, mark_y, colour).set("stroke-width", 0.8));
        let label_text = if x + 8.0 + w > axis.right() {
            text(x - 6.0, baseline, TEXT, label).set("text-anchor", "end")
        } else {
            text(x + 6.0, baseline, TEXT, label)
        };
        mark = mark.add(halo(label_text.set("fill", colour).set("font-weight", "bold")));
        g = g.add(mark);
    }
    g
}

fn lane(run: &Run, c: &Component, axis: &Axis, y: f64) -> Group {
    let pids: Vec<String> = c
        .incarnations
        .iter()
        .filter_map(|i| i.pid)
        .map(|p| p.to_string())
        .collect();
    let mut g = Group::new()
        .set("class", "lane")
        .set("data-component", c.name.clone())
        .set("data-process", c.process.clone());
    let bar_y = y + BAR_TOP;
    let mid = bar_y + BAR / 2.0;
    if c.process == "main" {
        g = g.add(text(LEFT - 10.0, mid + 4.0, 12.0, c.name.clone()).set("text-anchor", "end"));
    } else {
        g = g.add(
            text(LEFT - 10.0, mid + 1.0, 12.0, c.name.clone())
                .set("text-anchor", "end")
                .set("font-weight", "bold"),
        );
        let arrow = if pids.len() > 1 { " → " } else { ", " };
        g = g.add(
            text(LEFT - 10.0, mid + 11.0, 9.0, format!("pid {}", pids.join(arrow)))
                .set("text-anchor", "end")
                .set("fill", GREY),
        );
    }
    let mut shelf = Shelf::default();
    let mut labels = Group::new();
    let mut pid_labels = Vec::new();
    for (n, inc) in c.incarnations.iter().enumerate() {
        if let (Some(spawned), Some(first)) = (inc.spawned, inc.segments.first()) {
            let (a, b) = (axis.x(spawned), axis.x(first.t0));
            g = g
                .add(line(a, mid, b, mid, GREY).set("stroke-width", 1.5))
                .add(line(a, bar_y + 2.0, a, bar_y + BAR - 2.0, GREY).set("stroke-width", 1.5));
        }
        for s in &inc.segments {
            let x0 = axis.x(s.t0);
            let x1 = axis.x(s.t1).max(x0 + 2.0).min(axis.right());
            let x0 = x0.min(x1 - 2.0);
            let mut bar = Rectangle::new()
                .set("class", "bar")
                .set("data-component", c.name.clone())
                .set("data-phase", s.phase.name())
                .set("data-t0", format!("{:.3}", s.t0))
                .set("data-t1", format!("{:.3}", s.t1))
                .set("data-failed", s.failed)
                .set("data-open", s.open)
                .set("data-incarnation", n)
                .set("x", fmt_px(x0))
                .set("y", fmt_px(bar_y))
                .set("width", fmt_px(x1 - x0))
                .set("height", BAR)
                .set("fill", phase_colour(s.phase))
                .add(Title::new(format!(
                    "{} {}{}: {} to {} ({})",
                    c.name,
                    s.phase.name(),
                    inc.pid.map_or(String::new(), |p| format!(" (pid {p})")),
                    fmt_time(s.t0, 1.0),
                    fmt_time(s.t1, 1.0),
                    fmt_duration(s.t1 - s.t0)
                )));
            if let Some(pid) = inc.pid.filter(|_| c.process != "main") {
                bar = bar.set("data-pid", pid);
            }
            bar = if s.failed {
                bar.set("stroke", FAILED).set("stroke-width", 2)
            } else if s.open {
                bar.set("stroke", GREY).set("stroke-dasharray", "3 2")
            } else {
                bar.set("stroke", "#888").set("stroke-width", 0.5)
            };
            g = g.add(bar);
            // A replaced worker's incarnations are told apart by pid, written on the bar.
            if s.phase == Phase::Running && c.process != "main" && c.incarnations.len() > 1 {
                if let Some(pid) = inc.pid {
                    pid_labels.push((x0, x1, format!("pid {pid}")));
                }
            }
        }
    }
    // Work done while running (MPM's updates): a strip along the bottom of the bar.
    for a in &c.activities {
        let x0 = axis.x(a.t0);
        let x1 = axis.x(a.t1).max(x0 + 2.0);
        let colour = if a.failed { FAILED } else { "#31a354" };
        g = g.add(
            Rectangle::new()
                .set("class", "activity")
                .set("data-name", a.name.clone())
                .set("x", fmt_px(x0))
                .set("y", fmt_px(bar_y + BAR - 1.0))
                .set("width", fmt_px(x1 - x0))
                .set("height", 4)
                .set("fill", colour)
                .add(Title::new(format!(
                    "{} {}: {} to {} ({})",
                    c.name,
                    a.name,
                    fmt_time(a.t0, 1.0),
                    fmt_time(a.t1, 1.0),
                    fmt_duration(a.t1 - a.t0)
                ))),
        );
        let w = text_width(&a.name, 9.5);
        if shelf.take(x0 + 3.0, x0 + 3.0 + w) {
            labels = labels.add(halo(
                text(x0 + 3.0, mid + 2.5, 9.5, a.name.clone()).set("fill", colour),
            ));
        }
    }
    // Marks: failures, restarts, cut lines, dropped lines; failures drawn last, on top.
    let mut on_top = Group::new();
    for m in &c.marks {
        let x = axis.x(m.t);
        let (label, colour) = match &m.kind {
            MarkKind::Failed(cause) => {
                on_top = on_top.add(
                    Group::new()
                        .set("class", "failure")
                        .add(Title::new(m.message.clone()))
                        .add(cross(x, mid, 5.0)),
                );
                (short_cause(cause), FAILED)
            }
            MarkKind::Restarting(n) => {
                g = g.add(
                    Group::new()
                        .set("class", "restart")
                        .add(Title::new(m.message.clone()))
                        .add(
                            Circle::new()
                                .set("cx", fmt_px(x))
                                .set("cy", fmt_px(mid))
                                .set("r", 4.5)
                                .set("fill", "#1f77b4")
                                .set("stroke", "white"),
                        ),
                );
                (format!("restart {n}"), "#1f77b4")
            }
            MarkKind::Truncated => {
                g = g.add(cross(x, mid, 3.0).set("stroke", "#8c564b"));
                ("line cut".into(), "#8c564b")
            }
            MarkKind::Dropped(n) => {
                g = g.add(cross(x, mid, 3.0).set("stroke", "#8c564b"));
                (format!("{n} lines dropped"), "#8c564b")
            }
        };
        let w = text_width(&label, 10.0);
        let right = (x + 8.0, x + 8.0 + w);
        let left = (x - 8.0 - w, x - 8.0);
        let right_fits = right.1 <= axis.right() + RIGHT;
        let left_fits = left.0 >= LEFT;
        // A failure ends a bar: its label sits over that bar, left of the mark.
        let sides = if matches!(m.kind, MarkKind::Failed(_)) {
            [(left, left_fits, true), (right, right_fits, false)]
        } else {
            [(right, right_fits, false), (left, left_fits, true)]
        };
        for ((a, b), fits, on_left) in sides {
            if fits && shelf.take(a, b) {
                let t = text(if on_left { b } else { a }, mid + 4.0, 10.0, label.clone());
                let t = if on_left { t.set("text-anchor", "end") } else { t };
                labels = labels.add(halo(t.set("fill", colour)));
                break;
            }
        }
    }
    g = g.add(on_top);
    for (x0, x1, label) in pid_labels {
        let w = text_width(&label, 9.5);
        if x1 - x0 > w + 10.0 && shelf.take(x0 + 4.0, x0 + 4.0 + w) {
            labels = labels.add(text(x0 + 5.0, mid + 3.5, 9.5, label).set("fill", "#2c662c"));
        }
    }
    // Signals a worker received (a Ctrl+C reaches the whole process group).
    for s in run.signals.iter().filter(|s| s.process == c.name) {
        let x = axis.x(s.t);
        let colour = action_colour(&s.action);
        let label = signal_label(s);
        let mut mark = Group::new()
            .set("class", "signal")
            .set("data-signal", s.signal.clone())
            .set("data-action", s.action.clone())
            .set("data-process", s.process.clone())
            .set("data-t", format!("{:.3}", s.t))
            .add(Title::new(format!("{} · {}", fmt_time(s.t, 1.0), s.message)))
            .add(triangle(x, y + 0.5, 8.0, colour));
        let w = text_width(&label, 9.5);
        if shelf.take(x + 6.0, x + 6.0 + w) {
            mark = mark.add(halo(text(x + 6.0, y + 8.0, 9.5, label).set("fill", colour)));
        }
        g = g.add(mark);
    }
    g.add(labels)
}

fn exit_mark(run: &Run, axis: &Axis, top: f64, bottom: f64) -> Group {
    match &run.exit {
        Some(exit) => {
            let x = axis.x(exit.t);
            let bad = run.forced || (exit.status != 0 && exit.signal.is_none());
            let colour = if bad { FAILED } else { INK };
            let mut label = match &exit.signal {
                Some(signal) => format!("exit status {} (ends by {signal})", exit.status),
                None => format!("exit status {}", exit.status),
            };
            if run.forced {
                label = format!("forced · {label}");
            }
            let w = text_width(&label, 12.0);
            let (tx, anchor) = if x + w / 2.0 > axis.right() + RIGHT - 4.0 {
                (x + 4.0, "end")
            } else {
                (x, "middle")
            };
            Group::new()
                .set("class", "exit")
                .set("data-status", exit.status)
                .set("data-forced", run.forced)
                .add(Title::new(exit.message.clone()))
                .add(
                    line(x, top - 8.0, x, bottom, colour)
                        .set("stroke-width", 2)
                        .set("stroke-dasharray", "5 3"),
                )
                .add(
                    text(tx, top - 12.0, 12.0, label)
                        .set("text-anchor", anchor)
                        .set("font-weight", "bold")
                        .set("fill", colour),
                )
        }
        None => {
            let x = axis.x(run.end);
            Group::new()
                .set("class", "cut-end")
                .add(
                    line(x, top - 8.0, x, bottom, FAILED)
                        .set("stroke-width", 1.5)
                        .set("stroke-dasharray", "2 3"),
                )
                .add(
                    text(x, top - 12.0, 12.0, "log cut here: no exit event")
                        .set("text-anchor", "end")
                        .set("font-weight", "bold")
                        .set("fill", FAILED),
                )
        }
    }
}

fn axis_row(axis: &Axis, y: f64) -> (Group, f64) {
    let mut g = Group::new()
        .set("class", "axis")
        .set("data-x0", fmt_px(axis.left()))
        .set("data-x1", fmt_px(axis.right()));
    let mut shelf = Shelf::default();
    let mut labels = Group::new();
    // Each piece drawn to scale gets its own line; the breaks say how much they hide.
    for p in &axis.pieces {
        if p.broken {
            let label = fmt_duration(p.t1 - p.t0);
            let c = (p.x0 + p.x1) / 2.0;
            let w = text_width(&label, 10.0);
            shelf.taken.push((c - w / 2.0, c + w / 2.0));
            labels = labels.add(
                text(c, y + 26.0, 10.0, label)
                    .set("text-anchor", "middle")
                    .set("fill", GREY)
                    .set("font-style", "italic"),
            );
        } else {
            g = g.add(line(p.x0, y, p.x1, y, INK));
        }
    }
    let step = [1.0, 2.0, 5.0]
        .iter()
        .flat_map(|m| (-1..7).map(move |e| m * 10f64.powi(e)))
        .filter(|step| step * axis.scale >= 80.0)
        .fold(f64::INFINITY, f64::min);
    let step = if step.is_finite() { step } else { 1e6 };
    for (n, p) in axis.pieces.iter().enumerate() {
        if p.broken {
            continue;
        }
        // A piece after a break starts with its own time, so that its ticks can be read.
        if n > 0 {
            let label = fmt_time(p.t0, step.min(10.0));
            let w = text_width(&label, 10.0);
            if shelf.take(p.x0, p.x0 + w) {
                g = g.add(line(p.x0, y, p.x0, y + 5.0, INK));
                labels = labels.add(text(p.x0, y + 15.0, 10.0, label));
            }
        }
        let mut t = (p.t0 / step).ceil() * step;
        while t <= p.t1 + 1e-9 {
            let x = axis.x(t);
            let label = fmt_time(t, step);
            let w = text_width(&label, 10.0);
            g = g.add(line(x, y, x, y + 5.0, INK));
            if shelf.take(x - w / 2.0, x + w / 2.0) {
                labels = labels.add(text(x, y + 15.0, 10.0, label).set("text-anchor", "middle"));
            }
            t += step;
        }
    }
    g = g.add(
        text(LEFT - 24.0, y + 15.0, 10.0, "since the first line")
            .set("text-anchor", "end")
            .set("fill", GREY),
    );
    (g.add(labels), y + 30.0)
}

fn legend(width: f64, y: f64) -> (Group, f64) {
    let mut g = Group::new().set("class", "legend");
    let mut x = 12.0;
    let mut y = y;
    let item = |g: Group, symbol: Group, label: &str, x: &mut f64, y: &mut f64| -> Group {
        let w = 18.0 + text_width(label, 10.0) * 0.9 + 14.0;
        if *x + w > width - 8.0 {
            *x = 12.0;
            *y += 16.0;
        }
        let symbol = symbol.set("transform", format!("translate({},{})", fmt_px(*x), fmt_px(*y)));
        let g = g
            .add(symbol)
            .add(text(*x + 18.0, *y + 4.0, 10.0, label.to_string()).set("fill", GREY));
        *x += w;
        g
    };
    for phase in [Phase::Starting, Phase::Running, Phase::Stopping] {
        let swatch = Group::new().add(
            Rectangle::new()
                .set("x", 0)
                .set("y", -5)
                .set("width", 14)
                .set("height", 10)
                .set("fill", phase_colour(phase))
                .set("stroke", "#888")
                .set("stroke-width", 0.5),
        );
        g = item(g, swatch, phase.name(), &mut x, &mut y);
    }
    g = item(
        g,
        Group::new().add(cross(7.0, 0.0, 4.5)),
        "failed / died",
        &mut x,
        &mut y,
    );
    g = item(
        g,
        Group::new().add(
            Circle::new()
                .set("cx", 7)
                .set("cy", 0)
                .set("r", 4.5)
                .set("fill", "#1f77b4"),
        ),
        "restart",
        &mut x,
        &mut y,
    );
    g = item(
        g,
        Group::new().add(
            Rectangle::new()
                .set("x", 0)
                .set("y", -2)
                .set("width", 14)
                .set("height", 4)
                .set("fill", "#31a354"),
        ),
        "update",
        &mut x,
        &mut y,
    );
    for action in ["delayed", "shutdown", "counted", "forced", "ignored"] {
        let symbol = Group::new().add(triangle(7.0, -5.0, 10.0, action_colour(action)));
        g = item(g, symbol, &format!("signal {action}"), &mut x, &mut y);
    }
    (g, y + 8.0)
}

//! The picture's vocabulary: colours, the marks' shapes, how times read, and the legend
//! that explains them. Kept apart so that the lanes, the stop panel and the legend draw the
//! same thing the same way.

use svg::node::element::path::Data;
use svg::node::element::{Circle, Group, Path, Polygon, Rectangle, Title};

use strips::style::GREY;

use super::labels::{Label, Placer, fmt_px};
use crate::model::{Phase, Signal};

pub const STARTING: &str = "#9ecae1";
pub const RUNNING: &str = "#c7e9c0";
pub const STOPPING: &str = "#fdbe85";
/// The stop's ink, for what points to it: a darker shade of its bars.
pub const STOP_INK: &str = "#d94801";
pub const FAILED: &str = "#d62728";
pub const RESTART: &str = "#1f77b4";
pub const UPDATE: &str = "#31a354";
pub const CUT: &str = "#8c564b";

pub fn phase_colour(phase: Phase) -> &'static str {
    match phase {
        Phase::Starting => STARTING,
        Phase::Running => RUNNING,
        Phase::Stopping => STOPPING,
    }
}

pub fn action_colour(action: &str) -> &'static str {
    match action {
        "delayed" | "delivered" => "#d99a00",
        "shutdown" => "#6a3d9a",
        "counted" => "#9e7fc4",
        "forced" => "#a50f15",
        _ => "#8c8c8c",
    }
}

/// Seconds since the start, with as many decimals as `step` (in ms) needs.
pub fn fmt_time(ms: f64, step: f64) -> String {
    let decimals = if step >= 1000.0 {
        0
    } else {
        (3.0 - step.log10().floor()).clamp(0.0, 3.0) as usize
    };
    format!("{:.*} s", decimals, ms / 1000.0)
}

/// A duration in the units that read best; below 10 ms, to a tenth.
pub fn fmt_duration(ms: f64) -> String {
    if ms >= 10_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.0} ms")
    } else {
        // Logs stamp milliseconds: "1 ms", not "1.0 ms".
        let s = format!("{ms:.1}");
        format!("{} ms", s.trim_end_matches(".0"))
    }
}

pub fn signal_label(s: &Signal) -> String {
    match (s.action.as_str(), s.count) {
        ("delivered", _) => format!("delayed {} delivered", s.signal),
        ("counted" | "forced", Some(n)) => format!("{} {} #{n}", s.signal, s.action),
        (action, _) => format!("{} {action}", s.signal),
    }
}

/// The short form of a failure's cause for a label: its last clause.
pub fn short_cause(cause: &str) -> String {
    let last = cause.rsplit(": ").next().unwrap_or(cause);
    let last = last.split(" (").next().unwrap_or(last);
    let mut s: String = last.chars().take(34).collect();
    if last.chars().count() > 34 {
        s.push('…');
    }
    format!("failed: {s}")
}

pub use strips::draw::line;

/// A signal's mark, before its shape: what it was and did, for tools and the tooltip.
pub fn signal_mark(s: &Signal) -> Group {
    Group::new()
        .set("class", "signal")
        .set("data-signal", s.signal.clone())
        .set("data-action", s.action.clone())
        .set("data-process", s.process.clone())
        .set("data-t", format!("{:.3}", s.t))
        .add(Title::new(format!("{} · {}", fmt_time(s.t, 1.0), s.message)))
}

pub fn triangle(x: f64, y: f64, size: f64, colour: &str) -> Polygon {
    let w = size * 0.65;
    let points = format!(
        "{},{} {},{} {},{}",
        fmt_px(x - w),
        fmt_px(y),
        fmt_px(x + w),
        fmt_px(y),
        fmt_px(x),
        fmt_px(y + size)
    );
    Polygon::new()
        .set("points", points)
        .set("fill", colour)
        .set("stroke", "white")
        .set("stroke-width", 0.8)
}

pub fn cross(x: f64, y: f64, r: f64) -> Path {
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

pub fn dot(x: f64, y: f64, colour: &str) -> Circle {
    Circle::new()
        .set("cx", fmt_px(x))
        .set("cy", fmt_px(y))
        .set("r", 4.5)
        .set("fill", colour)
        .set("stroke", "white")
}

fn swatch(colour: &str, height: f64) -> Group {
    Group::new().add(
        Rectangle::new()
            .set("x", 0)
            .set("y", -height / 2.0)
            .set("width", 14)
            .set("height", height)
            .set("fill", colour)
            .set("stroke", "#888")
            .set("stroke-width", 0.5),
    )
}

/// The legend, wrapped to `width`; returns it and where it ends.
pub fn legend(width: f64, y: f64, placer: &mut Placer) -> (Group, f64) {
    let mut items: Vec<(Group, String)> = Vec::new();
    for phase in [Phase::Starting, Phase::Running, Phase::Stopping] {
        items.push((swatch(phase_colour(phase), 10.0), phase.name().into()));
    }
    items.push((Group::new().add(cross(7.0, 0.0, 4.5)), "failed / died".into()));
    items.push((Group::new().add(dot(7.0, 0.0, RESTART)), "restart".into()));
    items.push((swatch(UPDATE, 4.0), "update".into()));
    for action in ["delayed", "shutdown", "counted", "forced", "ignored"] {
        let symbol = Group::new().add(triangle(7.0, -5.0, 10.0, action_colour(action)));
        items.push((symbol, format!("signal {action}")));
    }
    let mut g = Group::new().set("class", "legend");
    let (mut x, mut y) = (12.0, y);
    for (symbol, label) in items {
        let text = Label::new(0.0, 0.0, 10.0, label);
        let w = 18.0 + text.width() + 14.0;
        if x + w > width - 8.0 {
            x = 12.0;
            y += 16.0;
        }
        let symbol = symbol.set("transform", format!("translate({},{})", fmt_px(x), fmt_px(y)));
        let text = placer.fixed(Label {
            x: x + 18.0,
            y: y + 4.0,
            ..text
        });
        g = g.add(symbol).add(text.to_text().set("fill", GREY));
        x += w;
    }
    (g, y + 8.0)
}

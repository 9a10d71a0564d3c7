//! One component's lane in the main panel: its phases as bars (one run of bars per
//! incarnation), MPM's updates under the bar, deaths, restarts and cut lines as marks, and
//! the signals its own process received. Labels go through the placer; a restart that
//! follows a death within a few pixels is drawn beside the cross, not under it.

use svg::node::element::{Group, Rectangle, Title};

use strips::style::GREY;

use super::axis::Axis;
use super::labels::{Anchor, Label, Placer, fmt_px, halo};
use super::shapes::{
    CUT, FAILED, RESTART, UPDATE, action_colour, cross, dot, fmt_duration, fmt_time, line, phase_colour,
    short_cause, signal_label, signal_mark, triangle,
};
use crate::model::{Component, MarkKind, Phase};

pub const LANE: f64 = 26.0;
const BAR_TOP: f64 = 7.0;
const BAR: f64 = 12.0;
/// Half the width of a death's cross, and the radius of a restart's dot.
const CROSS: f64 = 5.0;
const DOT: f64 = 4.5;

/// The lane's name at the left, in the column that ends at `left`.
fn names(c: &Component, left: f64, mid: f64, placer: &mut Placer) -> Group {
    let mut g = Group::new();
    let x = left - 10.0;
    if c.process == "main" {
        let name = Label::new(x, mid + 4.0, 12.0, c.name.clone()).anchor(Anchor::End);
        return g.add(placer.fixed(name).to_text());
    }
    let name = Label::new(x, mid + 1.0, 12.0, c.name.clone())
        .anchor(Anchor::End)
        .bold();
    g = g.add(placer.fixed(name).to_text());
    let pids: Vec<String> = c
        .incarnations
        .iter()
        .filter_map(|i| i.pid)
        .map(|p| p.to_string())
        .collect();
    // Many incarnations: the first and the last say enough, the count says the rest.
    let pids = match pids.as_slice() {
        [] => return g,
        [one] => format!("pid {one}"),
        [a, b] => format!("pid {a} → {b}"),
        [a, .., b] => format!("pid {a} → … → {b} ({})", pids.len()),
    };
    let pids = Label::new(x, mid + 11.0, 9.0, pids).anchor(Anchor::End);
    g.add(placer.fixed(pids).to_text().set("fill", GREY))
}

pub fn lane(c: &Component, axis: &Axis, y: f64, placer: &mut Placer) -> Group {
    let mut g = Group::new()
        .set("class", "lane")
        .set("data-component", c.name.clone())
        .set("data-process", c.process.clone());
    let bar_y = y + BAR_TOP;
    let mid = bar_y + BAR / 2.0;
    g = g.add(names(c, axis.left(), mid, placer));
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
            let tip = format!(
                "{} {}{}: {} to {} ({})",
                c.name,
                s.phase.name(),
                inc.pid.map_or(String::new(), |p| format!(" (pid {p})")),
                fmt_time(s.t0, 1.0),
                fmt_time(s.t1, 1.0),
                fmt_duration(s.t1 - s.t0)
            );
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
                .add(Title::new(tip));
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
            if s.phase == Phase::Running
                && c.process != "main"
                && c.incarnations.len() > 1
                && let Some(pid) = inc.pid
            {
                pid_labels.push((x0, x1, format!("pid {pid}")));
            }
        }
    }
    // Work done while running (MPM's updates): a strip along the bottom of the bar.
    for a in &c.activities {
        let x0 = axis.x(a.t0);
        let x1 = axis.x(a.t1).max(x0 + 2.0);
        let colour = if a.failed { FAILED } else { UPDATE };
        let tip = format!(
            "{} {}: {} to {} ({})",
            c.name,
            a.name,
            fmt_time(a.t0, 1.0),
            fmt_time(a.t1, 1.0),
            fmt_duration(a.t1 - a.t0)
        );
        g = g.add(
            Rectangle::new()
                .set("class", "activity")
                .set("data-name", a.name.clone())
                .set("x", fmt_px(x0))
                .set("y", fmt_px(bar_y + BAR - 1.0))
                .set("width", fmt_px(x1 - x0))
                .set("height", 4)
                .set("fill", colour)
                .add(Title::new(tip)),
        );
        if let Some(l) = placer.place([Label::new(x0 + 3.0, mid + 2.5, 9.5, a.name.clone())]) {
            labels = labels.add(halo(l.to_text().set("fill", colour)));
        }
    }
    // Marks: deaths first (their crosses decide where a restart's dot can go), drawn last.
    let deaths: Vec<f64> = c
        .marks
        .iter()
        .filter(|m| matches!(m.kind, MarkKind::Failed(_)))
        .map(|m| axis.x(m.t))
        .collect();
    let mut on_top = Group::new();
    for m in &c.marks {
        let mut x = axis.x(m.t);
        let (label, colour) = match &m.kind {
            MarkKind::Failed(cause) => {
                on_top = on_top.add(
                    Group::new()
                        .set("class", "failure")
                        .set("data-x", fmt_px(x))
                        .add(Title::new(m.message.clone()))
                        .add(cross(x, mid, CROSS)),
                );
                (short_cause(cause), FAILED)
            }
            MarkKind::Restarting(n) => {
                // A restart follows its death by a few ms: side by side, the dot after it.
                let near = deaths.iter().filter(|&&d| (d - x).abs() < CROSS + DOT + 2.0);
                if let Some(d) = near.max_by(|a, b| a.total_cmp(b)) {
                    let to = d + CROSS + DOT + 2.0;
                    g = g.add(line(x, mid, to, mid, RESTART).set("stroke-width", 1.2));
                    x = to;
                }
                g = g.add(
                    Group::new()
                        .set("class", "restart")
                        .add(Title::new(m.message.clone()))
                        .add(dot(x, mid, RESTART)),
                );
                (format!("restart {n}"), RESTART)
            }
            MarkKind::Truncated => {
                g = g.add(cross(x, mid, 3.0).set("stroke", CUT));
                ("line cut".into(), CUT)
            }
            MarkKind::Dropped(n) => {
                g = g.add(cross(x, mid, 3.0).set("stroke", CUT));
                (format!("{n} lines dropped"), CUT)
            }
        };
        let baseline = mid + 4.5;
        let right = Label::new(x + 8.0, baseline, 10.0, label.clone());
        let left = Label::new(x - 8.0, baseline, 10.0, label).anchor(Anchor::End);
        // A failure ends a bar: its label sits over that bar, left of the mark.
        let sides = match m.kind {
            MarkKind::Failed(_) => [left, right],
            _ => [right, left],
        };
        if let Some(l) = placer.place(sides) {
            labels = labels.add(halo(l.to_text().set("fill", colour)));
        }
    }
    g = g.add(on_top);
    for (x0, x1, label) in pid_labels {
        let l = Label::new(x0 + 5.0, mid + 3.5, 9.5, label);
        if x1 - x0 > l.width() + 10.0
            && let Some(l) = placer.place([l])
        {
            labels = labels.add(l.to_text().set("fill", "#2c662c"));
        }
    }
    // Signals its own process received (a Ctrl+C reaches the whole process group).
    for s in &c.signals {
        let x = axis.x(s.t);
        let colour = action_colour(&s.action);
        let mut mark = signal_mark(s).add(triangle(x, y + 0.5, 8.0, colour));
        let right = Label::new(x + 6.0, y + 6.8, 9.0, signal_label(s));
        let left = right.clone().anchor(Anchor::End);
        let left = Label { x: x - 6.0, ..left };
        if let Some(l) = placer.place([right, left]) {
            mark = mark.add(halo(l.to_text().set("fill", colour)));
        }
        g = g.add(mark);
    }
    g.add(labels)
}

//! The stop, step by step: a panel under the timeline from app's `stopping` to the exit.
//!
//! On the time axis the stop of MPM, its workers and the pool takes a few milliseconds at
//! the end of a stop that lasts hundreds: slivers thinner than a pixel, in which the lesson
//! (the reverse of the start order) cannot be seen. No linear zoom fixes that, since the
//! stop's own steps range from 0.1 ms to seconds. So the panel drops the scale: each
//! lifecycle line of the stop (a `stopping`, a `stopped`, a death, the exit) gets a column of
//! its own, in the order the lines were written, and each component's stop is a bar between
//! its two columns. The nesting of the bars is the stop order; the times are written under
//! the columns. With more lines than the width can hold, neighbours share a column.

use std::fmt::Write as _;

use svg::node::Blob;
use svg::node::element::{Group, Rectangle, Title};

use strips::style::{GREY, INK};

use super::labels::{Anchor, Label, Placer, Rect, fmt_px};
use super::shapes::{FAILED, STOPPING, cross, fmt_duration, fmt_time, line};
use crate::model::{Phase, Run};

const ROW: f64 = 18.0;
const BAR: f64 = 10.0;
/// The narrowest a column may be.
const COLUMN: f64 = 12.0;

/// One line of the stop: where it goes and what it ends.
struct Step {
    t: f64,
    n: usize,
}

/// A component's stop in the panel: the steps it begins and ends at.
struct Bar {
    row: usize,
    from: Option<usize>,
    to: usize,
    failed: bool,
    open: bool,
    t0: f64,
    t1: f64,
}

/// The panel at `y`, between `left` and `right`; None when the run has no stop.
pub fn panel(run: &Run, y: f64, left: f64, right: f64, placer: &mut Placer) -> Option<(Group, f64)> {
    let (first, begin) = run.stop_begins()?;
    let end = run.exit.as_ref().map_or(run.end, |e| e.t);
    let mut steps: Vec<Step> = Vec::new();
    let mut bars: Vec<Bar> = Vec::new();
    let mut rows: Vec<&str> = Vec::new();
    for c in &run.components {
        let row = rows.len();
        let mut any = false;
        for s in c.incarnations.iter().flat_map(|i| &i.segments) {
            let stop = s.phase == Phase::Stopping && s.t0 >= begin;
            // A death during the stop, outside a stopping phase, is a step too.
            let died = s.failed && s.t1 >= begin;
            if !stop && !died {
                continue;
            }
            let from = stop.then(|| {
                steps.push(Step { t: s.t0, n: s.n0 });
                steps.len() - 1
            });
            steps.push(Step { t: s.t1, n: s.n1 });
            let (t0, t1) = (s.t0, s.t1);
            let to = steps.len() - 1;
            bars.push(Bar {
                row,
                from,
                to,
                failed: s.failed,
                open: s.open,
                t0,
                t1,
            });
            any = true;
        }
        if any {
            rows.push(&c.name);
        }
    }
    if bars.is_empty() {
        return None;
    }
    // Rows in the order their stop began, so that reading down is reading the stop.
    // Bars come row by row, so a row's first bar is the first seen with its number.
    let mut first_step = vec![(f64::INFINITY, usize::MAX); rows.len()];
    for b in bars.iter().rev() {
        let s = &steps[b.from.unwrap_or(b.to)];
        first_step[b.row] = (s.t, s.n);
    }
    let mut by_stop: Vec<usize> = (0..rows.len()).collect();
    by_stop.sort_by(|&a, &b| {
        let ((ta, na), (tb, nb)) = (first_step[a], first_step[b]);
        ta.total_cmp(&tb).then(na.cmp(&nb))
    });
    let mut place = vec![0; rows.len()];
    for (at, &row) in by_stop.iter().enumerate() {
        place[row] = at;
    }
    let rows: Vec<&str> = by_stop.iter().map(|&r| rows[r]).collect();
    for b in &mut bars {
        b.row = place[b.row];
    }
    let exit = run.exit.as_ref().map(|e| {
        steps.push(Step {
            t: e.t,
            n: usize::MAX,
        });
        steps.len() - 1
    });
    // Columns in the order the lines were written; neighbours share one if there are many.
    let mut order: Vec<usize> = (0..steps.len()).collect();
    order.sort_by(|&a, &b| {
        steps[a]
            .t
            .total_cmp(&steps[b].t)
            .then(steps[a].n.cmp(&steps[b].n))
    });
    let width = right - left;
    let per = steps.len().div_ceil(((width / COLUMN).floor() as usize).max(1));
    let columns = steps.len().div_ceil(per);
    let mut column = vec![0; steps.len()];
    for (rank, &step) in order.iter().enumerate() {
        column[step] = rank / per;
    }
    let step_w = width / columns as f64;
    let x = |step: usize| left + (column[step] as f64 + 0.5) * step_w;

    let mut g = Group::new()
        .set("class", "stop")
        .set("data-begin", format!("{begin:.3}"))
        .set("data-end", format!("{end:.3}"));
    let head = Label::new(12.0, y + 16.0, 12.0, "The stop, step by step").bold();
    g = g.add(placer.fixed(head).to_text());
    let sub = format!(
        "from {first}: stopping ({}) to the {} ({}): one column per lifecycle line, in order, \
         not to scale",
        fmt_time(begin, 1.0),
        if exit.is_some() { "exit" } else { "log's end" },
        fmt_time(end, 1.0)
    );
    g = g.add(
        placer
            .fixed(Label::new(12.0, y + 30.0, 10.0, sub))
            .to_text()
            .set("fill", GREY),
    );
    let top = y + 50.0;
    let bottom = top + ROW * rows.len() as f64;

    // Faint column lines, so that the eye can follow a step across the rows.
    let mut grid = Group::new().set("stroke-width", 0.6);
    for c in 0..columns {
        let cx = left + (c as f64 + 0.5) * step_w;
        grid = grid.add(line(cx, top, cx, bottom, "#e4e4e4"));
    }
    g = g.add(grid);
    for (row, name) in rows.iter().enumerate() {
        let mid = top + ROW * row as f64 + ROW / 2.0;
        let label = Label::new(left - 10.0, mid + 4.0, 11.0, name.to_string()).anchor(Anchor::End);
        g = g.add(placer.fixed(label).to_text());
    }
    // The exit's line is drawn after the bars: no label may sit on it.
    if let Some(step) = exit {
        let ex = x(step);
        placer.take(Rect {
            x0: ex - 2.0,
            y0: top,
            x1: ex + 2.0,
            y1: bottom,
        });
    }
    // Bars and their labels go straight to markup: a row per lane, and lanes can be many.
    // The bars are taken first, so that no duration is written over a bar (stops of a
    // replaced worker, or of a log of several runs, share a row).
    let mut markup = String::new();
    let mut took = Vec::new();
    for b in &bars {
        let mid = top + ROW * b.row as f64 + ROW / 2.0;
        let x1 = x(b.to);
        let x0 = b.from.map_or(x1, x);
        let (x0, x1) = (x0 - 2.0, x1 + 2.0);
        let mut rect = Rectangle::new()
            .set("class", "stop-bar")
            .set("data-component", rows[b.row])
            .set("data-step0", b.from.map_or(column[b.to], |s| column[s]))
            .set("data-step1", column[b.to])
            .set("data-failed", b.failed)
            .set("x", fmt_px(x0))
            .set("y", fmt_px(mid - BAR / 2.0))
            .set("width", fmt_px(x1 - x0))
            .set("height", BAR)
            .set("fill", STOPPING)
            .add(Title::new(format!(
                "{} stopping: {} to {} ({})",
                rows[b.row],
                fmt_time(b.t0, 1.0),
                fmt_time(b.t1, 1.0),
                fmt_duration(b.t1 - b.t0)
            )));
        rect = if b.failed {
            rect.set("stroke", FAILED).set("stroke-width", 1.5)
        } else if b.open {
            rect.set("stroke", GREY).set("stroke-dasharray", "3 2")
        } else {
            rect.set("stroke", "#888").set("stroke-width", 0.5)
        };
        let _ = write!(markup, "{rect}");
        if b.failed {
            let _ = write!(markup, "{}", cross(x1, mid, 4.0));
        }
        placer.take(Rect {
            x0,
            y0: mid - BAR / 2.0,
            x1,
            y1: mid + BAR / 2.0,
        });
        if b.from.is_some() {
            // Clear of the cross that ends a failed stop.
            let gap = if b.failed { 9.0 } else { 6.0 };
            took.push(Label::new(x1 + gap, mid + 3.5, 9.5, fmt_duration(b.t1 - b.t0)));
        }
    }
    for label in took {
        if let Some(l) = placer.place([label]) {
            let _ = write!(markup, "{}", l.to_text().set("fill", GREY));
        }
    }
    g = g.add(Blob::new(markup));
    if let Some(step) = exit {
        let ex = x(step);
        g = g.add(
            line(ex, top - 4.0, ex, bottom, INK)
                .set("stroke-width", 2)
                .set("stroke-dasharray", "5 3"),
        );
        let candidates = [
            Label::new(ex, top - 4.0, 10.0, "exit")
                .anchor(Anchor::Middle)
                .bold(),
            Label::new(ex + 4.0, top - 4.0, 10.0, "exit")
                .anchor(Anchor::End)
                .bold(),
        ];
        if let Some(l) = placer.place(candidates) {
            g = g.add(l.to_text());
        }
    }
    // The columns' times (of each column's first line), since the stop began; a repeated
    // time is written once.
    let axis_y = bottom + 4.0;
    g = g.add(line(left, axis_y, right, axis_y, INK));
    let mut last = String::new();
    for &step in order.iter().step_by(per) {
        let cx = x(step);
        g = g.add(line(cx, axis_y, cx, axis_y + 4.0, INK));
        let text = format!("+{}", fmt_duration(steps[step].t - begin));
        if text == last {
            continue;
        }
        let label = Label::new(cx, axis_y + 14.0, 9.0, text.clone()).anchor(Anchor::Middle);
        let end = Label::new(cx + 3.0, axis_y + 14.0, 9.0, text.clone()).anchor(Anchor::End);
        if let Some(l) = placer.place([label, end]) {
            g = g.add(l.to_text().set("fill", GREY));
            last = text;
        }
    }
    let note = Label::new(
        left - 10.0,
        axis_y + 14.0,
        9.0,
        format!("since {first}: stopping"),
    );
    let note = note.anchor(Anchor::End);
    if let Some(l) = placer.place([note]) {
        g = g.add(l.to_text().set("fill", GREY));
    }
    Some((g, axis_y + 20.0))
}

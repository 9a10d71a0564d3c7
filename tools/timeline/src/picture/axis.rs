//! Time to x for the main panel: linear, except for long quiet stretches (every component
//! that is up merely running) cut to a fixed width, so that a short stop after a long run
//! keeps some room. The busy stretches are merged once and each gap is checked by a binary
//! search, so laying out the axis costs n log n in the things drawn, not lanes times gaps.

use svg::node::element::Group;

use strips::style::{GREY, INK};

use super::labels::{Anchor, Label, Placer, fmt_px};
use super::shapes::{fmt_duration, fmt_time, line};
use crate::model::{Run, busy_between};

/// Width of a stretch cut short.
pub const BREAK: f64 = 60.0;
/// The narrowest a stretch drawn to scale may be, when it lies between two breaks.
const MIN_PIECE: f64 = 40.0;

/// A piece of the axis: drawn to scale, or a long quiet stretch cut short (a break).
#[derive(Clone, Debug)]
pub struct Piece {
    pub t0: f64,
    pub t1: f64,
    pub x0: f64,
    pub x1: f64,
    pub broken: bool,
}

pub struct Axis {
    pub pieces: Vec<Piece>,
    /// Pixels per millisecond in the pieces drawn to scale.
    scale: f64,
}

impl Axis {
    pub fn new(run: &Run, x0: f64, x1: f64) -> Axis {
        let keys = run.key_times();
        let busy = run.busy();
        let span = run.end.max(1.0);
        let mut gaps: Vec<(f64, f64)> = keys
            .windows(2)
            .map(|w| (w[0], w[1]))
            .filter(|&(a, b)| b - a > 20.0 && !busy_between(&busy, a, b))
            .collect();
        gaps.sort_by(|p, q| (q.1 - q.0).total_cmp(&(p.1 - p.0)));
        let mut shown = span;
        let mut broken = Vec::new();
        for (a, b) in gaps.into_iter().take(64) {
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

    pub fn x(&self, t: f64) -> f64 {
        let piece = self
            .pieces
            .iter()
            .find(|p| t <= p.t1)
            .or(self.pieces.last())
            .expect("an axis has a piece");
        if piece.t1 <= piece.t0 {
            return piece.x0;
        }
        let f = ((t - piece.t0) / (piece.t1 - piece.t0)).clamp(0.0, 1.0);
        piece.x0 + f * (piece.x1 - piece.x0)
    }

    pub fn left(&self) -> f64 {
        self.pieces[0].x0
    }

    pub fn right(&self) -> f64 {
        self.pieces.last().expect("an axis has a piece").x1
    }
}

/// The axis line with its ticks, under the lanes at `y`; returns it and where it ends.
pub fn axis_row(axis: &Axis, y: f64, left: f64, placer: &mut Placer) -> (Group, f64) {
    let mut g = Group::new()
        .set("class", "axis")
        .set("data-x0", fmt_px(axis.left()))
        .set("data-x1", fmt_px(axis.right()));
    let mut labels = Group::new();
    // Each piece drawn to scale gets its own line; the breaks say how much they hide.
    for p in &axis.pieces {
        if p.broken {
            let label = Label::new((p.x0 + p.x1) / 2.0, y + 26.0, 10.0, fmt_duration(p.t1 - p.t0))
                .anchor(Anchor::Middle);
            if let Some(l) = placer.place([label]) {
                labels = labels.add(l.to_text().set("fill", GREY).set("font-style", "italic"));
            }
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
            let label = Label::new(p.x0, y + 15.0, 10.0, fmt_time(p.t0, step.min(10.0)));
            if let Some(l) = placer.place([label]) {
                g = g.add(line(p.x0, y, p.x0, y + 5.0, INK));
                labels = labels.add(l.to_text());
            }
        }
        let mut t = (p.t0 / step).ceil() * step;
        while t <= p.t1 + 1e-9 {
            let x = axis.x(t);
            g = g.add(line(x, y, x, y + 5.0, INK));
            let label = Label::new(x, y + 15.0, 10.0, fmt_time(t, step));
            let end = label.clone().anchor(Anchor::End);
            if let Some(l) = placer.place([label.anchor(Anchor::Middle), end]) {
                labels = labels.add(l.to_text());
            }
            t += step;
        }
    }
    let note = Label::new(left - 24.0, y + 15.0, 10.0, "since the first line").anchor(Anchor::End);
    if let Some(l) = placer.place([note]) {
        labels = labels.add(l.to_text().set("fill", GREY));
    }
    (g.add(labels), y + 30.0)
}

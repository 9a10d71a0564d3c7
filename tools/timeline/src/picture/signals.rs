//! The main process's signals row: a mark per signal, its label on the first of a few
//! levels above where it is free (on the side of the mark that stays on the canvas), and an
//! arrow from a delayed signal to its delivery.

use svg::node::element::path::Data;
use svg::node::element::{Circle, Group, Path};

use strips::style::{GREY, TEXT};

use super::axis::Axis;
use super::labels::{Anchor, Label, Placer, fmt_px, halo};
use super::shapes::{action_colour, line, signal_label, signal_mark, triangle};
use crate::model::Run;

/// Levels of labels at most; a label with no room on any is left to its mark's tooltip.
const LEVELS: usize = 4;
const LEVEL: f64 = 13.0;

/// The labels of the row, each with its level, laid out before the row's height is known.
pub struct Layout {
    labels: Vec<Option<(usize, Label)>>,
    levels: usize,
}

impl Layout {
    pub fn new(run: &Run, axis: &Axis, width: f64) -> Layout {
        let mut levels: Vec<Placer> = Vec::new();
        let mut labels = Vec::new();
        for s in &run.signals {
            let x = axis.x(s.t);
            let right = Label::new(x + 6.0, 20.0, TEXT, signal_label(s)).bold();
            let left = Label {
                x: x - 6.0,
                ..right.clone().anchor(Anchor::End)
            };
            let mut found = None;
            for level in 0..LEVELS {
                if level == levels.len() {
                    levels.push(Placer::new(width));
                }
                if let Some(l) = levels[level].place([right.clone(), left.clone()]) {
                    found = Some((level, l));
                    break;
                }
            }
            labels.push(found);
        }
        let levels = labels.iter().flatten().map(|(n, _)| n + 1).max().unwrap_or(0);
        Layout { labels, levels }
    }

    pub fn height(&self) -> f64 {
        22.0 + LEVEL * self.levels as f64
    }
}

pub fn signals_row(run: &Run, axis: &Axis, y: f64, layout: Layout, placer: &mut Placer) -> Group {
    let mark_y = y + 6.0 + LEVEL * layout.levels as f64;
    let mut g = Group::new().set("class", "signals").set("data-process", "main");
    let name = Label::new(axis.left() - 10.0, mark_y + 8.0, TEXT, "signals").anchor(Anchor::End);
    g = g.add(placer.fixed(name).to_text().set("fill", GREY));
    // Arrows from each delayed signal to its delivery.
    let mut pending: Option<f64> = None;
    for s in &run.signals {
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
    for (s, label) in run.signals.iter().zip(layout.labels) {
        let x = axis.x(s.t);
        let colour = action_colour(&s.action);
        let mut mark = signal_mark(s);
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
        // The label on its level, if it had room, with a leader down to its mark.
        if let Some((level, l)) = label {
            let baseline = y + 12.0 + LEVEL * level as f64;
            let l = Label { y: baseline, ..l };
            if placer.free(l.rect()) {
                placer.take(l.rect());
                mark = mark
                    .add(line(x, baseline + 2.0, x, mark_y, colour).set("stroke-width", 0.8))
                    .add(halo(l.to_text().set("fill", colour)));
            }
        }
        g = g.add(mark);
    }
    g
}

//! Text in the picture, and the one rule that keeps it readable: no label overlaps another
//! or leaves the canvas. Every text is placed through a `Placer`, which knows the boxes
//! already taken; a label that has no free spot among its candidates is left out (its mark
//! keeps the same words in a tooltip). Boxes are bucketed by height on the canvas, so that
//! a check looks at its neighbours only, however many lanes the picture has.

use std::collections::HashMap;

use svg::node::element::Text;

/// Width of `text` at `size` px in a sans-serif font: an estimate on the wide side, so that
/// labels kept apart by it stay apart when rendered.
pub fn text_width(text: &str, size: f64, bold: bool) -> f64 {
    let per_char = if bold { 0.66 } else { 0.62 };
    text.chars().count() as f64 * size * per_char
}

pub use strips::draw::fmt_px;

/// A box on the canvas.
#[derive(Clone, Copy, Debug)]
pub struct Rect {
    pub x0: f64,
    pub y0: f64,
    pub x1: f64,
    pub y1: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anchor {
    Start,
    Middle,
    End,
}

/// A text before it is placed: where, how big and what.
#[derive(Clone, Debug)]
pub struct Label {
    pub x: f64,
    pub y: f64,
    pub size: f64,
    pub anchor: Anchor,
    pub bold: bool,
    pub text: String,
}

impl Label {
    pub fn new(x: f64, y: f64, size: f64, text: impl Into<String>) -> Label {
        Label {
            x,
            y,
            size,
            anchor: Anchor::Start,
            bold: false,
            text: text.into(),
        }
    }

    pub fn anchor(mut self, anchor: Anchor) -> Label {
        self.anchor = anchor;
        self
    }

    pub fn bold(mut self) -> Label {
        self.bold = true;
        self
    }

    pub fn width(&self) -> f64 {
        text_width(&self.text, self.size, self.bold)
    }

    /// The box the text covers: from the ascent above the baseline to the descent below.
    pub fn rect(&self) -> Rect {
        let w = self.width();
        let x0 = match self.anchor {
            Anchor::Start => self.x,
            Anchor::Middle => self.x - w / 2.0,
            Anchor::End => self.x - w,
        };
        Rect {
            x0,
            y0: self.y - 0.8 * self.size,
            x1: x0 + w,
            y1: self.y + 0.25 * self.size,
        }
    }

    /// Cuts the text (with an ellipsis) until it is at most `max` px wide.
    pub fn shortened(mut self, max: f64) -> Label {
        if self.width() <= max {
            return self;
        }
        let mut chars: Vec<char> = self.text.chars().collect();
        while self.width() > max && chars.pop().is_some() {
            self.text = chars.iter().collect::<String>() + "…";
        }
        self
    }

    pub fn to_text(&self) -> Text {
        let t = Text::new(self.text.clone())
            .set("x", fmt_px(self.x))
            .set("y", fmt_px(self.y))
            .set("font-size", self.size);
        let t = if self.bold {
            t.set("font-weight", "bold")
        } else {
            t
        };
        match self.anchor {
            Anchor::Start => t,
            Anchor::Middle => t.set("text-anchor", "middle"),
            Anchor::End => t.set("text-anchor", "end"),
        }
    }
}

/// Text with a white halo, to stay readable over a bar.
pub fn halo(t: Text) -> Text {
    t.set("stroke", "white")
        .set("stroke-width", 3)
        .set("stroke-linejoin", "round")
        .set("paint-order", "stroke")
}

/// Height of a bucket of boxes, in px.
const CELL: f64 = 24.0;
/// Room left between two labels side by side.
const GAP: f64 = 3.0;

/// The boxes taken so far on a canvas `width` px wide.
pub struct Placer {
    width: f64,
    cells: HashMap<i64, Vec<Rect>>,
}

impl Placer {
    pub fn new(width: f64) -> Placer {
        Placer {
            width,
            cells: HashMap::new(),
        }
    }

    fn cells(r: Rect) -> impl Iterator<Item = i64> {
        (r.y0 / CELL).floor() as i64..=(r.y1 / CELL).floor() as i64
    }

    pub fn free(&self, r: Rect) -> bool {
        let inside = r.x0 >= 2.0 && r.x1 <= self.width - 2.0 && r.y0 >= 0.0;
        inside
            && Self::cells(r).all(|cell| {
                self.cells.get(&cell).is_none_or(|taken| {
                    taken
                        .iter()
                        .all(|q| r.x1 + GAP <= q.x0 || r.x0 >= q.x1 + GAP || r.y1 <= q.y0 || r.y0 >= q.y1)
                })
            })
    }

    /// Takes the box whatever is there: for the few texts laid out by hand (names, title).
    pub fn take(&mut self, r: Rect) {
        for cell in Self::cells(r) {
            self.cells.entry(cell).or_default().push(r);
        }
    }

    /// The first candidate that is free, now taken; None when none is.
    pub fn place(&mut self, candidates: impl IntoIterator<Item = Label>) -> Option<Label> {
        let found = candidates.into_iter().find(|l| self.free(l.rect()))?;
        self.take(found.rect());
        Some(found)
    }

    /// A text laid out by hand: shortened to fit the canvas, then taken.
    pub fn fixed(&mut self, label: Label) -> Label {
        let room = match label.anchor {
            Anchor::Start => self.width - 4.0 - label.x,
            Anchor::End => label.x - 4.0,
            Anchor::Middle => 2.0 * (label.x - 4.0).min(self.width - 4.0 - label.x),
        };
        let label = label.shortened(room.max(0.0));
        self.take(label.rect());
        label
    }
}

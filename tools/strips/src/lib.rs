//! Strip plots for the suite's tools: one row of dots per distribution, its median and
//! p99 marked, on a log axis, so that a 3 s forced exit and a 1 ms exit read in one
//! picture. `tools/torture` draws its signal-to-exit latencies with it, `tools/bench` the
//! suite beside its floor.
//!
//! The drawing goes through the `svg` crate, as tools/timeline's does, with the same font,
//! ink and text sizes ([`style`], which the timeline uses too): the crate escapes text and attributes and prints well-formed XML, which
//! hand-built markup would have to get right by itself.

use svg::Document;
use svg::node::element::{Circle, Group, Rectangle, Text};

/// The look every picture of the suite's tools shares (tools/timeline's too).
/// The drawing primitives the suite's pictures share.
pub mod draw {
    use ::svg::node::element::Line;

    /// A coordinate as written in the picture: a tenth of a pixel.
    pub fn fmt_px(v: f64) -> String {
        format!("{v:.1}")
    }

    /// A straight line of one colour.
    pub fn line(x1: f64, y1: f64, x2: f64, y2: f64, colour: &str) -> Line {
        Line::new()
            .set("x1", fmt_px(x1))
            .set("y1", fmt_px(y1))
            .set("x2", fmt_px(x2))
            .set("y2", fmt_px(y2))
            .set("stroke", colour)
    }
}

use self::draw::{fmt_px, line};

pub mod style {
    /// The font, one that every SVG viewer has or can stand in for.
    pub const FONT: &str = "DejaVu Sans, Verdana, Helvetica, Arial, sans-serif";
    /// Body text size.
    pub const TEXT: f64 = 11.0;
    /// Text and axes.
    pub const INK: &str = "#222";
    /// Secondary text: ticks, notes.
    pub const GREY: &str = "#666";
}

use style::{FONT, GREY, INK, TEXT};

const WIDTH: f64 = 900.0;
/// The label column, left of the axis.
const LEFT: f64 = 200.0;
/// The figures column, right of the axis.
const RIGHT: f64 = 190.0;
const TOP: f64 = 58.0;
const ROW: f64 = 30.0;
const HEADING: f64 = 22.0;
const TARGET: &str = "#d62728";

/// One distribution: a row of dots with its median and p99 marked.
pub struct Strip {
    /// The row's label, left of the axis.
    pub label: String,
    /// The samples, in ms.
    pub values: Vec<f64>,
    /// The dots' colour.
    pub colour: &'static str,
    /// A bound drawn as a dashed line across the row, with its description.
    pub target: Option<(f64, String)>,
}

/// Rows under one heading.
pub struct Section {
    /// The heading.
    pub title: String,
    /// Its rows.
    pub strips: Vec<Strip>,
}

/// Nearest-rank percentile `p` (0-100) of sorted `values`.
fn rank(sorted: &[f64], p: f64) -> f64 {
    let index = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[index.clamp(1, sorted.len()) - 1]
}

/// A duration in the units that read best.
fn fmt_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.0} ms")
    } else if ms >= 1.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

/// A tick's value, without trailing zeros: 0.5 ms, 20 ms, 2 s.
fn fmt_tick(ms: f64) -> String {
    let short = |v: f64| (v * 1000.0).round() / 1000.0;
    if ms >= 1000.0 {
        format!("{} s", short(ms / 1000.0))
    } else {
        format!("{} ms", short(ms))
    }
}

fn text(x: f64, y: f64, size: f64, content: impl Into<String>) -> Text {
    Text::new(content)
        .set("x", fmt_px(x))
        .set("y", fmt_px(y))
        .set("font-size", size)
}

/// A log-scaled axis from a 1-2-5 step at or below the smallest sample to one at or above
/// the largest: a 3 s forced exit and a 1 ms exit both get room.
struct Axis {
    lo: f64,
    hi: f64,
    x0: f64,
    x1: f64,
}

impl Axis {
    fn of(groups: &[Section]) -> Axis {
        let values = groups
            .iter()
            .flat_map(|g| &g.strips)
            .flat_map(|s| s.values.iter().copied().chain(s.target.as_ref().map(|t| t.0)))
            .filter(|v| v.is_finite() && *v > 0.0);
        let (min, max) = values.fold((f64::INFINITY, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
        let (min, max) = if min.is_finite() { (min, max) } else { (1.0, 10.0) };
        let steps = |decade: i32| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(decade));
        let lo = steps(min.log10().floor() as i32)
            .into_iter()
            .rev()
            .find(|s| *s <= min * 1.000_001)
            .unwrap_or(min);
        let hi_decade = max.log10().floor() as i32;
        let hi = steps(hi_decade)
            .into_iter()
            .chain(steps(hi_decade + 1))
            .find(|s| *s >= max * 0.999_999)
            .unwrap_or(max);
        let hi = if hi <= lo { lo * 10.0 } else { hi };
        Axis {
            lo,
            hi,
            x0: LEFT,
            x1: WIDTH - RIGHT,
        }
    }

    fn x(&self, v: f64) -> f64 {
        let v = v.clamp(self.lo, self.hi);
        self.x0 + (v / self.lo).log10() / (self.hi / self.lo).log10() * (self.x1 - self.x0)
    }

    /// The ticks: 1, 2 and 5 of each decade, or only the 1s when that would crowd.
    fn ticks(&self) -> Vec<f64> {
        let decades = (self.hi / self.lo).log10();
        let multipliers: &[f64] = if decades > 3.5 { &[1.0] } else { &[1.0, 2.0, 5.0] };
        let mut ticks = Vec::new();
        let mut decade = self.lo.log10().floor() as i32;
        while 10f64.powi(decade) <= self.hi * 1.000_001 {
            for m in multipliers {
                let t = m * 10f64.powi(decade);
                if t >= self.lo * 0.999_999 && t <= self.hi * 1.000_001 {
                    ticks.push(t);
                }
            }
            decade += 1;
        }
        ticks
    }
}

/// The groups as an SVG strip plot: one row per strip, dots jittered within the row, the
/// median as a black bar, the p99 as a bar in the row's colour, the figures on the right.
///
/// Elements carry `class` and `data-*` attributes (strip, point, median, p99, target, axis)
/// so that the picture can be checked by reading it back as XML.
pub fn draw(title: &str, subtitle: &str, axis_label: &str, groups: &[Section]) -> String {
    let axis = Axis::of(groups);
    let rows: usize = groups.iter().map(|g| g.strips.len()).sum();
    let plot_bottom = TOP + groups.len() as f64 * HEADING + rows as f64 * ROW;
    let height = plot_bottom + 48.0;

    let mut body = Group::new().set("font-family", FONT).set("fill", INK);
    body = body
        .add(text(12.0, 22.0, 15.0, title).set("font-weight", "bold"))
        .add(text(12.0, 40.0, TEXT, subtitle).set("fill", GREY));

    // Grid and tick labels under everything else.
    let mut grid = Group::new()
        .set("class", "axis")
        .set("data-x0", fmt_px(axis.x0))
        .set("data-x1", fmt_px(axis.x1));
    for tick in axis.ticks() {
        let x = axis.x(tick);
        grid = grid
            .add(line(x, TOP, x, plot_bottom, "#ddd").set("stroke-width", 0.8))
            .add(
                text(x, plot_bottom + 15.0, TEXT, fmt_tick(tick))
                    .set("text-anchor", "middle")
                    .set("fill", GREY),
            );
    }
    grid = grid
        .add(line(axis.x0, plot_bottom, axis.x1, plot_bottom, GREY))
        .add(
            text((axis.x0 + axis.x1) / 2.0, plot_bottom + 34.0, TEXT, axis_label)
                .set("text-anchor", "middle")
                .set("fill", GREY),
        );
    body = body.add(grid);

    let mut y = TOP;
    for group in groups {
        body = body.add(
            text(12.0, y + 15.0, 12.0, group.title.clone())
                .set("font-weight", "bold")
                .set("class", "heading"),
        );
        y += HEADING;
        for strip in &group.strips {
            body = body.add(draw_strip(&axis, y, strip));
            y += ROW;
        }
    }

    Document::new()
        .set("width", WIDTH)
        .set("height", fmt_px(height))
        .set("viewBox", format!("0 0 {WIDTH} {}", fmt_px(height)))
        .add(
            Rectangle::new()
                .set("width", "100%")
                .set("height", "100%")
                .set("fill", "white"),
        )
        .add(body)
        .to_string()
}

fn draw_strip(axis: &Axis, top: f64, strip: &Strip) -> Group {
    let mid = top + ROW / 2.0;
    let mut sorted: Vec<f64> = strip.values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let mut g = Group::new()
        .set("class", "strip")
        .set("data-label", strip.label.clone())
        .set("data-count", sorted.len());
    g = g.add(
        Rectangle::new()
            .set("x", fmt_px(axis.x0))
            .set("y", fmt_px(top + 2.0))
            .set("width", fmt_px(axis.x1 - axis.x0))
            .set("height", fmt_px(ROW - 4.0))
            .set("fill", "#f6f6f6"),
    );
    g = g.add(text(12.0, mid + 4.0, TEXT, strip.label.clone()));
    if let Some((bound, _)) = &strip.target {
        let x = axis.x(*bound);
        g = g.add(
            line(x, top + 1.0, x, top + ROW - 1.0, TARGET)
                .set("stroke-width", 1.5)
                .set("stroke-dasharray", "4 2")
                .set("class", "target")
                .set("data-x", fmt_px(x)),
        );
    }
    if sorted.is_empty() {
        return g.add(text(axis.x1 + 10.0, mid + 4.0, TEXT, "no samples").set("fill", GREY));
    }
    // Jitter by the golden ratio: spread, and the same picture for the same samples.
    for (i, v) in strip.values.iter().filter(|v| v.is_finite()).enumerate() {
        let jitter = ((i as f64 * 0.618_034).fract() - 0.5) * (ROW - 12.0);
        let x = axis.x(*v);
        g = g.add(
            Circle::new()
                .set("class", "point")
                .set("cx", fmt_px(x))
                .set("cy", fmt_px(mid + jitter))
                .set("r", 2.4)
                .set("fill", strip.colour)
                .set("fill-opacity", 0.45),
        );
    }
    let median = rank(&sorted, 50.0);
    let p99 = rank(&sorted, 99.0);
    let (xm, xp) = (axis.x(median), axis.x(p99));
    g = g
        .add(
            line(xm, top + 3.0, xm, top + ROW - 3.0, INK)
                .set("stroke-width", 3)
                .set("class", "median")
                .set("data-x", fmt_px(xm)),
        )
        .add(
            line(xp, top + 5.0, xp, top + ROW - 5.0, strip.colour)
                .set("stroke-width", 2)
                .set("class", "p99")
                .set("data-x", fmt_px(xp)),
        );
    let figures = format!("median {} · p99 {}", fmt_ms(median), fmt_ms(p99));
    let (first, second) = match &strip.target {
        Some((_, description)) => (mid - 1.0, Some(description.clone())),
        None => (mid + 4.0, None),
    };
    g = g.add(text(axis.x1 + 10.0, first, TEXT, figures));
    if let Some(description) = second {
        g = g.add(text(axis.x1 + 10.0, mid + 11.0, 9.5, description).set("fill", TARGET));
    }
    g
}

//! The report: markdown tables with targets, the machine they ran on, and the README splice.
//!
//! Every figure is printed next to the floor it is compared to and the target it must meet,
//! and a miss says by how much, so the table answers "is it fast enough, and how far from
//! what this machine allows?" without a second document. The README is someone else's
//! file: only the text between `<!-- bench:start -->` and `<!-- bench:end -->` is replaced,
//! and a README without both markers is left untouched.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;

use crate::stats::Summary;

/// The README markers between which the report goes.
pub const START_MARKER: &str = "<!-- bench:start -->";
/// See [`START_MARKER`].
pub const END_MARKER: &str = "<!-- bench:end -->";

/// What a figure must achieve.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// Median below `median`, and p99 below `p99` when given.
    Below {
        /// Bound on the median.
        median: f64,
        /// Bound on the p99, if any.
        p99: Option<f64>,
    },
    /// Median at least this.
    AtLeast(f64),
}

impl Target {
    fn describe(self, unit: &str) -> String {
        match self {
            Target::Below { median, p99: None } => format!("< {median} {unit}"),
            Target::Below {
                median,
                p99: Some(p99),
            } => format!("< {median} {unit}, p99 < {p99}"),
            Target::AtLeast(at_least) => format!("≥ {} {unit}", thousands(at_least)),
        }
    }

    /// "yes", or "**no**" with by how much.
    fn verdict(self, summary: &Summary) -> String {
        let over = |value: f64, bound: f64| (value / bound - 1.0) * 100.0;
        match self {
            Target::Below { median, p99 } => {
                let mut misses = Vec::new();
                if summary.median >= median {
                    misses.push(format!("median {} over", percent(over(summary.median, median))));
                }
                if let Some(bound) = p99.filter(|&b| summary.p99 >= b) {
                    misses.push(format!("p99 {} over", percent(over(summary.p99, bound))));
                }
                if misses.is_empty() {
                    "yes".into()
                } else {
                    format!("**no**: {}", misses.join(", "))
                }
            }
            Target::AtLeast(bound) if summary.median >= bound => "yes".into(),
            Target::AtLeast(bound) => format!(
                "**no**: {} short",
                percent((1.0 - summary.median / bound) * 100.0)
            ),
        }
    }
}

/// How a table's figures are shown.
#[derive(Clone, Copy)]
pub enum Unit {
    /// Milliseconds.
    Ms,
    /// Calls or round trips per second.
    PerSecond,
    /// Megabytes (10^6 bytes), from KiB samples.
    Mb,
    /// Nanoseconds.
    Ns,
    /// A count (threads).
    Count,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Ms => "ms",
            Unit::PerSecond => "/s",
            Unit::Mb => "MB",
            Unit::Ns => "ns",
            Unit::Count => "count",
        }
    }

    fn show(self, value: f64) -> String {
        match self {
            Unit::PerSecond => thousands(value),
            Unit::Mb => format!("{:.1}", value),
            Unit::Ms | Unit::Ns => plain(value),
            Unit::Count => format!("{value:.0}"),
        }
    }
}

/// One row: a figure, its floor and its target.
pub struct Row {
    /// What was measured, as the reader should read it.
    pub what: String,
    /// The samples' summary (already in the table's unit); `None` if no run succeeded.
    pub summary: Option<Summary>,
    /// The floor's median, in the same unit.
    pub floor: Option<f64>,
    /// The target, if the issue sets one.
    pub target: Option<Target>,
}

/// A table of rows in one unit. Latency-like tables show median, p90, p99 and max; rate
/// tables (higher is better) show median, min and max.
pub struct Table {
    /// Its heading.
    pub title: String,
    /// The unit of its figures.
    pub unit: Unit,
    /// Its rows.
    pub rows: Vec<Row>,
}

impl Table {
    fn render(&self, out: &mut String) {
        let unit = self.unit.name();
        let _ = writeln!(out, "**{}** ({unit})\n", self.title);
        let spread = match self.unit {
            Unit::PerSecond => ["min", "max"].as_slice(),
            _ => ["p90", "p99", "max"].as_slice(),
        };
        // A table with neither floors nor targets (the scale table) leaves their columns out.
        let judged = self.rows.iter().any(|r| r.floor.is_some() || r.target.is_some());
        let mut header = vec!["measure", "runs", "median"];
        header.extend_from_slice(spread);
        if judged {
            header.extend_from_slice(&["floor (median)", "× floor", "target", "met?"]);
        }
        let _ = writeln!(out, "| {} |", header.join(" | "));
        let align: Vec<&str> = header
            .iter()
            .enumerate()
            .map(|(i, _)| if i == 0 { "---" } else { "--:" })
            .collect();
        let _ = writeln!(out, "| {} |", align.join(" | "));
        for row in &self.rows {
            let mut cells = vec![row.what.clone()];
            match &row.summary {
                Some(s) => {
                    cells.push(s.count.to_string());
                    cells.push(self.unit.show(s.median));
                    let spread_values: Vec<f64> = match self.unit {
                        Unit::PerSecond => vec![s.min, s.max],
                        _ => vec![s.p90, s.p99, s.max],
                    };
                    cells.extend(spread_values.into_iter().map(|v| self.unit.show(v)));
                }
                None => {
                    cells.push("0".into());
                    cells.extend(std::iter::repeat_n("—".to_string(), spread.len() + 1));
                }
            }
            if !judged {
                let _ = writeln!(out, "| {} |", cells.join(" | "));
                continue;
            }
            cells.push(row.floor.map_or("—".into(), |f| self.unit.show(f)));
            cells.push(match (&row.summary, row.floor) {
                (Some(s), Some(f)) if f > 0.0 => format!("×{:.2}", s.median / f),
                _ => "—".into(),
            });
            cells.push(row.target.map_or("—".into(), |t| t.describe(unit)));
            cells.push(match (row.target, &row.summary) {
                (Some(t), Some(s)) => t.verdict(s),
                (Some(_), None) => "**no**: no successful run".into(),
                (None, _) => "—".into(),
            });
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        out.push('\n');
    }
}

/// The machine the figures came from.
pub struct Machine {
    /// Logical CPUs (`nproc`).
    pub cpus: usize,
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// The kernel release.
    pub kernel: String,
}

impl Machine {
    /// Reads this machine's description.
    pub fn this() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')))
            .map_or("unknown CPU".into(), |(_, model)| model.trim().to_owned());
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or("unknown".into(), |k| k.trim().to_owned()),
        }
    }
}

/// Renders the whole report: what produced it, on what, the tables, and the notes.
pub fn render(command: &str, machine: &Machine, tables: &[Table], notes: &[String]) -> String {
    let mut out = String::new();
    let when = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let _ = writeln!(out, "Produced by `{command}` on {when}{}.", commit_suffix());
    let _ = writeln!(
        out,
        "Machine: {} CPUs (`nproc`), {}, Linux {}.\n",
        machine.cpus, machine.cpu_model, machine.kernel
    );
    for table in tables {
        table.render(&mut out);
    }
    for note in notes {
        let _ = writeln!(out, "- {note}");
    }
    out
}

fn commit_suffix() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(commit) if !commit.is_empty() => {
            let dirty =
                git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            format!(
                ", commit {commit}{}",
                if dirty { " with local changes" } else { "" }
            )
        }
        _ => String::new(),
    }
}

/// Replaces the text between the markers in `path` with `report`. A file without both
/// markers is left as it is (and that is reported); a missing file is an error.
pub fn splice_into(path: &Path, report: &str) -> anyhow::Result<bool> {
    let text = std::fs::read_to_string(path).with_context(|| format!("failed to read {}", path.display()))?;
    let Some(spliced) = splice(&text, report) else {
        return Ok(false);
    };
    std::fs::write(path, spliced).with_context(|| format!("failed to write {}", path.display()))?;
    Ok(true)
}

/// `text` with everything between the first start marker and the next end marker replaced.
pub fn splice(text: &str, report: &str) -> Option<String> {
    let start = text.find(START_MARKER)? + START_MARKER.len();
    let end = start + text[start..].find(END_MARKER)?;
    Some(format!(
        "{}\n{}\n{}",
        &text[..start],
        report.trim_end(),
        &text[end..]
    ))
}

/// A number with a precision that suits its size: 0.412, 3.07, 12.4, 250.
fn plain(value: f64) -> String {
    match value.abs() {
        v if v < 10.0 => format!("{value:.3}"),
        v if v < 100.0 => format!("{value:.2}"),
        v if v < 1000.0 => format!("{value:.1}"),
        _ => thousands(value),
    }
}

/// A percentage with a precision that suits its size: 0.4%, 7.5%, 33%.
fn percent(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.1}%")
    } else {
        format!("{value:.0}%")
    }
}

/// An integer with thousands separators: 123,456.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    if value < 0.0 { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_replaces_only_between_the_markers() {
        let text = "# T\n<!-- bench:start -->\nold\n<!-- bench:end -->\ntail\n";
        assert_eq!(
            splice(text, "new\n").as_deref(),
            Some("# T\n<!-- bench:start -->\nnew\n<!-- bench:end -->\ntail\n")
        );
    }

    #[test]
    fn splice_needs_both_markers_in_order() {
        assert_eq!(splice("no markers", "x"), None);
        assert_eq!(splice("<!-- bench:end --> <!-- bench:start -->", "x"), None);
    }

    #[test]
    fn verdicts_say_by_how_much() {
        let s = Summary::of(&[2.0, 2.0, 6.0]).unwrap();
        let t = Target::Below {
            median: 1.5,
            p99: Some(5.0),
        };
        assert_eq!(t.verdict(&s), "**no**: median 33% over, p99 20% over");
        assert_eq!(Target::AtLeast(2.1).verdict(&s), "**no**: 4.8% short");
        assert_eq!(Target::AtLeast(1.0).verdict(&s), "yes");
        assert_eq!(Target::AtLeast(4.0).verdict(&s), "**no**: 50% short");
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(plain(0.41234), "0.412");
        assert_eq!(plain(12.345), "12.35");
    }
}

//! The latency distributions as a picture: each measure of the suite (launch → ready,
//! SIGINT → exit) beside the same measure of its floor, with the target as a dashed line.
//!
//! Written with `--plots DIR` as `DIR/bench-latency.svg`, beside the markdown report.

use std::path::{Path, PathBuf};

use strips::{Section, Strip, draw};

use crate::latency::Samples;

/// The file name the plot is written to.
pub const FILE: &str = "bench-latency.svg";

const SUITE: &str = "#1f77b4";
const FLOOR: &str = "#8c8c8c";

/// Which measure a row pair shows.
#[derive(Clone, Copy)]
enum Measure {
    Ready,
    Stop,
}

/// A measure of the suite beside its floor: (heading, measure, suite scenario, floor
/// scenario, median target in ms, target's description). The indices are those of
/// `Bins::latency_scenarios`; the targets are those of `tables::latency_table` (a test
/// holds the two together).
const PAIRS: [(&str, Measure, usize, usize, f64, &str); 5] = [
    (
        "simple: launch → ready",
        Measure::Ready,
        0,
        3,
        3.0,
        "target: median < 3 ms",
    ),
    (
        "complex (4 workers): launch → ready",
        Measure::Ready,
        1,
        4,
        10.0,
        "target: median < 10 ms",
    ),
    (
        "simple: SIGINT → exit, idle",
        Measure::Stop,
        0,
        3,
        1.5,
        "target: median < 1.5, p99 < 5 ms",
    ),
    (
        "complex: SIGINT → exit, idle",
        Measure::Stop,
        1,
        4,
        5.0,
        "target: median < 5, p99 < 15 ms",
    ),
    (
        "complex: SIGINT → exit, busy (4 tasks)",
        Measure::Stop,
        2,
        4,
        5.0,
        "target: median < 5, p99 < 15 ms",
    ),
];

/// The plot of the latency section: `samples` and `names` in `Bins::latency_scenarios`'s
/// order.
pub fn latency(samples: &[Samples], names: &[&str], subtitle: &str) -> String {
    let sections: Vec<Section> = PAIRS
        .iter()
        .filter(|p| p.2 < samples.len() && p.3 < samples.len())
        .map(|&(title, measure, suite, floor, target, description)| {
            let values = |i: usize| match measure {
                Measure::Ready => samples[i].ready_ms.clone(),
                Measure::Stop => samples[i].stop_ms.clone(),
            };
            let name = |i: usize| names.get(i).copied().unwrap_or("?").to_owned();
            Section {
                title: title.to_owned(),
                strips: vec![
                    Strip {
                        label: name(suite),
                        values: values(suite),
                        colour: SUITE,
                        target: Some((target, description.to_owned())),
                    },
                    Strip {
                        label: format!("floor: {}", name(floor)),
                        values: values(floor),
                        colour: FLOOR,
                        target: None,
                    },
                ],
            }
        })
        .collect();
    draw(
        "Benchmark: the suite against the floor of this machine",
        subtitle,
        "ms (log scale); black bar: median, coloured bar: p99, red dashes: the median's target",
        &sections,
    )
}

/// Writes the plot into `dir` (created if missing); returns the file's path.
pub fn write(dir: &Path, samples: &[Samples], names: &[&str], subtitle: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(FILE);
    std::fs::write(&path, latency(samples, names, subtitle))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Target;

    fn attr(node: roxmltree::Node, name: &str) -> f64 {
        node.attribute(name).unwrap().parse().unwrap()
    }

    fn synthetic() -> Vec<Samples> {
        (0..5)
            .map(|i| Samples {
                ready_ms: (0..30)
                    .map(|r| 0.5 + f64::from(i) + f64::from(r) * 0.05)
                    .collect(),
                stop_ms: (0..30)
                    .map(|r| 0.2 + f64::from(i) * 2.0 + f64::from(r) * 0.1)
                    .collect(),
                ..Samples::default()
            })
            .collect()
    }

    #[test]
    fn two_rows_per_measure_with_marks_and_targets_on_the_axis() {
        let names = [
            "simple",
            "complex idle",
            "complex busy",
            "floor-ctrlc",
            "floor-children",
        ];
        let svg = latency(&synthetic(), &names, "s");
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let headings = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("heading"))
            .count();
        assert_eq!(headings, PAIRS.len());
        let strips: Vec<_> = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("strip"))
            .collect();
        assert_eq!(strips.len(), 2 * PAIRS.len());
        assert_eq!(strips[0].attribute("data-label"), Some("simple"));
        assert_eq!(strips[1].attribute("data-label"), Some("floor: floor-ctrlc"));
        assert!(strips.iter().all(|s| attr(*s, "data-count") == 30.0));

        let axis = doc
            .descendants()
            .find(|n| n.attribute("class") == Some("axis"))
            .unwrap();
        let (x0, x1) = (attr(axis, "data-x0"), attr(axis, "data-x1"));
        let count = |class: &str| {
            doc.descendants()
                .filter(|n| n.attribute("class") == Some(class))
                .count()
        };
        assert_eq!(count("median"), 2 * PAIRS.len());
        assert_eq!(count("p99"), 2 * PAIRS.len());
        assert_eq!(
            count("target"),
            PAIRS.len(),
            "one target per measure, on the suite's row"
        );
        for node in doc.descendants() {
            let x = match node.attribute("class") {
                Some("median" | "p99" | "target") => attr(node, "data-x"),
                Some("point") => attr(node, "cx"),
                _ => continue,
            };
            assert!((x0..=x1).contains(&x), "{x} outside {x0}..{x1}");
        }
    }

    #[test]
    fn the_targets_are_the_tables_targets() {
        let table = crate::tables::latency_table(&synthetic(), None);
        for (row, pair) in table.rows.iter().zip(PAIRS) {
            match row.target {
                Some(Target::Below { median, .. }) => assert_eq!(median, pair.4, "{}", row.what),
                _ => panic!("{} has no median target", row.what),
            }
        }
    }
}

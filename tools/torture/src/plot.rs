//! The round's latencies as a picture: signal sent → main process reaped, one row per
//! scenario and binary, on a log axis so that a 3 s forced exit and a 10 ms exit both read.
//!
//! Written with `--plots DIR` as `DIR/torture-latency.svg`, beside the markdown summary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use strips::{Section, Strip, draw};

use crate::report::Outcome;
use crate::scenario::{Binary, Scenario};

/// The file name the plot is written to.
pub const FILE: &str = "torture-latency.svg";

fn colour(binary: Binary) -> &'static str {
    match binary {
        Binary::Simple => "#1f77b4",
        Binary::Complex => "#6a3d9a",
    }
}

/// The latency plot of a round: a heading per scenario, a row per binary.
pub fn latency(outcomes: &[Outcome], subtitle: &str) -> String {
    let mut groups: BTreeMap<(Scenario, Binary), Vec<f64>> = BTreeMap::new();
    for outcome in outcomes {
        let plan = &outcome.observation.plan;
        let values = groups.entry((plan.scenario, plan.binary)).or_default();
        if let Some(latency) = outcome.observation.latency() {
            values.push(latency.as_secs_f64() * 1000.0);
        }
    }
    draw(
        "Torture round: signal sent → main process reaped",
        subtitle,
        "latency (log scale); black bar: median, coloured bar: p99",
        &sections(groups),
    )
}

/// A section per scenario, a strip per binary with latencies, in the summary table's order.
fn sections(groups: BTreeMap<(Scenario, Binary), Vec<f64>>) -> Vec<Section> {
    let mut sections: Vec<Section> = Vec::new();
    // A scenario without a signal (run-for) has no latency to draw.
    for ((scenario, binary), values) in groups.into_iter().filter(|(_, v)| !v.is_empty()) {
        let trials = if values.len() == 1 { "trial" } else { "trials" };
        let strip = Strip {
            label: format!("{binary} ({} {trials})", values.len()),
            values,
            colour: colour(binary),
            target: None,
        };
        match sections.last_mut() {
            Some(section) if section.title == scenario.name() => section.strips.push(strip),
            _ => sections.push(Section {
                title: scenario.name().to_owned(),
                strips: vec![strip],
            }),
        }
    }
    sections
}

/// Writes the plot into `dir` (created if missing); returns the file's path.
pub fn write(dir: &Path, outcomes: &[Outcome], subtitle: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(FILE);
    std::fs::write(&path, latency(outcomes, subtitle))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(node: roxmltree::Node, name: &str) -> f64 {
        node.attribute(name).unwrap().parse().unwrap()
    }

    #[test]
    fn one_row_per_scenario_and_binary_with_marks_on_the_axis() {
        let mut groups = BTreeMap::new();
        // A 10 ms exit and a 3 s forced one in the same picture.
        let quick: Vec<f64> = (0..50).map(|i| 8.0 + f64::from(i) * 0.1).collect();
        let forced: Vec<f64> = (0..20).map(|i| 3000.0 + f64::from(i)).collect();
        groups.insert((Scenario::SigintGroup, Binary::Simple), quick.clone());
        groups.insert((Scenario::SigintGroup, Binary::Complex), quick.clone());
        groups.insert((Scenario::SigintThrice, Binary::Complex), forced);
        groups.insert((Scenario::RunFor, Binary::Simple), Vec::new());
        let svg = draw("t", "s", "ms", &sections(groups));
        let doc = roxmltree::Document::parse(&svg).unwrap();

        let headings: Vec<&str> = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("heading"))
            .filter_map(|n| n.text().map(str::trim))
            .collect();
        assert_eq!(
            headings,
            ["sigint-group", "sigint-thrice"],
            "run-for has nothing to draw"
        );
        let strips: Vec<_> = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("strip"))
            .collect();
        assert_eq!(strips.len(), 3);
        assert_eq!(
            strips.iter().map(|s| attr(*s, "data-count")).collect::<Vec<_>>(),
            [50.0, 50.0, 20.0]
        );

        let axis = doc
            .descendants()
            .find(|n| n.attribute("class") == Some("axis"))
            .unwrap();
        let (x0, x1) = (attr(axis, "data-x0"), attr(axis, "data-x1"));
        assert!(x1 - x0 > 400.0, "the axis has room at 900 px");
        let marks: Vec<_> = doc
            .descendants()
            .filter(|n| matches!(n.attribute("class"), Some("median" | "p99")))
            .collect();
        assert_eq!(marks.len(), 6, "a median and a p99 for each row with samples");
        let points = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("point"));
        for x in marks
            .iter()
            .map(|m| attr(*m, "data-x"))
            .chain(points.map(|p| attr(p, "cx")))
        {
            assert!((x0..=x1).contains(&x), "{x} outside {x0}..{x1}");
        }
        // Log scale: the forced row's median sits far right of the quick rows'.
        let medians: Vec<f64> = marks
            .iter()
            .filter(|m| m.attribute("class") == Some("median"))
            .map(|m| attr(*m, "data-x"))
            .collect();
        assert!(medians[2] - medians[0] > (x1 - x0) / 2.0);
        assert!(
            medians[0] - x0 > 20.0,
            "the quick exits are not squashed on the left edge"
        );
    }
}

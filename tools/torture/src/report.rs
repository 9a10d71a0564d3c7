//! What a round tells people: the markdown summary, the failing trials' files, and the log
//! excerpt printed for CI.
//!
//! A failure is only useful if someone can replay it and see it: each failing trial keeps
//! its full log, its parameters, what the tool did and when, and the command line that
//! replays it alone.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::check::{self, Invariant, Log, Violation};
use crate::env::EnvKind;
use crate::phase::Phase;
use crate::plan::TrialPlan;
use crate::scenario::{Binary, Scenario};
use crate::trial::Observation;

/// A trial and its verdict.
#[derive(Debug)]
pub struct Outcome {
    /// What happened.
    pub observation: Observation,
    /// What broke the contract (empty: the trial passed).
    pub violations: Vec<Violation>,
    /// Where its files were written, if it failed.
    pub saved: Option<PathBuf>,
}

impl Outcome {
    /// Whether the trial failed.
    pub fn failed(&self) -> bool {
        !self.violations.is_empty()
    }

    fn plan(&self) -> &TrialPlan {
        &self.observation.plan
    }
}

/// How the round was run, for the summary's header.
pub struct RoundInfo {
    /// The command line that replays the whole round.
    pub command: String,
    /// Wall-clock time of the round.
    pub wall: Duration,
    /// `--jobs`.
    pub jobs: usize,
    /// Which build was under test.
    pub binaries: String,
}

/// The nearest-rank percentile `p` (0–100) of sorted `values`.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn ms(duration: Option<Duration>) -> String {
    duration.map_or_else(|| "–".to_owned(), |d| format!("{} ms", d.as_millis()))
}

/// The round's summary, in markdown.
pub fn summary(outcomes: &[Outcome], info: &RoundInfo) -> String {
    let mut out = String::new();
    let failed = outcomes.iter().filter(|o| o.failed()).count();
    let _ = writeln!(
        out,
        "## Torture round: {} trials, {failed} failed\n",
        outcomes.len()
    );
    let _ = writeln!(out, "`{}`\n", info.command);
    let _ = writeln!(out, "Binaries: {}.\n", info.binaries);
    let _ = writeln!(
        out,
        "Wall time {:.1} s with {} jobs. Latency: signal sent → main process reaped (for \
         kill-worker, from the SIGINT; for kill-main, SIGKILL → last worker gone); taken with {} trials at once on a shared machine.\n",
        info.wall.as_secs_f64(),
        info.jobs,
        info.jobs
    );

    let _ = writeln!(
        out,
        "| scenario | binary | trials | failed | latency median | latency p99 | slowest (trial seed) |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|");
    let mut groups: BTreeMap<(Scenario, Binary), Vec<&Outcome>> = BTreeMap::new();
    for outcome in outcomes {
        groups
            .entry((outcome.plan().scenario, outcome.plan().binary))
            .or_default()
            .push(outcome);
    }
    for ((scenario, binary), group) in &groups {
        let mut latencies: Vec<Duration> = group.iter().filter_map(|o| o.observation.latency()).collect();
        latencies.sort_unstable();
        let slowest = group
            .iter()
            .filter_map(|o| Some((o.observation.latency()?, o.plan().seed)))
            .max()
            .map_or_else(
                || "–".to_owned(),
                |(latency, seed)| format!("{} ms ({seed})", latency.as_millis()),
            );
        let _ = writeln!(
            out,
            "| {scenario} | {binary} | {} | {} | {} | {} | {slowest} |",
            group.len(),
            group.iter().filter(|o| o.failed()).count(),
            ms(percentile(&latencies, 50.0)),
            ms(percentile(&latencies, 99.0)),
        );
    }
    let mut all: Vec<Duration> = outcomes.iter().filter_map(|o| o.observation.latency()).collect();
    all.sort_unstable();
    let _ = writeln!(
        out,
        "| **all** | | **{}** | **{failed}** | {} | {} | |\n",
        outcomes.len(),
        ms(percentile(&all, 50.0)),
        ms(percentile(&all, 99.0))
    );

    out.push_str(&environment_table(outcomes));

    let _ = writeln!(out, "Failures by invariant (a trial may break several):\n");
    let _ = writeln!(
        out,
        "| invariant | promise | failing trials | first (trial seed) |"
    );
    let _ = writeln!(out, "|---|---|---:|---|");
    for invariant in Invariant::ALL {
        let hits: Vec<&Outcome> = outcomes
            .iter()
            .filter(|o| o.violations.iter().any(|v| v.invariant == invariant))
            .collect();
        let first = hits
            .first()
            .map_or_else(String::new, |o| o.plan().seed.to_string());
        let _ = writeln!(
            out,
            "| {invariant} | {} | {} | {first} |",
            invariant.promise(),
            hits.len()
        );
    }

    let _ = writeln!(
        out,
        "\nWhere the first action landed (from the lines received before it):\n"
    );
    let _ = write!(out, "| binary |");
    for phase in Phase::ALL {
        let _ = write!(out, " {phase} |");
    }
    let _ = writeln!(out, "\n|---|{}", "---:|".repeat(Phase::ALL.len()));
    for binary in [Binary::Simple, Binary::Complex] {
        let mine: Vec<&Outcome> = outcomes.iter().filter(|o| o.plan().binary == binary).collect();
        if mine.is_empty() {
            continue;
        }
        let _ = write!(out, "| {binary} |");
        for phase in Phase::ALL {
            let count = mine.iter().filter(|o| o.observation.phase == Some(phase)).count();
            let _ = write!(out, " {count} |");
        }
        let _ = writeln!(out);
    }
    out.push_str(&life_table(outcomes));

    let stalled = |o: &&Outcome| o.observation.stall.is_some_and(|s| s >= SUSPECT_STALL);
    let _ = writeln!(
        out,
        "\nThe tool itself was stalled ≥ {} ms (a starved machine) during {} trial(s), {} of them failing.",
        SUSPECT_STALL.as_millis(),
        outcomes.iter().filter(stalled).count(),
        outcomes.iter().filter(|o| o.failed()).filter(stalled).count()
    );

    let failing: Vec<&Outcome> = outcomes.iter().filter(|o| o.failed()).collect();
    if !failing.is_empty() {
        let _ = writeln!(out, "\nFailing trials:\n");
        for outcome in failing {
            let names: Vec<&str> = outcome.violations.iter().map(|v| v.invariant.name()).collect();
            let _ = writeln!(
                out,
                "- trial {} (seed {}), {} {}, {}: {}{}; files: {}; replay: `{}`",
                outcome.plan().index,
                outcome.plan().seed,
                outcome.plan().binary,
                outcome.plan().scenario,
                outcome.plan().environment,
                names.join(", "),
                outcome
                    .observation
                    .stall
                    .filter(|s| *s >= SUSPECT_STALL)
                    .map_or_else(String::new, |s| format!(" (tool stalled {} ms)", s.as_millis())),
                outcome
                    .saved
                    .as_ref()
                    .map_or("(not saved)".into(), |p| p.display().to_string()),
                outcome.plan().reproduce()
            );
        }
    }
    out
}

/// Per environment: how many trials, how many failed, the latency, and how often the log
/// was incomplete (lines dropped by a stalled sink, or cut by a stall past the exit), which
/// relaxes the checks that read it.
fn environment_table(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "By environment (what the machine did around the run; `plain`: nothing):\n"
    );
    let _ = writeln!(
        out,
        "| environment | trials | failed | latency median | latency p99 | lines dropped | log cut by the stall |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    let mut groups: BTreeMap<EnvKind, Vec<&Outcome>> = BTreeMap::new();
    for outcome in outcomes {
        groups
            .entry(outcome.plan().environment.kind())
            .or_default()
            .push(outcome);
    }
    for (kind, group) in &groups {
        let mut latencies: Vec<Duration> = group.iter().filter_map(|o| o.observation.latency()).collect();
        latencies.sort_unstable();
        let log = |wanted: Log| {
            group
                .iter()
                .filter(|o| check::completeness(&o.observation) == wanted)
                .count()
        };
        let _ = writeln!(
            out,
            "| {kind} | {} | {} | {} | {} | {} | {} |",
            group.len(),
            group.iter().filter(|o| o.failed()).count(),
            ms(percentile(&latencies, 50.0)),
            ms(percentile(&latencies, 99.0)),
            log(Log::Dropped),
            log(Log::Cut),
        );
    }
    out.push('\n');
    out
}

/// For `run-for` trials (no signal): the measured life against the plan's estimate, so the
/// estimate's constants can be checked (`--scenario run-for` is the calibration run).
fn life_table(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    let mut rows = Vec::new();
    for binary in [Binary::Simple, Binary::Complex] {
        let mut ratios: Vec<f64> = outcomes
            .iter()
            .filter(|o| o.plan().binary == binary && o.plan().scenario == Scenario::RunFor && !o.failed())
            .filter_map(|o| {
                let (ended, _) = o.observation.ended?;
                Some(ended.as_secs_f64() / o.plan().life_estimate.as_secs_f64())
            })
            .collect();
        if ratios.is_empty() {
            continue;
        }
        ratios.sort_by(f64::total_cmp);
        let median = ratios[ratios.len() / 2];
        rows.push(format!(
            "| {binary} | {} | {median:.2} | {:.2} | {:.2} |",
            ratios.len(),
            ratios[0],
            ratios[ratios.len() - 1]
        ));
    }
    if !rows.is_empty() {
        let _ = writeln!(
            out,
            "\nLife of the run-for trials, measured / estimated (1.00: the moments span the whole life):\n"
        );
        let _ = writeln!(out, "| binary | trials | median | min | max |");
        let _ = writeln!(out, "|---|---:|---:|---:|---:|");
        for row in rows {
            let _ = writeln!(out, "{row}");
        }
    }
    out
}

/// A stall this long during a trial makes the machine the first suspect of a late stop.
pub const SUSPECT_STALL: Duration = Duration::from_millis(500);

fn stall_note(stall: Duration) -> String {
    let verdict = if stall >= SUSPECT_STALL {
        "the machine starved the tool too: suspect the machine before the suite"
    } else {
        "ordinary noise"
    };
    format!(
        "machine: the tool's own scheduling stalled up to {} ms during this trial ({verdict})",
        stall.as_millis()
    )
}

/// Writes a failing trial's files under `dir`; returns the trial's directory.
pub fn save_failure(dir: &Path, outcome: &Outcome, binaries: &str) -> std::io::Result<PathBuf> {
    let plan = outcome.plan();
    let trial_dir = dir.join(format!("{}-{}-{}", plan.seed, plan.binary, plan.scenario));
    std::fs::create_dir_all(&trial_dir)?;
    let observation = &outcome.observation;
    let mut log = String::new();
    for line in &observation.lines {
        log.push_str(&line.raw);
        log.push('\n');
    }
    std::fs::write(trial_dir.join("stderr.log"), log)?;
    if !observation.stdout.is_empty() {
        let stdout: String = observation
            .stdout
            .iter()
            .map(|l| format!("{}\n", l.raw))
            .collect();
        std::fs::write(trial_dir.join("stdout.log"), stdout)?;
    }
    let report = trial_report(outcome).replacen("\n\n", &format!("\n\nBinaries: {binaries}.\n\n"), 1);
    std::fs::write(trial_dir.join("report.md"), report)?;
    Ok(trial_dir)
}

/// A failing trial in full: parameters, verdict, the tool's timeline, and the lines the
/// violations point at.
pub fn trial_report(outcome: &Outcome) -> String {
    let plan = outcome.plan();
    let observation = &outcome.observation;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Trial {} (seed {}): {} {}\n",
        plan.index, plan.seed, plan.binary, plan.scenario
    );
    let _ = writeln!(out, "Replay alone: `{}`\n", plan.reproduce());
    let _ = writeln!(out, "Command: `{} {}`\n", plan.binary, plan.args().join(" "));
    let _ = writeln!(
        out,
        "Environment: {} (log: {:?}).\n",
        plan.environment,
        check::completeness(observation)
    );
    let _ = writeln!(
        out,
        "Moment {:?} of an estimated life of {:?}; landed in: {}; main pid {}; trial took {:?}.\n",
        plan.moment,
        plan.life_estimate,
        observation
            .phase
            .map_or("(no signal)".to_owned(), |p| p.to_string()),
        observation.main_pid,
        observation.duration
    );
    if let Some(stall) = observation.stall {
        let _ = writeln!(out, "{}\n", stall_note(stall));
    }
    let _ = writeln!(out, "## Violations\n");
    for violation in &outcome.violations {
        let _ = writeln!(out, "- **{}**: {}", violation.invariant, violation.detail);
        for &index in &violation.lines {
            if let Some(line) = observation.lines.get(index) {
                let _ = writeln!(out, "  - line {} (+{:?}): `{}`", index + 1, line.at, line.raw);
            }
        }
    }
    let _ = writeln!(out, "\n## Timeline (since the spawn)\n");
    let mut timeline: Vec<(Duration, String)> = observation.notes.clone();
    for sent in &observation.sent {
        timeline.push((sent.at, format!("sent {} to {:?}", sent.sig.name(), sent.target)));
    }
    if let Some((at, ended)) = observation.ended {
        timeline.push((at, format!("main process reaped: {ended:?}")));
    }
    if let Some(at) = observation.stderr_end {
        timeline.push((at, "stderr ended (every process of the run gone)".into()));
    }
    timeline.sort_by_key(|(at, _)| *at);
    for (at, what) in timeline {
        let _ = writeln!(out, "- +{at:?}: {what}");
    }
    for leftover in &observation.leftovers {
        let _ = writeln!(
            out,
            "- leftover: pid {} state {} `{}`",
            leftover.pid, leftover.state, leftover.cmdline
        );
    }
    let _ = writeln!(
        out,
        "\nFull log: `stderr.log` ({} lines).",
        observation.lines.len()
    );
    out
}

/// A short excerpt for stderr (CI prints it): the verdict, the lines it points at, and the
/// last lines of the run.
pub fn excerpt(outcome: &Outcome) -> String {
    const TAIL: usize = 12;
    let plan = outcome.plan();
    let observation = &outcome.observation;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "---- failing trial {} (seed {}): {} {} ----",
        plan.index, plan.seed, plan.binary, plan.scenario
    );
    let _ = writeln!(out, "replay: {}", plan.reproduce());
    let _ = writeln!(out, "environment: {}", plan.environment);
    for violation in &outcome.violations {
        let _ = writeln!(out, "{}: {}", violation.invariant, violation.detail);
    }
    if let Some(stall) = observation.stall {
        let _ = writeln!(out, "{}", stall_note(stall));
    }
    let mut shown: Vec<usize> = outcome
        .violations
        .iter()
        .flat_map(|v| v.lines.iter().copied())
        .collect();
    let total = observation.lines.len();
    shown.extend(total.saturating_sub(TAIL)..total);
    shown.sort_unstable();
    shown.dedup();
    let mut previous = None;
    for index in shown {
        if previous.is_some_and(|p: usize| index > p + 1) {
            let _ = writeln!(out, "  ...");
        }
        let _ = writeln!(out, "  {:>5} {}", index + 1, observation.lines[index].raw);
        previous = Some(index);
    }
    if let Some(saved) = &outcome.saved {
        let _ = writeln!(out, "full log and report: {}", saved.display());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&values, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&values, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&values[..1], 99.0), Some(Duration::from_millis(1)));
        assert_eq!(percentile(&[], 50.0), None);
    }
}

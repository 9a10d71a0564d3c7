//! A trial's plan: everything random about it, drawn from its seed before it starts.
//!
//! **Reproduction.** Trial `i` of a run with `--seed S` has the trial seed `S + i`, and its
//! plan depends on that number alone (and on the options that fix an aspect: `--binary`,
//! `--scenario`, `--stop-timeout`, `--inject-fault`). So a failing trial replays by itself
//! with `--seed S+i --trials 1` and its binary and scenario: see [`TrialPlan::reproduce`].
//!
//! **The moment.** The signal falls uniformly within the run's whole expected life: start
//! (with the workers' handshake), running (with updates in flight) and the stop that
//! `--run-for` begins. The life is estimated from the time scale with constants measured on
//! the suite ([`life_estimate`]; `torture --calibrate` re-measures them), not measured per
//! trial, so the moment stays a pure function of the seed.

use std::time::Duration;

use crate::env::{EnvKind, Environment};
use crate::rng::Rng;
use crate::scenario::{Binary, Scenario};

/// The options that shape every plan of a run.
#[derive(Clone, Debug)]
pub struct PlanSettings {
    /// `--seed`: trial `i` has seed `seed + i`.
    pub seed: u64,
    /// The binaries to alternate between.
    pub binaries: Vec<Binary>,
    /// The scenarios to choose from (those that apply to the trial's binary).
    pub scenarios: Vec<Scenario>,
    /// `--stop-timeout` passed to every run.
    pub stop_timeout: Duration,
    /// `--inject-fault` passed to `complex`, to prove the tool catches it.
    pub inject_fault: Option<String>,
    /// `--moment`: act at this fraction of the estimated life instead of a random one.
    pub moment: Option<f64>,
    /// `--environment`: the kinds to draw from (empty: `mixed`).
    pub environments: Vec<EnvKind>,
    /// Whether `process-limit` trials can run here (root, setpriv, prlimit).
    pub limit_available: bool,
}

/// `complex`'s own parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComplexParams {
    /// `--workers`.
    pub workers: u64,
    /// `--pool-threads`.
    pub pool_threads: u64,
    /// `--busy-tasks`: sometimes above `--pool-threads`, to fill the pool.
    pub busy_tasks: u64,
    /// `--unshielded`.
    pub unshielded: bool,
}

/// Everything a trial will do, decided before it starts.
#[derive(Clone, Debug)]
pub struct TrialPlan {
    /// The trial's position in this run.
    pub index: u64,
    /// The trial seed (`--seed` + index): reproduces the trial alone.
    pub seed: u64,
    /// Which binary.
    pub binary: Binary,
    /// What happens at the moment.
    pub scenario: Scenario,
    /// `--time-scale`, as passed (four decimals).
    pub time_scale: String,
    /// `--run-for`: a trial whose signal comes late still ends.
    pub run_for: Duration,
    /// `--stop-timeout`.
    pub stop_timeout: Duration,
    /// `--force-after` (passed explicitly, so the checks know it).
    pub force_after: u32,
    /// `complex`'s own parameters; `None` for `simple`.
    pub complex: Option<ComplexParams>,
    /// `--inject-fault`, for `complex` only.
    pub inject_fault: Option<String>,
    /// The expected whole life of the run, spawn to exit.
    pub life_estimate: Duration,
    /// When the scenario acts, counted from the spawn.
    pub moment: Duration,
    /// `--moment`, if the moment was fixed (the replay command repeats it).
    pub fixed_moment: Option<f64>,
    /// The gap between the signals of an escalation.
    pub signal_gap: Duration,
    /// `kill-worker`: from the worker's SIGKILL to the group's SIGINT.
    pub follow_up: Duration,
    /// `kill-worker`: picks the victim among the live workers.
    pub victim_pick: u64,
    /// What the machine around the run does (the environment axis).
    pub environment: Environment,
    /// `--environment`, if fixed (the replay command repeats it).
    pub fixed_environments: Vec<EnvKind>,
}

/// The `--force-after` every trial uses: the suite's default, stated so the checks know it.
pub const FORCE_AFTER: u32 = 3;

impl TrialPlan {
    /// The plan of trial `index` of a run.
    pub fn new(settings: &PlanSettings, index: u64) -> Self {
        let seed = settings.seed.wrapping_add(index);
        // Alternating by seed (not by index) keeps a trial's binary a function of its seed.
        let binary = settings.binaries[(seed % settings.binaries.len() as u64) as usize];
        let applicable: Vec<Scenario> = settings
            .scenarios
            .iter()
            .copied()
            .filter(|s| s.applies_to(binary))
            .collect();
        let scenario = *Rng::stream(seed, "scenario").pick(&applicable);

        let mut params = Rng::stream(seed, "params");
        let time_scale = format!("{:.4}", params.float(0.01, 0.05));
        let factor: f64 = time_scale.parse().unwrap_or(0.03);
        // Between half an update period (10 s scaled) and two and a half: some runs see no
        // update, most see one or two, some are stopped in the middle of one.
        let run_for = Duration::from_millis((params.float(5.0, 25.0) * factor * 1000.0).round() as u64);
        let complex = (binary == Binary::Complex).then(|| {
            let pool_threads = params.int(1..=4);
            ComplexParams {
                workers: params.int(1..=4),
                pool_threads,
                // Up to twice the pool: a full pool must not starve the stop.
                busy_tasks: params.int(0..=2 * pool_threads),
                unshielded: params.chance(0.5),
            }
        });
        let life_estimate = life_estimate(binary, factor, complex.as_ref()) + run_for;

        let environment = Environment::draw(
            seed,
            &settings.environments,
            settings.limit_available,
            binary,
            scenario,
            life_estimate,
        );
        let mut moment = Rng::stream(seed, "moment");
        // Drawn even when fixed, so fixing it leaves the other draws of the stream alone.
        let random_moment = moment.duration_below(life_estimate);
        Self {
            index,
            seed,
            binary,
            scenario,
            time_scale,
            run_for,
            stop_timeout: settings.stop_timeout,
            force_after: FORCE_AFTER,
            inject_fault: settings
                .inject_fault
                .clone()
                .filter(|_| binary == Binary::Complex),
            moment: settings.moment.map_or(random_moment, |fraction| {
                life_estimate.mul_f64(fraction.clamp(0.0, 1.0))
            }),
            fixed_moment: settings.moment,
            signal_gap: Duration::from_micros(moment.int(1_000..=8_000)),
            // Up to the longest item (an update, 5 s scaled) and a bit: the SIGINT may come
            // before the crash is noticed, during the replacement's handshake, or after.
            follow_up: moment
                .duration_below(Duration::from_secs_f64(5.0 * factor) + Duration::from_millis(30)),
            victim_pick: moment.next_u64(),
            environment,
            fixed_environments: settings
                .environments
                .iter()
                .copied()
                .filter(|k| *k != EnvKind::Mixed)
                .collect(),
            life_estimate,
            complex,
        }
    }

    /// The time scale as a number.
    pub fn factor(&self) -> f64 {
        self.time_scale.parse().unwrap_or(0.03)
    }

    /// The binary's command-line arguments.
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "--log-format".into(),
            "json".into(),
            "--log-level".into(),
            "debug".into(),
            "--time-scale".into(),
            self.time_scale.clone(),
            "--run-for".into(),
            format!("{}ms", self.run_for.as_millis()),
            "--stop-timeout".into(),
            humantime::format_duration(self.stop_timeout).to_string(),
            "--force-after".into(),
            self.force_after.to_string(),
        ];
        if let Some(complex) = &self.complex {
            for (flag, value) in [
                ("--workers", complex.workers),
                ("--pool-threads", complex.pool_threads),
                ("--busy-tasks", complex.busy_tasks),
            ] {
                args.push(flag.into());
                args.push(value.to_string());
            }
            if complex.unshielded {
                args.push("--unshielded".into());
            }
        }
        if let Some(fault) = &self.inject_fault {
            args.push("--inject-fault".into());
            args.push(fault.clone());
        }
        args
    }

    /// The command line that replays this trial alone.
    pub fn reproduce(&self) -> String {
        let mut command = format!(
            "scripts/torture --seed {} --trials 1 --binary {} --scenario {} --stop-timeout {}",
            self.seed,
            self.binary,
            self.scenario,
            humantime::format_duration(self.stop_timeout)
        );
        if let Some(fault) = &self.inject_fault {
            command.push_str(&format!(" --inject-fault {fault}"));
        }
        if let Some(fraction) = self.fixed_moment {
            command.push_str(&format!(" --moment {fraction}"));
        }
        if !self.fixed_environments.is_empty() {
            let names: Vec<&str> = self.fixed_environments.iter().map(|k| k.name()).collect();
            command.push_str(&format!(" --environment {}", names.join(",")));
        }
        command
    }

    /// How long after an unexpected death of the main process its workers may live: they
    /// notice at once (end of their stdin) but finish the item in hand, an update at most.
    pub fn orphan_bound(&self) -> Duration {
        Duration::from_secs(2) + Duration::from_secs_f64(5.0 * self.factor())
    }
}

/// The expected life of a run, spawn to exit, without `--run-for`: measured on the suite at
/// several time scales (`torture --calibrate` prints measured against estimated).
///
/// - `simple`: each of its two services takes 1 s (scaled) to start and 1 s to stop.
/// - `complex`: AsyncService2 takes 1 s to start and 1 s to stop; the handshake costs a few
///   ms per worker; the stop waits for the items in hand, on average about half a call
///   (3–5 ms) and, when an update is in flight, part of its 5 s.
pub fn life_estimate(binary: Binary, factor: f64, complex: Option<&ComplexParams>) -> Duration {
    let scaled = |seconds: f64| Duration::from_secs_f64(seconds * factor);
    match binary {
        Binary::Simple => scaled(4.0) + Duration::from_millis(10),
        Binary::Complex => {
            let workers = complex.map_or(4, |c| c.workers);
            scaled(2.0 + 0.5) + Duration::from_millis(20 + 3 * workers)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(seed: u64) -> PlanSettings {
        PlanSettings {
            seed,
            binaries: vec![Binary::Simple, Binary::Complex],
            scenarios: Scenario::ALL.to_vec(),
            stop_timeout: Duration::from_secs(3),
            inject_fault: None,
            moment: None,
            environments: Vec::new(),
            limit_available: true,
        }
    }

    /// The reproduction promise: trial `i` of seed `S` is trial 0 of seed `S + i`.
    #[test]
    fn a_trial_replays_alone_from_its_seed() {
        let run = TrialPlan::new(&settings(1000), 17);
        let alone = TrialPlan::new(&settings(1017), 0);
        assert_eq!(run.seed, alone.seed);
        assert_eq!(run.args(), alone.args());
        assert_eq!(
            (run.binary, run.scenario, run.moment),
            (alone.binary, alone.scenario, alone.moment)
        );
    }

    /// Fixing the scenario on the command line must not move the moment or the parameters.
    #[test]
    fn fixing_the_scenario_keeps_the_rest() {
        let any = TrialPlan::new(&settings(5), 3);
        let fixed = TrialPlan::new(
            &PlanSettings {
                scenarios: vec![Scenario::RunFor],
                ..settings(5)
            },
            3,
        );
        assert_eq!(any.args(), fixed.args());
        assert_eq!(any.moment, fixed.moment);
        assert_eq!(fixed.scenario, Scenario::RunFor);
    }

    #[test]
    fn workers_scenarios_only_go_to_complex() {
        for index in 0..200 {
            let plan = TrialPlan::new(&settings(9), index);
            assert!(plan.scenario.applies_to(plan.binary), "{plan:?}");
            assert!(plan.moment < plan.life_estimate);
            assert_eq!(plan.complex.is_some(), plan.binary == Binary::Complex);
        }
    }
}

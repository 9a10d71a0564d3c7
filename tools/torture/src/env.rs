//! The environment axis: what the machine around the run does during a trial.
//!
//! **Problem.** Varying only *when* a signal lands never finds what breaks once the
//! machine stops cooperating: a stderr nobody reads (a pager, a slow log shipper), no
//! process or thread to spare, a starved CPU, the whole job stopped by Ctrl+Z. Each of
//! those broke the suite's first promise while thousands of trials passed.
//!
//! **Fix.** In a random share of trials (drawn from the trial's seed, like everything else),
//! one environment fault is laid on top of the scenario:
//!
//! | environment | what the tool does |
//! |---|---|
//! | `stall-reader` | stops reading the run's stderr at a random moment for up to 0.8 of the run's estimated life (sometimes past the signal, sometimes past the exit) |
//! | `process-limit` | runs the binary as uid 65534 under `prlimit --nproc=N` (root only; one such trial at a time) |
//! | `cpu-hog` | keeps one or two threads spinning for the whole trial |
//! | `stop-main`, `stop-group` | SIGSTOP to the main process (or the whole group, as Ctrl+Z) at a random moment, SIGCONT 50–800 ms later |
//!
//! The contract still holds: the status, no leftovers, and the exit event last whenever the
//! sink drained before the process ended. What a stalled sink may legitimately lose (lines
//! dropped and counted, or the end of the log when the stall outlasts the process) relaxes
//! only the checks that read those lines: see [`Environment::log_may_be_cut`].

use std::fmt;
use std::time::Duration;

use clap::ValueEnum;

use crate::rng::Rng;
use crate::scenario::{Binary, Scenario};

/// The share of trials with an environment fault when the kinds are drawn (`mixed`).
pub const FAULTY_SHARE: f64 = 0.4;

/// The uid the process-limit trials run as (`nobody`): RLIMIT_NPROC does not bind root.
pub const LIMITED_UID: &str = "65534";

/// A kind of environment, as `--environment` spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum)]
pub enum EnvKind {
    /// A random share of trials get one of the faults below (the default).
    Mixed,
    /// Nothing: the machine cooperates.
    Plain,
    /// The tool stops reading stderr for a while.
    StallReader,
    /// A tight RLIMIT_NPROC for an unprivileged user.
    ProcessLimit,
    /// CPUs kept busy.
    CpuHog,
    /// SIGSTOP, then SIGCONT, to the main process.
    StopMain,
    /// SIGSTOP, then SIGCONT, to the whole group.
    StopGroup,
}

impl EnvKind {
    /// The faults, in the report's order.
    pub const FAULTS: [EnvKind; 5] = [
        Self::StallReader,
        Self::ProcessLimit,
        Self::CpuHog,
        Self::StopMain,
        Self::StopGroup,
    ];

    /// The flag's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mixed => "mixed",
            Self::Plain => "plain",
            Self::StallReader => "stall-reader",
            Self::ProcessLimit => "process-limit",
            Self::CpuHog => "cpu-hog",
            Self::StopMain => "stop-main",
            Self::StopGroup => "stop-group",
        }
    }
}

impl fmt::Display for EnvKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A trial's environment, drawn from its seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Environment {
    /// Nothing special.
    Plain,
    /// Stop reading stderr at `at` (since the spawn) for `length`.
    StallReader {
        /// When the stall begins.
        at: Duration,
        /// How long it lasts.
        length: Duration,
    },
    /// `prlimit --nproc=nproc` as uid 65534.
    ProcessLimit {
        /// The limit.
        nproc: u64,
    },
    /// `threads` threads spinning for the whole trial.
    CpuHog {
        /// How many.
        threads: u64,
    },
    /// SIGSTOP at `at`, SIGCONT `length` later, to the main process or the whole group.
    Stop {
        /// The whole group (Ctrl+Z), or the main process alone.
        group: bool,
        /// When it is stopped.
        at: Duration,
        /// How long it stays stopped.
        length: Duration,
    },
}

impl Environment {
    /// The kind, for the summary's table.
    pub fn kind(self) -> EnvKind {
        match self {
            Self::Plain => EnvKind::Plain,
            Self::StallReader { .. } => EnvKind::StallReader,
            Self::ProcessLimit { .. } => EnvKind::ProcessLimit,
            Self::CpuHog { .. } => EnvKind::CpuHog,
            Self::Stop { group: false, .. } => EnvKind::StopMain,
            Self::Stop { group: true, .. } => EnvKind::StopGroup,
        }
    }

    /// Draws the environment of trial `seed`. `kinds` is `--environment` (`mixed` when
    /// empty); `limit_available` says whether `process-limit` can run here (otherwise it is
    /// never drawn). `life` is the run's estimated life: the moments fall within it.
    pub fn draw(
        seed: u64,
        kinds: &[EnvKind],
        limit_available: bool,
        binary: Binary,
        scenario: Scenario,
        life: Duration,
    ) -> Self {
        let mut rng = Rng::stream(seed, "environment");
        let usable = |k: &&EnvKind| **k != EnvKind::ProcessLimit || limit_available;
        let mixed = kinds.is_empty() || kinds.contains(&EnvKind::Mixed);
        let choices: Vec<EnvKind> = if mixed {
            let faulty = rng.chance(FAULTY_SHARE);
            if faulty {
                EnvKind::FAULTS.iter().filter(usable).copied().collect()
            } else {
                vec![EnvKind::Plain]
            }
        } else {
            kinds.iter().filter(usable).copied().collect()
        };
        let kind = if choices.is_empty() {
            EnvKind::Plain
        } else {
            *rng.pick(&choices)
        };
        // Every draw below happens whatever the kind, so the kind alone changes nothing else.
        let at = rng.duration_below(life.max(Duration::from_millis(1)));
        // Up to most of a life: some stalls end long before the exit, some span the
        // signal, some outlast the run.
        let stall = Duration::from_millis(10) + rng.duration_below(life.mul_f64(0.8));
        let stop = Duration::from_millis(rng.int(50..=800));
        let nproc = match binary {
            Binary::Simple => rng.int(1..=10),
            Binary::Complex => rng.int(1..=48),
        };
        let threads = rng.int(1..=2);
        match kind {
            EnvKind::Mixed | EnvKind::Plain => Self::Plain,
            EnvKind::StallReader => Self::StallReader { at, length: stall },
            EnvKind::ProcessLimit => Self::ProcessLimit { nproc },
            EnvKind::CpuHog => Self::CpuHog { threads },
            EnvKind::StopMain => Self::Stop {
                group: false,
                at,
                length: stop,
            },
            // A group stopped when its leader is SIGKILLed would leave its workers stopped
            // with nobody to continue them (the leader's group id may not be signalled once
            // it is reaped): kill-main stops the main process alone.
            EnvKind::StopGroup => Self::Stop {
                group: scenario != Scenario::KillMain,
                at,
                length: stop,
            },
        }
    }

    /// How much longer than usual the run may take: the time it was kept stopped.
    pub fn extra_time(self) -> Duration {
        match self {
            Self::Stop { length, .. } => length,
            _ => Duration::ZERO,
        }
    }

    /// When the tool's reading of stderr resumes, since the spawn, if it stalls.
    pub fn stall_end(self) -> Option<Duration> {
        match self {
            Self::StallReader { at, length } => Some(at + length),
            _ => None,
        }
    }

    /// Whether the log of a run that ended at `ended_at` (since the spawn) may be cut at its
    /// end: the stall outlasted the process, and a process waits only a bounded time (1 s)
    /// for its sink before it exits, so its last lines, the exit event too, may be lost.
    pub fn log_may_be_cut(self, ended_at: Option<Duration>) -> bool {
        match (self.stall_end(), ended_at) {
            (Some(end), Some(ended)) => end >= ended,
            (Some(_), None) => true,
            _ => false,
        }
    }

    /// The wrapper command the binary runs under, ending with `--`: for `process-limit`.
    pub fn wrapper(self) -> Vec<String> {
        match self {
            Self::ProcessLimit { nproc } => vec![
                "setpriv".into(),
                format!("--reuid={LIMITED_UID}"),
                format!("--regid={LIMITED_UID}"),
                "--clear-groups".into(),
                "prlimit".into(),
                format!("--nproc={nproc}"),
                "--".into(),
            ],
            _ => Vec::new(),
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: &Duration| d.as_millis();
        match self {
            Self::Plain => f.write_str("plain"),
            Self::StallReader { at, length } => {
                write!(f, "stall-reader at {} ms for {} ms", ms(at), ms(length))
            }
            Self::ProcessLimit { nproc } => {
                write!(f, "process-limit: uid {LIMITED_UID}, --nproc={nproc}")
            }
            Self::CpuHog { threads } => write!(f, "cpu-hog: {threads} spinning thread(s)"),
            Self::Stop { group, at, length } => write!(
                f,
                "{} at {} ms for {} ms",
                if *group { "stop-group" } else { "stop-main" },
                ms(at),
                ms(length)
            ),
        }
    }
}

/// Whether `process-limit` trials can run here: root, `setpriv` and `prlimit`.
pub fn process_limit_available() -> bool {
    // SAFETY: geteuid(2) cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    root && ["setpriv", "prlimit"].iter().all(|tool| {
        std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIFE: Duration = Duration::from_millis(300);

    #[test]
    fn mixed_gives_a_share_of_faults_and_never_an_unavailable_one() {
        let draws: Vec<Environment> = (0..1000)
            .map(|seed| Environment::draw(seed, &[], false, Binary::Complex, Scenario::SigintGroup, LIFE))
            .collect();
        let faulty = draws.iter().filter(|e| **e != Environment::Plain).count();
        assert!((300..500).contains(&faulty), "{faulty} faulty of 1000");
        assert!(!draws.iter().any(|e| e.kind() == EnvKind::ProcessLimit));
        for kind in [
            EnvKind::StallReader,
            EnvKind::CpuHog,
            EnvKind::StopMain,
            EnvKind::StopGroup,
        ] {
            assert!(draws.iter().any(|e| e.kind() == kind), "{kind} never drawn");
        }
    }

    #[test]
    fn a_fixed_kind_is_always_that_kind_and_a_seed_replays_it() {
        for seed in 0..50 {
            let env = Environment::draw(
                seed,
                &[EnvKind::StopGroup],
                true,
                Binary::Simple,
                Scenario::RunFor,
                LIFE,
            );
            assert_eq!(env.kind(), EnvKind::StopGroup);
            assert_eq!(
                env,
                Environment::draw(
                    seed,
                    &[EnvKind::StopGroup],
                    true,
                    Binary::Simple,
                    Scenario::RunFor,
                    LIFE
                )
            );
        }
        let killed = Environment::draw(
            1,
            &[EnvKind::StopGroup],
            true,
            Binary::Complex,
            Scenario::KillMain,
            LIFE,
        );
        assert_eq!(killed.kind(), EnvKind::StopMain);
    }

    #[test]
    fn a_stall_that_outlasts_the_run_may_cut_the_log() {
        let stall = Environment::StallReader {
            at: Duration::from_millis(100),
            length: Duration::from_millis(500),
        };
        assert!(stall.log_may_be_cut(Some(Duration::from_millis(400))));
        assert!(!stall.log_may_be_cut(Some(Duration::from_millis(900))));
        assert!(!Environment::Plain.log_may_be_cut(Some(Duration::ZERO)));
    }
}

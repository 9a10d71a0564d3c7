//! What a trial does to the run, and to which binary: the vocabulary shared by the plan, the
//! trial, the checks and the report.

use std::fmt;

use clap::ValueEnum;

/// One of the suite's two binaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum)]
pub enum Binary {
    /// Two async services.
    Simple,
    /// Async services over a blocking pool over worker processes.
    Complex,
}

impl Binary {
    /// The executable's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Simple => "simple",
            Self::Complex => "complex",
        }
    }
}

impl fmt::Display for Binary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which binaries a run exercises (`--binary`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BinaryChoice {
    /// Only `simple`.
    Simple,
    /// Only `complex`.
    Complex,
    /// Both, alternating from trial to trial.
    Both,
}

impl BinaryChoice {
    /// The binaries chosen, in a fixed order.
    pub fn binaries(self) -> &'static [Binary] {
        match self {
            Self::Simple => &[Binary::Simple],
            Self::Complex => &[Binary::Complex],
            Self::Both => &[Binary::Simple, Binary::Complex],
        }
    }
}

/// What happens at the trial's random moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum)]
pub enum Scenario {
    /// SIGINT to the whole process group, as a terminal's Ctrl+C.
    SigintGroup,
    /// SIGTERM to the main process alone, as `kill` or an init system.
    SigtermMain,
    /// SIGHUP to the main process alone, as a closed terminal's session leader would.
    SighupMain,
    /// Two SIGINTs to the group a few ms apart: the second is counted.
    SigintTwice,
    /// Three SIGINTs to the group a few ms apart: the third forces the exit.
    SigintThrice,
    /// SIGKILL to one live worker (complex), then, later, SIGINT to the group.
    KillWorker,
    /// SIGKILL to the main process (complex): every worker must notice and leave.
    KillMain,
    /// No signal at all: `--run-for` ends the run, status 0.
    RunFor,
}

impl Scenario {
    /// Every scenario, in the report's order.
    pub const ALL: [Scenario; 8] = [
        Self::SigintGroup,
        Self::SigtermMain,
        Self::SighupMain,
        Self::SigintTwice,
        Self::SigintThrice,
        Self::KillWorker,
        Self::KillMain,
        Self::RunFor,
    ];

    /// The flag's spelling (`sigint-group`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::SigintGroup => "sigint-group",
            Self::SigtermMain => "sigterm-main",
            Self::SighupMain => "sighup-main",
            Self::SigintTwice => "sigint-twice",
            Self::SigintThrice => "sigint-thrice",
            Self::KillWorker => "kill-worker",
            Self::KillMain => "kill-main",
            Self::RunFor => "run-for",
        }
    }

    /// Whether the scenario makes sense for `binary` (`simple` has no workers).
    pub fn applies_to(self, binary: Binary) -> bool {
        !matches!(
            (self, binary),
            (Self::KillWorker | Self::KillMain, Binary::Simple)
        )
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A signal the tool sends: the suite's one type for them, shared with the integration tests.
pub use logread::Signal;

//! Where in the run's life a signal landed, read from the lines received before it: proof
//! that the random moments cover start, handshake, running, updates and the stop.
//!
//! Only for the coverage table: a line is received a little after it is written, so the
//! phase is approximate at its edges. No check depends on it.

use std::fmt;

use logread::Event as Line;

/// A stretch of the run's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// Not a line yet: signal intake may not be in place.
    PreIntake,
    /// Starting (outside the workers' handshake).
    Start,
    /// `MPM: starting` until `MPM: started`: workers spawning and handshaking.
    Handshake,
    /// Started, idle or busy with calls.
    Running,
    /// Running, with an update in flight.
    Update,
    /// The stop (or a forced exit) under way.
    Stop,
    /// The exit event is written; the process is ending.
    Exiting,
    /// The process had ended: nothing was sent.
    AfterExit,
}

impl Phase {
    /// Every phase, in life order (the report's columns).
    pub const ALL: [Phase; 8] = [
        Self::PreIntake,
        Self::Start,
        Self::Handshake,
        Self::Running,
        Self::Update,
        Self::Stop,
        Self::Exiting,
        Self::AfterExit,
    ];

    /// The column's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::PreIntake => "pre-intake",
            Self::Start => "start",
            Self::Handshake => "handshake",
            Self::Running => "running",
            Self::Update => "update",
            Self::Stop => "stop",
            Self::Exiting => "exiting",
            Self::AfterExit => "after exit",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Follows the main process's lines and knows the current phase.
#[derive(Debug)]
pub struct PhaseTracker {
    phase: Phase,
}

impl Default for PhaseTracker {
    fn default() -> Self {
        Self {
            phase: Phase::PreIntake,
        }
    }
}

impl PhaseTracker {
    /// The phase after the lines seen so far.
    pub fn current(&self) -> Phase {
        self.phase
    }

    /// Takes one more line into account.
    pub fn observe(&mut self, line: &Line) {
        if !line.is_main() {
            return;
        }
        let past_start = matches!(self.phase, Phase::Stop | Phase::Exiting);
        self.phase = if line.is_exit() {
            Phase::Exiting
        } else if past_start {
            self.phase
        } else if line.is("app", "stopping") || line.is("app", "failed") || line.is_forced_exit() {
            Phase::Stop
        } else if line.is("MPM", "starting") {
            Phase::Handshake
        } else if line.is("MPM", "started") || line.is("MPM", "failed") {
            Phase::Start
        } else if line.is("app", "started") {
            Phase::Running
        } else if self.phase == Phase::PreIntake {
            Phase::Start
        } else if matches!(self.phase, Phase::Running | Phase::Update) {
            // An update is the manager's steps `update-started`, then `update-finished` or
            // `update-failed`.
            match line.event() {
                Some("update-started") => Phase::Update,
                Some("update-finished" | "update-failed") => Phase::Running,
                _ => self.phase,
            }
        } else {
            self.phase
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn main_line(fields: &str) -> Line {
        logread::parse(format!(r#"{{"process":"main",{fields}}}"#))
    }

    #[test]
    fn follows_a_complex_life() {
        let mut tracker = PhaseTracker::default();
        assert_eq!(tracker.current(), Phase::PreIntake);
        let steps = [
            (r#""message":"main: begin""#, Phase::Start),
            (r#""component":"MPM","phase":"starting""#, Phase::Handshake),
            (r#""component":"MPM","phase":"started""#, Phase::Start),
            (r#""component":"app","phase":"started""#, Phase::Running),
            (r#""event":"update-started""#, Phase::Update),
            (r#""event":"update-finished","version":2"#, Phase::Running),
            (r#""event":"update-started""#, Phase::Update),
            (r#""event":"update-failed""#, Phase::Running),
            (r#""component":"app","phase":"stopping""#, Phase::Stop),
            (r#""event":"update-started""#, Phase::Stop),
            (r#""component":"app","phase":"exit""#, Phase::Exiting),
        ];
        for (fields, expected) in steps {
            tracker.observe(&main_line(fields));
            assert_eq!(tracker.current(), expected, "after {fields}");
        }
    }
}

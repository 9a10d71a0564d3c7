//! `DummyManager`: the reference's stand-in for CPU-heavy work (think of a YARA rules
//! manager: `process_*` would be `match()`, `update()` would reload the rules).
//!
//! Each piece of work begins with one line, `event=work` and `method` (`process_string`,
//! `process_number`, `update`): what a worker has in hand, for the tests and the timeline.

use std::time::Duration;

use graceful::demo::TimeScale;

use crate::mpm::shared::protocol::Method;

/// How long loading the manager takes (think of compiling the rules), before scaling.
const LOAD: Duration = Duration::from_secs(1);

/// The longest a load may take whatever the scale: the handshake waits 30 s for `started`.
const LOAD_AT_MOST: Duration = Duration::from_secs(10);

/// The simulated heavy worker living inside each worker process.
pub struct DummyManager {
    version: u64,
    time_scale: TimeScale,
}

impl DummyManager {
    /// A manager at version 1, whose work takes the reference's times, scaled. Loading it
    /// takes [`LOAD`] scaled (at most [`LOAD_AT_MOST`], well inside the handshake's bound):
    /// the worker's own start, long enough at the default scale for a person to press
    /// Ctrl+C during `MPM: starting`, and nothing at `--time-scale 0`.
    pub fn load(time_scale: TimeScale) -> Self {
        std::thread::sleep(time_scale.scale(LOAD).min(LOAD_AT_MOST));
        Self {
            version: 1,
            time_scale,
        }
    }

    /// Runs one call: 0.5 s for `process_string`, 0.3 s for `process_number`, scaled.
    /// Returns the version it ran at.
    pub fn process(&mut self, method: &Method) -> u64 {
        tracing::debug!(event = "work", method = method.name(), "DummyManager.{method}");
        self.time_scale.block(match method {
            Method::ProcessString(_) => Duration::from_millis(500),
            Method::ProcessNumber(_) => Duration::from_millis(300),
        });
        self.version
    }

    /// 5 s of simulated work (scaled), then the version goes up by one.
    pub fn update(&mut self) -> u64 {
        tracing::info!(
            event = "work",
            method = "update",
            "DummyManager.update: version {} -> {}",
            self.version,
            self.version + 1
        );
        self.time_scale.block(Duration::from_secs(5));
        self.version += 1;
        self.version
    }
}

//! `--time-scale`: the simulated work's delays, scaled, and skipped when they scale to zero.
//!
//! A zero-length tokio sleep still waits for the next timer tick (about 1 ms), which would
//! make `--time-scale 0` measure the timer instead of the machinery; so a zero delay is not
//! slept at all. A periodic task keeps a floor of [`PERIOD_FLOOR`] so it cannot spin.

use std::time::Duration;

/// The shortest period a periodic task may have, whatever the scale.
pub const PERIOD_FLOOR: Duration = Duration::from_millis(10);

/// A factor applied to every simulated delay (1.0: as in the reference; 0: none).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimeScale(f64);

impl TimeScale {
    /// `factor` must be finite and not negative; [`parse`](Self::parse) checks that.
    pub fn new(factor: f64) -> Self {
        Self(factor.max(0.0))
    }

    /// Parses a `--time-scale` value.
    pub fn parse(text: &str) -> Result<Self, String> {
        let factor: f64 = text.parse().map_err(|_| format!("`{text}` is not a number"))?;
        if !(0.0..=1_000.0).contains(&factor) {
            return Err(format!(
                "{factor} is out of range: expected 0 to 1000 (0 skips every delay)"
            ));
        }
        Ok(Self(factor))
    }

    /// The factor.
    pub fn factor(self) -> f64 {
        self.0
    }

    /// `delay` scaled.
    pub fn scale(self, delay: Duration) -> Duration {
        delay.mul_f64(self.0)
    }

    /// A period scaled, but never below [`PERIOD_FLOOR`].
    pub fn period(self, period: Duration) -> Duration {
        self.scale(period).max(PERIOD_FLOOR)
    }

    /// Sleeps `delay` scaled; returns at once when that is zero. Cancel-safe.
    pub async fn sleep(self, delay: Duration) {
        let scaled = self.scale(delay);
        if !scaled.is_zero() {
            tokio::time::sleep(scaled).await;
        }
    }

    /// Blocks the thread for `delay` scaled (the simulated CPU-bound work).
    pub fn block(self, delay: Duration) {
        let scaled = self.scale(delay);
        if !scaled.is_zero() {
            std::thread::sleep(scaled);
        }
    }
}

impl Default for TimeScale {
    fn default() -> Self {
        Self(1.0)
    }
}

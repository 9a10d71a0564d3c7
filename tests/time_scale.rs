//! The demos' `--time-scale` ([`graceful::demo::TimeScale`]): a zero scale skips every
//! delay, a period keeps its floor, and a value out of range is refused.
#![cfg(feature = "demo")]

use std::time::Duration;

use graceful::demo::{PERIOD_FLOOR, TimeScale};

#[test]
fn zero_scale_skips_and_periods_keep_a_floor() {
    let zero = TimeScale::parse("0").unwrap();
    assert_eq!(zero.scale(Duration::from_secs(5)), Duration::ZERO);
    assert_eq!(zero.period(Duration::from_secs(10)), PERIOD_FLOOR);
    let tenth = TimeScale::parse("0.1").unwrap();
    assert_eq!(tenth.scale(Duration::from_secs(5)), Duration::from_millis(500));
}

#[test]
fn bad_values_are_refused() {
    for bad in ["-1", "NaN", "inf", "x", "1e9"] {
        assert!(TimeScale::parse(bad).is_err(), "{bad} accepted");
    }
}

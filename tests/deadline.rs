//! [`Deadline`] as an embedder waits with it: a wake-up long after its slice costs one
//! slice, a party that never answers fails within the bound, and the async form spends
//! tokio's (here paused) clock.

use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use graceful::deadline::Deadline;

#[test]
fn a_wake_up_long_after_its_slice_costs_one_slice() {
    let mut deadline = Deadline::after(Duration::from_millis(320));
    // A process stopped in the middle of its wait wakes far past the slice's end.
    let slice = deadline
        .slice(|slice| {
            std::thread::sleep(slice + Duration::from_millis(400));
            slice
        })
        .unwrap();
    assert_eq!(slice, Duration::from_millis(10));
    assert_eq!(
        deadline.left(),
        Duration::from_millis(310),
        "one slice spent, not 410 ms"
    );
}

#[test]
fn a_party_that_never_answers_fails_within_the_bound_plus_a_tenth() {
    let (_keep, channel) = std::sync::mpsc::channel::<()>();
    let bound = Duration::from_millis(1_000);
    let started = Instant::now();
    let received = Deadline::after(bound).recv(&channel);
    let waited = started.elapsed();
    assert_eq!(received, Err(RecvTimeoutError::Timeout));
    assert!(waited >= bound && waited <= bound + bound / 10, "{waited:?}");
}

#[test]
fn shorten_only_ever_shortens() {
    let mut deadline = Deadline::after(Duration::from_secs(30));
    deadline.shorten(Duration::from_secs(60));
    assert_eq!(deadline.left(), Duration::from_secs(30));
    deadline.shorten(Duration::from_secs(10));
    assert_eq!(deadline.left(), Duration::from_secs(10));
    deadline.shorten(Duration::ZERO);
    assert!(deadline.is_spent());
    assert_eq!(deadline.slice(|_| ()), None);
}

#[tokio::test(start_paused = true)]
async fn the_async_form_spends_the_bound_on_tokio_s_clock() {
    let mut deadline = Deadline::after(Duration::from_secs(30));
    let never = std::future::pending::<()>();
    tokio::pin!(never);
    assert_eq!(deadline.within(&mut never).await, None);
    let mut deadline = Deadline::after(Duration::from_secs(30));
    assert_eq!(deadline.within(Box::pin(async { 7 })).await, Some(7));
    assert_eq!(deadline.left(), Duration::from_secs(30));
}

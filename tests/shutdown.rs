//! The controller's promises, each on its own, through the public [`Shutdown`] handle as
//! an embedder holds it: delivery after the shield, the seal, the first reason kept, the
//! force handler at the Nth signal.

use graceful::{Shutdown, ShutdownSignal, StopReason};

#[test]
fn signal_during_start_is_delivered_when_the_shield_drops() {
    let shutdown = Shutdown::new(3);
    let guard = shutdown.shield("start");
    shutdown.on_signal(ShutdownSignal::Interrupt);
    assert!(shutdown.is_requested());
    assert!(!shutdown.token().is_cancelled(), "delivered mid-start");
    drop(guard);
    assert!(shutdown.token().is_cancelled());
    assert_eq!(shutdown.first_signal(), Some(ShutdownSignal::Interrupt));
}

#[test]
fn a_signal_after_the_seal_changes_nothing_and_one_before_it_decides() {
    let shutdown = Shutdown::new(3);
    shutdown.request(StopReason::RunForElapsed);
    shutdown.on_signal(ShutdownSignal::Hangup);
    assert_eq!(shutdown.seal(), Some(ShutdownSignal::Hangup));
    let sealed = Shutdown::new(1);
    sealed.request(StopReason::RunForElapsed);
    assert_eq!(sealed.seal(), None);
    // Even the forcing signal: the exit is already on its way.
    sealed.on_signal(ShutdownSignal::Interrupt);
    assert_eq!(sealed.first_signal(), None);
    assert!(sealed.forced_reason().is_none());
}

#[test]
fn later_request_does_not_replace_the_first_reason() {
    let shutdown = Shutdown::new(3);
    shutdown.request(StopReason::RunForElapsed);
    shutdown.on_signal(ShutdownSignal::Terminate);
    assert_eq!(shutdown.reason(), Some(StopReason::RunForElapsed));
    // ... but the process still ends by the signal it received.
    assert_eq!(shutdown.first_signal(), Some(ShutdownSignal::Terminate));
    // A fatal error during that stop is not lost: it decides the exit status.
    shutdown.request(StopReason::Fatal("restart budget exhausted".into()));
    assert_eq!(shutdown.fatal().as_deref(), Some("restart budget exhausted"));
}

#[test]
fn third_signal_calls_the_force_handler() {
    let shutdown = Shutdown::new(3);
    let (tx, rx) = std::sync::mpsc::channel();
    shutdown.set_force_handler(move |reason| tx.send(reason.to_string()).unwrap());
    let _stop = shutdown.shield("stop");
    shutdown.on_signal(ShutdownSignal::Interrupt);
    shutdown.on_signal(ShutdownSignal::Interrupt);
    assert!(rx.try_recv().is_err());
    shutdown.on_signal(ShutdownSignal::Hangup);
    assert_eq!(rx.try_recv().unwrap(), "SIGHUP was shutdown signal #3");
}

#[test]
fn the_signal_count_is_watched_from_the_first_signal() {
    let shutdown = Shutdown::new(3);
    let mut count = shutdown.signal_count();
    shutdown.request(StopReason::RunForElapsed);
    assert!(!count.has_changed().unwrap(), "a request is not a signal");
    shutdown.on_signal(ShutdownSignal::Terminate);
    shutdown.on_signal(ShutdownSignal::Terminate);
    assert_eq!(*count.borrow_and_update(), 2);
    shutdown.seal();
    shutdown.on_signal(ShutdownSignal::Terminate);
    assert!(
        !count.has_changed().unwrap(),
        "a signal after the seal is not counted"
    );
}

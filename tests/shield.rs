//! The shield as an embedder holds it ([`Shield`], [`ShieldGuard`](graceful::ShieldGuard)):
//! a deferred action waits for the last guard, however the guards nest and on whichever
//! threads they are held, and none is ever lost to a race with the last drop.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use graceful::Shield;

fn counter() -> (Arc<AtomicU32>, impl Fn() -> Box<dyn FnOnce() + Send>) {
    let count = Arc::new(AtomicU32::new(0));
    let c = count.clone();
    (count, move || {
        let c = c.clone();
        Box::new(move || {
            c.fetch_add(1, SeqCst);
        })
    })
}

#[test]
fn unshielded_request_runs_at_once() {
    let shield = Shield::new();
    let (ran, action) = counter();
    shield.defer(action());
    assert_eq!(ran.load(SeqCst), 1);
}

#[test]
fn request_is_delayed_until_the_guard_drops() {
    let shield = Shield::new();
    let (ran, action) = counter();
    let guard = shield.hold();
    shield.defer(action());
    assert_eq!(ran.load(SeqCst), 0, "must not run while shielded");
    drop(guard);
    assert_eq!(ran.load(SeqCst), 1, "must run when the shield lifts");
    assert!(!shield.is_held());
}

#[test]
fn nested_guards_deliver_on_the_last_drop_only() {
    let shield = Shield::new();
    let (ran, action) = counter();
    let outer = shield.hold();
    let inner = shield.hold();
    shield.defer(action());
    drop(inner);
    assert_eq!(ran.load(SeqCst), 0, "outer guard still held");
    drop(outer);
    assert_eq!(ran.load(SeqCst), 1);
}

#[test]
fn several_requests_are_all_kept_and_run_once_each() {
    let shield = Shield::new();
    let order = Arc::new(Mutex::new(Vec::new()));
    let guard = shield.hold();
    for n in 0..3 {
        let order = order.clone();
        shield.defer(move || order.lock().unwrap().push(n));
    }
    drop(guard);
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2]);
    // A later hold/drop does not replay them.
    drop(shield.hold());
    assert_eq!(order.lock().unwrap().len(), 3);
}

#[test]
fn guards_on_several_threads_deliver_when_the_last_thread_lets_go() {
    let shield = Shield::new();
    let (ran, action) = counter();
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let mut releases = Vec::new();
    let mut threads = Vec::new();
    for _ in 0..4 {
        let shield = shield.clone();
        let held_tx = held_tx.clone();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        releases.push(release_tx);
        threads.push(std::thread::spawn(move || {
            let _guard = shield.hold();
            held_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        }));
    }
    for _ in 0..4 {
        held_rx.recv().unwrap();
    }
    shield.defer(action());
    for (i, (release, thread)) in releases.into_iter().zip(threads).enumerate() {
        assert_eq!(ran.load(SeqCst), 0, "ran with {} guards still held", 4 - i);
        release.send(()).unwrap();
        thread.join().unwrap();
    }
    assert_eq!(ran.load(SeqCst), 1);
}

/// The store-then-load handover: a deferral racing the last guard's drop must run.
#[test]
fn no_deferral_is_ever_lost() {
    for _ in 0..2_000 {
        let shield = Shield::new();
        let (ran, action) = counter();
        let guard = shield.hold();
        let racer = {
            let shield = shield.clone();
            let action = action();
            std::thread::spawn(move || shield.defer(action))
        };
        drop(guard);
        racer.join().unwrap();
        assert_eq!(ran.load(SeqCst), 1);
    }
}

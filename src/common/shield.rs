//! Lesson 1 of the reference: **`DelayedKeyboardInterrupt` shields the start and the stop.**
//! Here, the shield.
//!
//! **Problem.** Python injects `KeyboardInterrupt` into whatever code is running, so the
//! reference swaps the signal handlers while `start()`/`stop()` run and replays the signal
//! afterwards. Rust injects nothing into running code; what still matters is the
//! *deferral*: a request to stop that arrives during start must be neither lost nor acted
//! on mid-start, and must be acted on the moment start is done.
//!
//! **Fix.** A [`Shield`] counts its live guards. [`Shield::defer`] runs an action at once
//! when no guard is held, and otherwise keeps it until the last guard drops, which runs it.
//! Guards nest and may be held from sync or async code on any thread.
//!
//! **Why atomics, not a mutex.** Holding and releasing a guard is on every start/stop path
//! and may sit in hot code; it is two atomic operations and a load. The rare deferral takes
//! a mutex. The handover between the two is the classic store-then-load pair: `defer` stores
//! "pending" then loads the depth; a dropping guard stores the depth then loads "pending".
//! With sequentially consistent ordering at least one of them sees the other's store, so a
//! deferred action is never stranded (`no_deferral_is_ever_lost` in `tests/shield.rs` hammers this).

use crate::sync::LockUnpoisoned;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

type Action = Box<dyn FnOnce() + Send>;

/// Delays actions while any of its guards is held. Cheap to clone: clones share the state.
///
/// Protocol: while any [`ShieldGuard`] lives, [`Shield::defer`] stores its action (the
/// caller logs it as `action=delayed`); when the last guard drops, the stored actions run,
/// on the dropping thread, in the order they were deferred.
#[derive(Clone, Default)]
pub struct Shield {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    depth: AtomicUsize,
    has_pending: AtomicBool,
    pending: Mutex<Vec<Action>>,
}

impl Shield {
    /// A shield with no guard held.
    pub fn new() -> Self {
        Self::default()
    }

    /// Raises the shield until the returned guard drops. Guards nest.
    pub fn hold(&self) -> ShieldGuard {
        self.inner.depth.fetch_add(1, SeqCst);
        ShieldGuard {
            inner: self.inner.clone(),
        }
    }

    /// Whether any guard is held right now (a snapshot: it may change at once).
    pub fn is_held(&self) -> bool {
        self.inner.depth.load(SeqCst) > 0
    }

    /// Runs `action` now if no guard is held (or lets the thread dropping the last guard run
    /// it), otherwise when the last guard drops.
    pub fn defer(&self, action: impl FnOnce() + Send + 'static) {
        self.inner.pending.lock_unpoisoned().push(Box::new(action));
        self.inner.has_pending.store(true, SeqCst);
        if self.inner.depth.load(SeqCst) == 0 {
            self.inner.run_pending();
        }
    }
}

impl Inner {
    fn run_pending(&self) {
        if !self.has_pending.swap(false, SeqCst) {
            return;
        }
        let actions = std::mem::take(&mut *self.pending.lock_unpoisoned());
        // Run outside the lock: an action may log, defer again or take a guard.
        for action in actions {
            action();
        }
    }
}

/// Keeps the shield raised while it lives; dropping the last one runs deferred actions.
#[must_use = "the shield lifts when this guard drops; bind it: `let _shield = shield.hold();`"]
pub struct ShieldGuard {
    inner: Arc<Inner>,
}

impl Drop for ShieldGuard {
    fn drop(&mut self) {
        if self.inner.depth.fetch_sub(1, SeqCst) == 1 && self.inner.has_pending.load(SeqCst) {
            self.inner.run_pending();
        }
    }
}

impl std::fmt::Debug for ShieldGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShieldGuard").finish_non_exhaustive()
    }
}

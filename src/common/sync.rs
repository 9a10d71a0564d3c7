//! Locks that outlive a panic.
//!
//! A thread that panics while holding a `Mutex` poisons it, and `lock().unwrap()` would then
//! turn one bug into a cascade of panics on every thread that touches it, in the middle of a
//! shutdown. The state behind every lock of the suite stays consistent at each step (counts,
//! queues, flags), so the right answer is to take the lock anyway and carry on stopping.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// `lock()` that recovers a poisoned mutex instead of panicking.
pub trait LockUnpoisoned<T> {
    /// Locks, taking over the guard even if a previous holder panicked.
    fn lock_unpoisoned(&self) -> MutexGuard<'_, T>;
}

impl<T> LockUnpoisoned<T> for Mutex<T> {
    fn lock_unpoisoned(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

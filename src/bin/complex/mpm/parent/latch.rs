//! A value set once, awaited by blocking threads within a deadline.

use graceful::deadline::Deadline;
use graceful::sync::LockUnpoisoned;
use std::sync::{Condvar, Mutex};

/// Set once (later sets are ignored); every waiter wakes with the value.
pub struct Latch<T> {
    value: Mutex<Option<T>>,
    set: Condvar,
}

impl<T: Clone> Latch<T> {
    /// An unset latch.
    pub const fn new() -> Self {
        Self {
            value: Mutex::new(None),
            set: Condvar::new(),
        }
    }

    /// Sets the value, unless one is already set, and wakes every waiter.
    pub fn set(&self, value: T) {
        let mut slot = self.value.lock_unpoisoned();
        if slot.is_none() {
            *slot = Some(value);
            self.set.notify_all();
        }
    }

    /// Waits for the value within `deadline`; `None` if it is not set by then.
    pub fn wait_within(&self, deadline: &mut Deadline) -> Option<T> {
        let mut slot = self.value.lock_unpoisoned();
        loop {
            if let Some(value) = slot.as_ref() {
                return Some(value.clone());
            }
            slot = deadline.wait(&self.set, slot)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn first_value_wins_and_wakes_waiters_and_an_unset_one_times_out() {
        let latch = Arc::new(Latch::new());
        let waiter = {
            let latch = latch.clone();
            std::thread::spawn(move || latch.wait_within(&mut Deadline::after(Duration::from_secs(60))))
        };
        latch.set(1);
        latch.set(2);
        assert_eq!(waiter.join().unwrap(), Some(1));
        assert_eq!(latch.wait_within(&mut Deadline::after(Duration::ZERO)), Some(1));
        let unset: Latch<()> = Latch::new();
        assert_eq!(
            unset.wait_within(&mut Deadline::after(Duration::from_millis(5))),
            None
        );
    }
}

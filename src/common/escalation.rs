//! What to do with the Nth shutdown signal: a pure function, so the policy is table-tested
//! and the code that performs it has no decisions of its own to get wrong.
//!
//! Once a program handles SIGINT itself, the default action (die) never comes back on its
//! own: a second Ctrl+C is just another event (tokio's listeners, for one, never restore it:
//! tokio #7905). "Press Ctrl+C again to force" has to be a policy: this one.

/// The decision for one arriving signal; logged as the `action` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignalAction {
    /// First request while a shield is held: recorded, delivered when the last guard drops.
    Delayed,
    /// First request, nothing shielded: the application stops now.
    Shutdown,
    /// A stop is already requested or under way: counted towards forcing the exit.
    /// `remaining` is how many more signals force it (`None` when forcing is disabled).
    Counted {
        /// Signals still needed to force the exit, if forcing is enabled.
        remaining: Option<u32>,
    },
    /// The `--force-after`th signal: the exit is forced now.
    Forced,
}

impl SignalAction {
    /// The `action` field's value in the logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delayed => "delayed",
            Self::Shutdown => "shutdown",
            Self::Counted { .. } => "counted",
            Self::Forced => "forced",
        }
    }
}

/// Decides what the `count`th shutdown signal (1-based, every signal counts) does.
///
/// - `stop_requested`: a stop was already requested (by an earlier signal, by `--run-for`,
///   by a fatal error) or is under way.
/// - `shielded`: a [`Shield`](crate::shield::Shield) guard is held right now.
/// - `force_after`: the count that forces the exit; 0 never forces.
pub fn decide(count: u32, stop_requested: bool, shielded: bool, force_after: u32) -> SignalAction {
    if force_after != 0 && count >= force_after {
        return SignalAction::Forced;
    }
    if stop_requested {
        let remaining = (force_after != 0).then(|| force_after - count);
        return SignalAction::Counted { remaining };
    }
    if shielded {
        SignalAction::Delayed
    } else {
        SignalAction::Shutdown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SignalAction::*;

    #[test]
    fn policy_table() {
        // (count, stop_requested, shielded, force_after) -> action
        let table = [
            ((1, false, false, 3), Shutdown),
            ((1, false, true, 3), Delayed),
            ((1, true, true, 3), Counted { remaining: Some(2) }),
            ((1, true, false, 3), Counted { remaining: Some(2) }),
            ((2, true, true, 3), Counted { remaining: Some(1) }),
            ((3, true, true, 3), Forced),
            ((3, true, false, 3), Forced),
            ((4, true, false, 3), Forced),
            // The very first signal forces when --force-after is 1.
            ((1, false, true, 1), Forced),
            // 0 never forces, however many arrive.
            ((1, false, false, 0), Shutdown),
            ((50, true, true, 0), Counted { remaining: None }),
        ];
        for ((count, requested, shielded, force_after), expected) in table {
            assert_eq!(
                decide(count, requested, shielded, force_after),
                expected,
                "count={count} requested={requested} shielded={shielded} force_after={force_after}"
            );
        }
    }
}

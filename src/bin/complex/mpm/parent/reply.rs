//! What the manager's operations answer, and why they fail.

use std::time::Duration;

use crate::mpm::shared::protocol::Method;

/// What a call or an update answered.
#[derive(Debug)]
pub enum Reply {
    /// A `process_*` call ran at this DummyManager version; the parameter is echoed.
    Processed {
        /// The worker's DummyManager version.
        version: u64,
        /// The parameter, echoed.
        parameter: Method,
    },
    /// An update finished at this version.
    Updated {
        /// The new version.
        version: u64,
    },
}

/// Why a manager operation failed. Messages read after "failed to ...".
#[derive(Debug, thiserror::Error)]
pub enum MpmError {
    /// The manager is stopped (or stopping): nothing new is accepted.
    #[error("MPM is stopped")]
    Stopped,
    /// The stop has begun: new calls are refused.
    #[error("MPM is stopping and takes no new calls")]
    Stopping,
    /// The stop began while the call waited in a worker's queue: it never ran.
    #[error("withdrawn at the stop before a worker began it")]
    Withdrawn,
    /// The stop came first: the caller was released without a result.
    #[error("stopped while waiting for the result")]
    StoppedWhileWaiting,
    /// The stop came in the middle of an update.
    #[error("stopped while updating")]
    StoppedWhileUpdating,
    /// The worker handling the call ended before answering.
    #[error("{worker} crashed while handling the call ({how})")]
    WorkerCrashed {
        /// `worker-N`.
        worker: String,
        /// How it ended.
        how: String,
    },
    /// No worker can take a call right now (every one is being replaced).
    #[error("no worker is available")]
    NoWorker,
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// A worker's process could not be created.
    #[error("{worker} failed to start")]
    SpawnFailed {
        /// `worker-N`.
        worker: String,
        /// What could not be created, and why.
        #[source]
        source: super::child::SpawnError,
    },
    /// A worker failed its handshake, or refused to start (its own words, from its pipe).
    #[error("{worker} failed to start: {cause}")]
    StartFailed {
        /// `worker-N`.
        worker: String,
        /// What went wrong.
        cause: String,
    },
}

impl MpmError {
    /// Whether the call was not run because the stop had begun (refused or withdrawn): the
    /// stop's doing, not a fault.
    pub fn is_the_stop(&self) -> bool {
        matches!(self, Self::Stopping | Self::Withdrawn | Self::Stopped)
    }
}

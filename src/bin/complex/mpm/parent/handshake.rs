//! The parent's half of lesson 7 (synchronise worker start; the lesson is told in
//! `shared/handshake.rs`): every worker must report each step within the step's deadline,
//! or every worker of the handshake is killed and the start fails.

use std::sync::{Arc, mpsc::Receiver, mpsc::RecvTimeoutError};

use graceful::deadline::Deadline;

use super::child::WorkerProcess;
use super::reply::MpmError;
use crate::mpm::shared::handshake::{STEPS, Step};

/// What a worker's monitor heard of its handshake.
#[derive(Debug)]
pub enum Heard {
    /// The worker reported this step.
    Step(Step),
    /// It refused to start, or ended, with this cause.
    Failed(String),
}

/// A worker spawned and being handshaken: the process, and what its monitor hears.
pub struct Handshaking {
    /// The worker.
    pub worker: Arc<WorkerProcess>,
    /// Fed by the worker's monitor.
    pub heard: Receiver<Heard>,
}

/// Runs both steps for `workers`: every one must report each step by its deadline. On
/// failure, every worker of `workers` is killed (their monitors reap them) before this
/// returns the first failure.
pub fn complete(workers: &[Handshaking]) -> Result<(), MpmError> {
    for (step, timeout) in STEPS {
        tracing::debug!(
            event = "handshake",
            step = step.name(),
            workers = workers.len(),
            "MPM: waiting for {} to report {:?} (timeout {timeout:?})",
            match workers {
                [one] => one.worker.name.as_str(),
                _ => "every worker",
            },
            step.name()
        );
        let mut deadline = Deadline::after(timeout);
        for handshaking in workers {
            if let Err(error) = await_step(handshaking, step, &mut deadline) {
                for handshaking in workers {
                    handshaking.worker.kill();
                }
                return Err(error);
            }
        }
    }
    Ok(())
}

/// Waits for `handshaking` to report `step` by `deadline`.
fn await_step(handshaking: &Handshaking, step: Step, deadline: &mut Deadline) -> Result<(), MpmError> {
    let worker = &handshaking.worker;
    let failed = |cause: String| MpmError::StartFailed {
        worker: worker.name.clone(),
        cause,
    };
    match deadline.recv(&handshaking.heard) {
        Ok(Heard::Step(reported)) if reported == step => Ok(()),
        Ok(Heard::Step(reported)) => Err(failed(format!(
            "reported {:?} instead of {:?}",
            reported.name(),
            step.name()
        ))),
        Ok(Heard::Failed(cause)) => Err(failed(cause)),
        Err(RecvTimeoutError::Timeout) => Err(failed(format!("no {:?} report in time", step.name()))),
        Err(RecvTimeoutError::Disconnected) => Err(failed("ended during the handshake".into())),
    }
}

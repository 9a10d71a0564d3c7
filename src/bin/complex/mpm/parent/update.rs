//! `MPM.update`: `update()` in every worker, one round at a time, waiting for all.
//!
//! A worker runs an update before any queued call (its lanes: stop > update > call). A
//! worker being replaced misses the round: its replacement starts at version 1. The round
//! is not withdrawn at the stop (it is the update task's item in hand), but a stop that ends
//! a worker mid-round ends the round with [`MpmError::StoppedWhileUpdating`].

use graceful::sync::LockUnpoisoned;
use std::sync::{atomic::Ordering::SeqCst, mpsc::RecvTimeoutError, mpsc::sync_channel};
use std::time::Duration;

use super::answers::AnswerDeadline;
use super::calls::Waiter;
use super::{Mpm, MpmError, Reply};
use crate::mpm::shared::protocol::Command;

const UPDATE_TIMEOUT: Duration = Duration::from_secs(30);

impl Mpm {
    /// Runs `update()` in every worker, one update at a time; returns the new version.
    pub fn update(&self) -> Result<u64, MpmError> {
        let shared = &self.shared;
        let _one = shared.one_update_at_a_time.lock_unpoisoned();
        shared.open_for_calls()?;
        tracing::info!(event = "update-started", "MPM.update: started");
        let workers: Vec<_> = shared
            .current_workers()
            .into_iter()
            .filter(|w| w.alive.load(SeqCst))
            .collect();
        if workers.is_empty() {
            return Err(MpmError::NoWorker);
        }
        let (reply, replies) = sync_channel(workers.len());
        let mut sent = Vec::new();
        for worker in &workers {
            let id = shared.next_id.fetch_add(1, SeqCst);
            shared.register(id, worker, "update", Waiter::Blocking(reply.clone()))?;
            match worker.stdin.send(&Command::Update { id }) {
                Ok(()) => sent.push((id, worker)),
                Err(_) => drop(shared.take_pending(id)),
            }
        }
        drop(reply);
        let mut deadline = AnswerDeadline::after(UPDATE_TIMEOUT);
        let mut version = 0;
        for _ in 0..sent.len() {
            let answer = match deadline.recv(shared, &replies) {
                Ok(answer) => answer,
                Err(RecvTimeoutError::Timeout) if deadline.in_the_stop => {
                    for (id, worker) in &sent {
                        if shared.take_pending(*id).is_some() {
                            super::Shared::kill_late(worker, "neither answered the update nor stopped");
                        }
                    }
                    Err(MpmError::StoppedWhileUpdating)
                }
                Err(RecvTimeoutError::Timeout) => Err(MpmError::Timeout(UPDATE_TIMEOUT)),
                Err(RecvTimeoutError::Disconnected) => break,
            };
            match answer {
                Ok(Reply::Updated { version: v }) => version = version.max(v),
                Ok(Reply::Processed { .. }) => {}
                Err(_) if shared.stopping.load(SeqCst) => {
                    tracing::error!(event = "update-failed", "MPM.update: stopped while updating");
                    return Err(MpmError::StoppedWhileUpdating);
                }
                Err(error) => {
                    tracing::error!(event = "update-failed", cause = %error, "MPM.update: failed: {error}");
                    return Err(error);
                }
            }
        }
        shared.stats.updates.fetch_add(1, SeqCst);
        tracing::info!(
            event = "update-finished",
            version,
            "MPM.update: finished, version {version}"
        );
        Ok(version)
    }
}

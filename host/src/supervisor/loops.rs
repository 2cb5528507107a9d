//! The supervisor's consume loops once started: pausing one, redriving its
//! dead letters off the supervisor's task, starting a failed one again, and
//! stopping them all at shut-down.

use std::time::Duration;

use tokio::sync::mpsc;

use super::changes::{Reply, Request};
use super::{ChangeError, Supervisor};
use crate::bus::{HandlerLoop, LoopFailed, Redriven};

/// How long a failed consume loop waits before it is started again.
const RESTART_DELAY: Duration = Duration::from_secs(1);

impl Supervisor {
    pub(super) fn pause(&mut self, name: &str, paused: bool) -> Result<(), ChangeError> {
        let Some(handler_loop) = self.loops.get(name) else {
            return Err(ChangeError::NotFound(name.to_string()));
        };
        handler_loop.set_paused(paused);
        self.registry.set_paused(name, paused);
        Ok(())
    }

    pub(super) fn redrive(&mut self, name: String, reply: Reply<Redriven>) {
        let Some(current) = self.registry.current(&name) else {
            let _ = reply.send(Err(ChangeError::NotFound(name)));
            return;
        };
        let newly = self
            .redriving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.clone());
        if !newly {
            let _ = reply.send(Err(ChangeError::Busy(name)));
            return;
        }
        let topics = current.subscription().topics.clone();
        let bus = self.bus.clone();
        let redriving = self.redriving.clone();
        tokio::spawn(async move {
            let result = crate::bus::redrive(&bus, &name, &topics).await;
            redriving
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&name);
            let _ = reply.send(result.map_err(ChangeError::Failed));
        });
    }

    /// A loop failed: it already left its group. It is started again after
    /// a pause, unless it was replaced or removed meanwhile.
    pub(super) fn loop_failed(&mut self, failed: LoopFailed, restarts: mpsc::WeakSender<Request>) {
        if self.loops.get(&failed.handler).map(HandlerLoop::id) != Some(failed.id) {
            return;
        }
        tracing::error!(handler = %failed.handler, reason = %failed.reason, "consume loop failed; starting it again in {RESTART_DELAY:?}");
        tokio::spawn(async move {
            tokio::time::sleep(RESTART_DELAY).await;
            if let Some(tx) = restarts.upgrade() {
                let _ = tx.send(Request::Restart(failed)).await;
            }
        });
    }

    pub(super) fn restart(&mut self, failed: LoopFailed) {
        let name = &failed.handler;
        if self.loops.get(name).map(HandlerLoop::id) != Some(failed.id) {
            return;
        }
        let (Some(versions), Some(file)) = (
            self.registry.versions(name),
            self.registry.get(name).map(|h| h.file),
        ) else {
            return;
        };
        let stats = self.registry.stats(name, &file);
        let paused = self.registry.is_paused(name);
        match HandlerLoop::start(
            name,
            versions,
            &self.bus,
            stats,
            paused,
            self.failed_tx.clone(),
        ) {
            Ok(handler_loop) => {
                self.registry
                    .set_consumer(name, handler_loop.state().clone());
                // The failed loop has ended: dropping it is all that is left.
                self.loops.insert(name.clone(), handler_loop);
                tracing::info!(handler = %name, "consume loop started again");
            }
            Err(e) => {
                tracing::error!(handler = %name, error = %e, "cannot start the consume loop again; retrying");
                let _ = self.failed_tx.send(LoopFailed {
                    reason: format!("{e:#}"),
                    ..failed
                });
            }
        }
    }

    /// Stops every consume loop: each finishes its event, commits and
    /// leaves its group.
    pub async fn shutdown(mut self) {
        let loops = std::mem::take(&mut self.loops);
        futures_util::future::join_all(loops.into_values().map(HandlerLoop::stop)).await;
    }
}

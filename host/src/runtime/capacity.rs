//! Room in the host-wide instance pool: a [`Slot`] per live instance, and
//! leave for a lane to keep one between events. Calls wait for a slot
//! rather than fail to instantiate; leave to keep is never waited for.

use std::sync::Arc;

use super::POOL_INSTANCES;

/// Of the pool's instances, how many lanes may keep between their events
/// (reused instances): the other half always turns over call by call.
pub(super) const KEPT_INSTANCES: usize = POOL_INSTANCES as usize / 2;

/// Instances that may exist at once, across every handler: the pool's size,
/// or no bound with on-demand allocation. A call waits for a slot instead of
/// failing to instantiate.
#[derive(Clone)]
pub(crate) struct Capacity {
    pub(super) slots: Option<Arc<tokio::sync::Semaphore>>,
    /// Of the slots, those kept by lanes between events; never waited for.
    pub(super) kept: Option<Arc<tokio::sync::Semaphore>>,
}

/// Room for one instance; see [`super::Component::slot`].
pub struct Slot(#[allow(dead_code)] Option<tokio::sync::OwnedSemaphorePermit>);

/// Leave for a slot to stay taken between a lane's events.
pub(crate) struct KeepPermit(#[allow(dead_code)] Option<tokio::sync::OwnedSemaphorePermit>);

impl Capacity {
    pub(crate) fn try_slot(&self) -> Option<Slot> {
        match &self.slots {
            None => Some(Slot(None)),
            Some(s) => s.clone().try_acquire_owned().ok().map(|p| Slot(Some(p))),
        }
    }

    pub(crate) async fn slot(&self) -> Slot {
        match &self.slots {
            None => Slot(None),
            // The semaphore is never closed.
            Some(s) => Slot(s.clone().acquire_owned().await.ok()),
        }
    }

    /// Leave to keep a slot between events, if fewer than
    /// [`KEPT_INSTANCES`] are kept now; never waits.
    pub(crate) fn try_keep(&self) -> Option<KeepPermit> {
        match &self.kept {
            None => Some(KeepPermit(None)),
            Some(s) => s
                .clone()
                .try_acquire_owned()
                .ok()
                .map(|p| KeepPermit(Some(p))),
        }
    }
}

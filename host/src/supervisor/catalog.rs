//! The supervisor's side of the handler catalog: checking a component
//! before it is written there, and applying what the catalog says, in its
//! order (see [`crate::cluster`]).

use super::{ChangeError, Supervisor, Uploaded, Validated};
use crate::cluster::catalog::Change;
use crate::metrics::Reload;

impl Supervisor {
    /// Loads (compiles) `bytes` as handler `name` without installing it.
    pub(super) async fn validate(
        &mut self,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<Validated, ChangeError> {
        let digest = self.load(name, bytes).await?.digest().to_string();
        Ok(Validated {
            running: self.registry.digest(name).as_deref() == Some(digest.as_str()),
            paused: self.registry.is_paused(name),
            digest,
        })
    }

    /// Makes this instance serve what the catalog says of a handler: its
    /// version, paused or not; or no longer serve it.
    pub(super) async fn apply_catalog(
        &mut self,
        change: Change,
    ) -> Result<Option<Uploaded>, ChangeError> {
        let (name, entry) = match change {
            Change::Removed { name } => {
                self.stop_handler(&name).await;
                return Ok(None);
            }
            Change::Set { name, entry } => (name, entry),
        };
        let file = self.file_for(&name);
        let paused = entry.head.paused;
        if self.registry.digest(&name).as_deref() == Some(entry.head.digest.as_str()) {
            if self.registry.is_paused(&name) != paused {
                self.pause(&name, paused)?;
            }
            return Ok(Some(Uploaded::Unchanged));
        }
        let component = match self.runtime.load(&name, entry.component.to_vec()).await {
            Ok(component) => component,
            Err(e) => {
                tracing::error!(handler = %name, version = %entry.head.digest, error = %e, "the catalog's version cannot run here; the running version, if any, stays");
                self.bus.metrics().reload(&name, Reload::Rejected);
                self.registry.reject(&name, &file, e.to_string());
                return Err(ChangeError::Rejected(e));
            }
        };
        // A new handler's loop starts paused if the catalog says so.
        self.registry.stats(&name, &file);
        self.registry.set_paused(&name, paused);
        let uploaded = self.install(&name, &file, component).await?;
        if self.loops.contains_key(&name) && self.registry.is_paused(&name) != paused {
            self.pause(&name, paused)?;
        }
        Ok(Some(uploaded))
    }
}

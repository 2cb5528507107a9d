//! Reading an envelope event's payload.

use serde::de::DeserializeOwned;

use crate::{Event, HandlerError};

impl Event {
    /// Parses the event's `data` into `T`. Data that does not fit is a fatal
    /// error naming the event: retrying the same bytes cannot help.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, HandlerError> {
        serde_json::from_str(&self.data).map_err(|e| {
            HandlerError::Fatal(format!(
                "{} event {}: bad data: {e}",
                self.event_type, self.id
            ))
        })
    }
}

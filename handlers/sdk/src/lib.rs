//! The handler SDK: the bindings of the `handler` world in `wit/` plus the
//! few helpers every handler wants, so a handler crate holds only its rule.
//!
//! ```ignore
//! use handler_sdk::{Delivery, Description, Event, Guest, HandlerError};
//!
//! struct Audit;
//!
//! impl Guest for Audit {
//!     fn describe() -> Description {
//!         Description::new(&["user-events"], &["USER_REGISTERED"])
//!     }
//!     fn handle(event: Event, _delivery: Delivery) -> Result<(), HandlerError> {
//!         handler_sdk::info!("audit: {} {}", event.event_type, event.id);
//!         Ok(())
//!     }
//! }
//!
//! handler_sdk::export!(Audit);
//! ```

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/v0.1",
        world: "handler",
        pub_export_macro: true,
        // Wrapped by this crate's own `export!`.
        export_macro_name: "__export_generated",
        default_bindings_module: "handler_sdk",
    });
}

/// Exports `$ty`, which implements [`Guest`], as the component's handler:
/// `handler_sdk::export!(MyHandler);`.
///
/// After each `handle` it flushes stdout: Rust holds printed text until a
/// newline, and what is still held when `handle` returns would otherwise be
/// lost with the instance.
#[macro_export]
macro_rules! export {
    ($ty:ident) => {
        #[doc(hidden)]
        struct __HandlerSdkExport;

        impl $crate::Guest for __HandlerSdkExport {
            fn describe() -> $crate::Description {
                <$ty as $crate::Guest>::describe()
            }

            fn handle(
                event: $crate::Event,
                delivery: $crate::Delivery,
            ) -> ::core::result::Result<(), $crate::HandlerError> {
                let result = <$ty as $crate::Guest>::handle(event, delivery);
                $crate::__flush_stdout();
                result
            }
        }

        $crate::__export_generated!(__HandlerSdkExport);
    };
}

#[doc(hidden)]
pub fn __flush_stdout() {
    use std::io::Write as _;
    // Nothing to report a failure to: the instance is about to go.
    let _ = std::io::stdout().flush();
}

pub mod notifications;

pub use bindings::Guest;
pub use bindings::event_host::handler::host::Level;
pub use bindings::event_host::handler::types::{
    Delivery, Description, Event, HandlerError, OutgoingEvent, RetryPolicy,
};
#[doc(hidden)]
pub use bindings::*;

use serde::Serialize;
use serde::de::DeserializeOwned;

impl Description {
    /// Subscribe to `topics`, handling only `event_types` (all types when
    /// empty), with the host's retry policy.
    pub fn new(topics: &[&str], event_types: &[&str]) -> Self {
        Self {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            event_types: event_types.iter().map(|t| t.to_string()).collect(),
            retry: None,
        }
    }

    /// Retry a failed event up to `max_attempts` times in all, waiting
    /// `backoff_ms` before the first retry and twice as long before each next.
    pub fn with_retry(mut self, max_attempts: u32, backoff_ms: u32) -> Self {
        self.retry = Some(RetryPolicy {
            max_attempts,
            backoff_ms,
        });
        self
    }
}

impl Event {
    /// An event as the host would pass it, for testing a handler's rule
    /// natively (`cargo test -p my-handler`): a fixed id and timestamp.
    pub fn sample(event_type: &str, user_id: Option<&str>, data: &str) -> Self {
        Self {
            id: "00000000-0000-4000-8000-000000000000".into(),
            event_type: event_type.into(),
            timestamp: "2026-01-01T00:00:00.000Z".into(),
            user_id: user_id.map(str::to_string),
            data: data.into(),
        }
    }

    /// Parses the event's `data` into `T`. Data that does not fit is a fatal
    /// error: retrying the same bytes cannot help.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, HandlerError> {
        serde_json::from_str(&self.data).map_err(|e| {
            HandlerError::Fatal(format!(
                "{} event {}: bad data: {e}",
                self.event_type, self.id
            ))
        })
    }
}

/// Publishes an event through the host and returns its id. The host sends it
/// only if the current `handle` call succeeds.
pub fn publish(
    topic: &str,
    event_type: &str,
    user_id: Option<&str>,
    data: &impl Serialize,
) -> Result<String, HandlerError> {
    let data = serde_json::to_string(data)
        .map_err(|e| HandlerError::Fatal(format!("cannot encode {event_type} data: {e}")))?;
    bindings::event_host::handler::publisher::publish(&OutgoingEvent {
        topic: topic.to_string(),
        event_type: event_type.to_string(),
        user_id: user_id.map(str::to_string),
        data,
    })
    .map_err(HandlerError::Fatal)
}

/// A fresh random UUID (v4), as text.
pub fn new_id() -> String {
    #[cfg(target_arch = "wasm32")]
    return bindings::event_host::handler::host::new_id();
    #[cfg(not(target_arch = "wasm32"))]
    return uuid::Uuid::new_v4().to_string();
}

/// The current time in RFC 3339 UTC with milliseconds, like JavaScript's
/// `Date.prototype.toISOString`.
pub fn now() -> String {
    #[cfg(target_arch = "wasm32")]
    let now = std::time::UNIX_EPOCH
        + std::time::Duration::from_millis(bindings::event_host::handler::host::now_ms());
    #[cfg(not(target_arch = "wasm32"))]
    let now = std::time::SystemTime::now();
    humantime::format_rfc3339_millis(now).to_string()
}

/// Logs `message` at `level`: the host logs it under the handler's name and
/// the event's id. The [`info!`] family of macros formats and calls this.
///
/// Cheaper than `println!`, which the host also logs (at `info`; `eprintln!`
/// at `warn`): printing goes through WASI, and an event's first WASI call
/// sets up a WASI context for its instance. Natively (`cargo test`), lines
/// go to stderr.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    bindings::event_host::handler::host::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("{level:?}: {message}");
}

/// Logs a formatted line at `debug`: `handler_sdk::debug!("got {}", id)`.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log($crate::Level::Debug, &::std::format!($($arg)*)) };
}

/// Logs a formatted line at `info`: `handler_sdk::info!("got {}", id)`.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log($crate::Level::Info, &::std::format!($($arg)*)) };
}

/// Logs a formatted line at `warn`: `handler_sdk::warn!("odd {}", id)`.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log($crate::Level::Warn, &::std::format!($($arg)*)) };
}

/// Logs a formatted line at `error`. Logging an error does not fail the
/// event: return a [`HandlerError`] for that.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log($crate::Level::Error, &::std::format!($($arg)*)) };
}

#[cfg(test)]
mod tests {
    /// Natively the helpers work without a host, so a handler's rule can be
    /// tested with `cargo test`.
    #[test]
    fn helpers_work_natively() {
        let now = super::now();
        assert_eq!(now.len(), "2026-01-01T00:00:00.000Z".len(), "{now}");
        assert!(now.ends_with('Z') && now.as_bytes()[10] == b'T', "{now}");
        let (a, b) = (super::new_id(), super::new_id());
        assert_eq!(a.len(), 36);
        assert_ne!(a, b);
        crate::info!("logged natively: {}", a);
        crate::error!("to stderr");
    }
}

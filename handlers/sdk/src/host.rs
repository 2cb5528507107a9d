//! Logging, the time and fresh ids: served by the host in a component, and
//! natively (a handler's `cargo test`) by this process, with log lines kept
//! for `testing` to report.

#[cfg(target_arch = "wasm32")]
use crate::wit::event_host::handler::host as wit_host;

/// How much a log line matters; the host logs it at the same level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

/// Logs `message` at `level`: the host logs it under the handler's name and
/// the event's id. The [`info!`](crate::info) family of macros formats and
/// calls this.
///
/// Cheaper than `println!`, which the host also logs (at `info`; `eprintln!`
/// at `warn`): printing goes through WASI, and an event's first WASI call
/// sets up a WASI context for its instance. Natively, lines are recorded for
/// [`testing`](crate::testing) and printed to stderr.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    wit_host::log(
        match level {
            Level::Debug => wit_host::Level::Debug,
            Level::Info => wit_host::Level::Info,
            Level::Warn => wit_host::Level::Warn,
            Level::Error => wit_host::Level::Error,
        },
        message,
    );
    #[cfg(not(target_arch = "wasm32"))]
    crate::recorder::log(level, message);
}

/// A fresh random UUID (v4), as text.
pub fn new_id() -> String {
    #[cfg(target_arch = "wasm32")]
    return wit_host::new_id();
    #[cfg(not(target_arch = "wasm32"))]
    return uuid::Uuid::new_v4().to_string();
}

/// The current time in RFC 3339 UTC with milliseconds, like JavaScript's
/// `Date.prototype.toISOString`.
pub fn now() -> String {
    #[cfg(target_arch = "wasm32")]
    let now = std::time::UNIX_EPOCH + std::time::Duration::from_millis(wit_host::now_ms());
    #[cfg(not(target_arch = "wasm32"))]
    let now = std::time::SystemTime::now();
    humantime::format_rfc3339_millis(now).to_string()
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
/// event: return a [`HandlerError`](crate::HandlerError) for that.
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
    }
}

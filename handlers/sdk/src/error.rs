//! Why handling a message failed, and whether trying again can help: the
//! one decision the host needs from a failed handler (retry or dead-letter).

use std::fmt::{self, Display};

/// A failed `handle`. `?` turns the usual parse and decode errors into
/// [`HandlerError::Fatal`]: the same bytes will fail the same way again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerError {
    /// A passing condition (a dependency was down, a timeout): the host
    /// retries the message later.
    Retryable(String),
    /// The message itself is bad (invalid data, a broken rule): the host
    /// sets it aside as a dead letter without retrying.
    Fatal(String),
}

impl HandlerError {
    /// The message is bad; retrying cannot help.
    pub fn fatal(message: impl Display) -> Self {
        Self::Fatal(message.to_string())
    }

    /// Something passing failed; the host should try again.
    pub fn retryable(message: impl Display) -> Self {
        Self::Retryable(message.to_string())
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable(_))
    }

    /// What went wrong, without the kind.
    pub fn message(&self) -> &str {
        match self {
            Self::Retryable(m) | Self::Fatal(m) => m,
        }
    }
}

impl Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Retryable(m) => write!(f, "retryable: {m}"),
            Self::Fatal(m) => write!(f, "fatal: {m}"),
        }
    }
}

impl std::error::Error for HandlerError {}

impl From<HandlerError> for crate::wit::event_host::handler::types::HandlerError {
    fn from(e: HandlerError) -> Self {
        match e {
            HandlerError::Retryable(m) => Self::Retryable(m),
            HandlerError::Fatal(m) => Self::Fatal(m),
        }
    }
}

/// Errors that say the input is bad: `?` makes them fatal.
macro_rules! fatal_from {
    ($($ty:ty),* $(,)?) => {$(
        impl From<$ty> for HandlerError {
            fn from(e: $ty) -> Self {
                Self::fatal(e)
            }
        }
    )*};
}

fatal_from!(
    serde_json::Error,
    std::str::Utf8Error,
    std::string::FromUtf8Error,
    std::num::ParseIntError,
    std::num::ParseFloatError,
);

/// Decides what a failed `Result` means for the message, with a word of
/// context: `amount.parse::<u32>().fatal("amount")?`.
pub trait ResultExt<T> {
    /// Fails the message for good: `"{context}: {error}"`.
    fn fatal(self, context: &str) -> Result<T, HandlerError>;
    /// Fails the attempt, to be retried: `"{context}: {error}"`.
    fn retryable(self, context: &str) -> Result<T, HandlerError>;
}

impl<T, E: Display> ResultExt<T> for Result<T, E> {
    fn fatal(self, context: &str) -> Result<T, HandlerError> {
        self.map_err(|e| HandlerError::Fatal(format!("{context}: {e}")))
    }

    fn retryable(self, context: &str) -> Result<T, HandlerError> {
        self.map_err(|e| HandlerError::Retryable(format!("{context}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_are_fatal_through_question_mark() {
        fn parse(s: &str) -> Result<u32, HandlerError> {
            Ok(s.parse::<u32>()?)
        }
        assert!(matches!(parse("x"), Err(HandlerError::Fatal(m)) if m.contains("invalid digit")));
    }

    #[test]
    fn context_goes_before_the_error() {
        let r: Result<(), _> = Err("down").retryable("calling the ledger");
        assert_eq!(r, Err(HandlerError::retryable("calling the ledger: down")));
        assert!(r.unwrap_err().is_retryable());
    }
}

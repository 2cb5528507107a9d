//! The metrics' label sets. Every value is a handler name, a topic, a route
//! pattern or one of the fixed sets below: bounded, whatever the traffic.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};

/// A fixed set of label values, written as their names.
macro_rules! label_value {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl EncodeLabelValue for $name {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                EncodeLabelValue::encode(&self.as_str(), encoder)
            }
        }
    };
}

label_value! {
    /// How an event was done with.
    EventOutcome {
        Handled => "handled",
        Skipped => "skipped",
        DeadLettered => "dead_lettered",
    }
}

label_value! {
    /// Why a handler call failed.
    FailureKind {
        Retryable => "retryable",
        Fatal => "fatal",
        Trap => "trap",
        Timeout => "timeout",
    }
}

impl FailureKind {
    pub const ALL: [FailureKind; 4] = [Self::Retryable, Self::Fatal, Self::Trap, Self::Timeout];
}

label_value! {
    /// How a handler call (one attempt) ended.
    CallOutcome {
        Ok => "ok",
        Retryable => "retryable",
        Fatal => "fatal",
        Trap => "trap",
        Timeout => "timeout",
    }
}

impl CallOutcome {
    pub const ALL: [CallOutcome; 5] = [
        Self::Ok,
        Self::Retryable,
        Self::Fatal,
        Self::Trap,
        Self::Timeout,
    ];

    pub fn failure(self) -> Option<FailureKind> {
        match self {
            Self::Ok => None,
            Self::Retryable => Some(FailureKind::Retryable),
            Self::Fatal => Some(FailureKind::Fatal),
            Self::Trap => Some(FailureKind::Trap),
            Self::Timeout => Some(FailureKind::Timeout),
        }
    }
}

impl From<&crate::runtime::Failure> for CallOutcome {
    fn from(f: &crate::runtime::Failure) -> Self {
        use crate::runtime::Failure;
        match f {
            Failure::Retryable(_) => Self::Retryable,
            Failure::Fatal(_) => Self::Fatal,
            Failure::Trap(_) => Self::Trap,
            Failure::Timeout(_) => Self::Timeout,
        }
    }
}

label_value! {
    /// What became of a version offered for a handler.
    Reload {
        Added => "added",
        Replaced => "replaced",
        Rejected => "rejected",
    }
}

label_value! {
    /// Who published an event.
    Source {
        Api => "api",
        Handler => "handler",
        DeadLetter => "dead_letter",
        Redrive => "redrive",
        Catalog => "catalog",
    }
}

label_value! {
    /// Whether the broker stored a published event.
    SendResult {
        Ok => "ok",
        Error => "error",
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandlerLabels {
    pub handler: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    pub handler: String,
    pub topic: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub handler: String,
    pub topic: String,
    pub outcome: EventOutcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub handler: String,
    pub topic: String,
    pub kind: FailureKind,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProcessLabels {
    pub handler: String,
    pub topic: String,
    pub outcome: CallOutcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    pub handler: String,
    pub result: Reload,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SentLabels {
    pub source: Source,
    pub result: SendResult,
}

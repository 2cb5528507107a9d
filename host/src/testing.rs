//! A test harness for built handler components: the host's own runtime
//! (the same sandbox, limits and contract checks as in production) without
//! Kafka or HTTP. A handler author loads the `.wasm` file `cargo build`
//! made, hands it an event, and looks at what it published and logged.
//!
//! ```no_run
//! use event_host::testing::Harness;
//! use serde_json::json;
//!
//! let harness = Harness::new().unwrap();
//! let handler = harness.load("../user-handler.wasm").unwrap();
//! let run = handler
//!     .event("user-events", "USER_REGISTERED")
//!     .user_id("u-1")
//!     .data(json!({"name": "Ada"}))
//!     .handle();
//! assert!(run.result.is_ok(), "{:?}", run.result);
//! assert_eq!(run.events()[0].event_type, "NOTIFICATION_SENT");
//! ```
//!
//! Its calls block: use it from a plain `#[test]`, not inside an async
//! runtime.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use serde_json::value::RawValue;

use crate::event::{Event, EventType};
use crate::runtime::{
    self, Component, Contract, Delivery, Failure, Header, Input, Level, LoadError, Outgoing,
    Runtime, Subscription,
};

/// The production defaults: `HANDLER_TIMEOUT_MS` and `HANDLER_MEMORY_MB`.
const LIMITS: runtime::Limits = runtime::Limits {
    timeout: Duration::from_millis(5_000),
    memory_bytes: 64 << 20,
};

/// A runtime to load components into.
pub struct Harness {
    tokio: tokio::runtime::Runtime,
    runtime: Runtime,
}

/// Why the harness could not start or load.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("cannot start the runtime: {0}")]
    Start(String),
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{0}")]
    Load(#[from] LoadError),
}

impl Harness {
    /// A runtime with the host's default limits and no compile cache.
    pub fn new() -> Result<Self, HarnessError> {
        Self::with_limits(LIMITS)
    }

    /// A runtime with other limits, e.g. to test a handler's behaviour at
    /// its timeout.
    pub fn with_limits(limits: runtime::Limits) -> Result<Self, HarnessError> {
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| HarnessError::Start(e.to_string()))?;
        let runtime = {
            let _in = tokio.enter();
            Runtime::new(limits, None).map_err(|e| HarnessError::Start(format!("{e:#}")))?
        };
        Ok(Self { tokio, runtime })
    }

    /// Compiles and describes the component at `path`, as the host does
    /// when the file appears in its handlers folder.
    pub fn load(&self, path: impl AsRef<Path>) -> Result<Loaded<'_>, HarnessError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|error| HarnessError::Read {
            path: path.display().to_string(),
            error,
        })?;
        let name = path
            .file_stem()
            .map_or_else(|| "handler".into(), |s| s.to_string_lossy().into_owned());
        self.load_bytes(&name, bytes)
    }

    pub fn load_bytes(&self, name: &str, bytes: Vec<u8>) -> Result<Loaded<'_>, HarnessError> {
        let component = self.tokio.block_on(self.runtime.load(name, bytes))?;
        Ok(Loaded {
            harness: self,
            component,
        })
    }
}

/// A loaded component.
pub struct Loaded<'h> {
    harness: &'h Harness,
    component: Component,
}

impl Loaded<'_> {
    /// What it subscribed to in `describe`.
    pub fn subscription(&self) -> &Subscription {
        self.component.subscription()
    }

    pub fn contract(&self) -> Contract {
        self.component.contract()
    }

    /// An envelope event on `topic`, to fill in and [`Message::handle`].
    pub fn event(&self, topic: &str, event_type: &str) -> Message<'_> {
        Message {
            loaded: self,
            input: MessageInput::Event {
                event_type: event_type.to_string(),
                user_id: None,
                data: Value::Object(Default::default()),
            },
            delivery: Delivery {
                topic: topic.to_string(),
                ..Delivery::default()
            },
        }
    }

    /// A raw message on `topic` with `value` (none: a tombstone).
    pub fn raw(&self, topic: &str, value: Option<&[u8]>) -> Message<'_> {
        Message {
            loaded: self,
            input: MessageInput::Raw(value.map(<[u8]>::to_vec)),
            delivery: Delivery {
                topic: topic.to_string(),
                ..Delivery::default()
            },
        }
    }
}

enum MessageInput {
    Event {
        event_type: String,
        user_id: Option<String>,
        data: Value,
    },
    Raw(Option<Vec<u8>>),
}

/// A message to hand to a loaded component.
pub struct Message<'l> {
    loaded: &'l Loaded<'l>,
    input: MessageInput,
    delivery: Delivery,
}

impl Message<'_> {
    pub fn user_id(mut self, id: &str) -> Self {
        if let MessageInput::Event { user_id, .. } = &mut self.input {
            *user_id = Some(id.to_string());
        }
        self
    }

    pub fn data(mut self, value: Value) -> Self {
        if let MessageInput::Event { data, .. } = &mut self.input {
            *data = value;
        }
        self
    }

    pub fn key(mut self, key: &[u8]) -> Self {
        self.delivery.key = Some(key.to_vec());
        self
    }

    pub fn header(mut self, name: &str, value: &[u8]) -> Self {
        self.delivery.headers.push(Header {
            name: name.to_string(),
            value: Some(value.to_vec()),
        });
        self
    }

    /// Runs the handler on it in a fresh instance, as the host would
    /// (first attempt). An event of a type the handler did not subscribe
    /// to is skipped, as the host skips it.
    pub fn handle(self) -> Run {
        let component = &self.loaded.component;
        let input = match self.input {
            MessageInput::Raw(value) => Input::Raw(value),
            MessageInput::Event {
                event_type,
                user_id,
                data,
            } => {
                if !component.subscription().wants(&event_type) {
                    return Run::skipped();
                }
                let event = EventType::parse(&event_type)
                    .map_err(|e| Failure::Fatal(format!("event type {event_type:?} {e}")))
                    .and_then(|t| {
                        let data = RawValue::from_string(data.to_string())
                            .map_err(|e| Failure::Fatal(e.to_string()))?;
                        Ok(Event::new(t, user_id, data))
                    });
                match event {
                    Ok(event) => Input::Event(event),
                    Err(failure) => return Run::failed(failure),
                }
            }
        };
        let prepared = match component.prepare(input, self.delivery) {
            Ok(prepared) => prepared,
            Err(failure) => return Run::failed(failure),
        };
        let harness = self.loaded.harness;
        let invocation = harness.tokio.block_on(async {
            let slot = component.slot().await;
            component.invoke(slot, &prepared).await
        });
        Run {
            skipped: false,
            log: invocation.log,
            result: invocation.result.map(|outcome| outcome.outbox),
        }
    }
}

/// What one call did.
#[derive(Debug)]
pub struct Run {
    /// What it published (nothing is sent anywhere), or why it failed.
    pub result: Result<Vec<Outgoing>, Failure>,
    /// What it logged and printed, in order.
    pub log: Vec<(Level, String)>,
    /// The handler did not subscribe to the event's type: not called.
    pub skipped: bool,
}

/// An envelope event a handler published.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedEvent {
    pub topic: String,
    pub event_type: String,
    pub user_id: Option<String>,
    pub data: Value,
    pub key: Option<Vec<u8>>,
    pub headers: Vec<Header>,
}

impl Run {
    fn skipped() -> Self {
        Self {
            result: Ok(Vec::new()),
            log: Vec::new(),
            skipped: true,
        }
    }

    fn failed(failure: Failure) -> Self {
        Self {
            result: Err(failure),
            log: Vec::new(),
            skipped: false,
        }
    }

    /// The envelope events it published, in order (none if it failed).
    pub fn events(&self) -> Vec<PublishedEvent> {
        let Ok(outbox) = &self.result else {
            return Vec::new();
        };
        outbox
            .iter()
            .filter_map(|o| match o {
                Outgoing::Event {
                    topic,
                    event,
                    key,
                    headers,
                } => Some(PublishedEvent {
                    topic: topic.to_string(),
                    event_type: event.event_type.clone(),
                    user_id: event.user_id.clone(),
                    data: serde_json::from_str(event.data.get()).unwrap_or(Value::Null),
                    key: key.clone(),
                    headers: headers.clone(),
                }),
                Outgoing::Message { .. } => None,
            })
            .collect()
    }

    /// The lines it logged or printed at `level`.
    pub fn lines(&self, level: Level) -> Vec<&str> {
        self.log
            .iter()
            .filter(|(l, _)| *l == level)
            .map(|(_, line)| line.as_str())
            .collect()
    }
}

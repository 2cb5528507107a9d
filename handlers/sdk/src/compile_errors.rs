//! What the macros refuse to compile, as `compile_fail` doctests (`cargo
//! test -p handler-sdk` runs them). Each also has a twin that compiles, so
//! a test fails for its stated reason.
//!
//! An option `#[handler]` does not know:
//! ```compile_fail
//! use handler_sdk::{Context, Event, HandlerError, handler};
//! #[handler(topics = ["a"], retries = 3)]
//! fn h(_: Event, _: &Context) -> Result<(), HandlerError> { Ok(()) }
//! ```
//! No topic at all:
//! ```compile_fail
//! use handler_sdk::{Context, Event, HandlerError, handler};
//! #[handler(retry(max_attempts = 3, backoff_ms = 10))]
//! fn h(_: Event, _: &Context) -> Result<(), HandlerError> { Ok(()) }
//! ```
//! A topic Kafka would refuse:
//! ```compile_fail
//! use handler_sdk::{Context, Event, HandlerError, handler};
//! #[handler(topics = ["user events"])]
//! fn h(_: Event, _: &Context) -> Result<(), HandlerError> { Ok(()) }
//! ```
//! A signature without the context:
//! ```compile_fail
//! use handler_sdk::{Event, HandlerError, handler};
//! #[handler(topics = ["a"])]
//! fn h(_: Event) -> Result<(), HandlerError> { Ok(()) }
//! ```
//! The wrong return type:
//! ```compile_fail
//! use handler_sdk::{Context, Event, handler};
//! #[handler(topics = ["a"])]
//! fn h(_: Event, _: &Context) -> Result<(), String> { Ok(()) }
//! ```
//! Envelope events into a raw input:
//! ```compile_fail
//! use handler_sdk::{Context, HandlerError, RawMessage, handler};
//! #[handler(topics = ["a"])]
//! fn h(_: RawMessage, _: &Context) -> Result<(), HandlerError> { Ok(()) }
//! ```
//! A retry without `backoff_ms`:
//! ```compile_fail
//! use handler_sdk::{Context, Event, HandlerError, handler};
//! #[handler(topics = ["a"], retry(max_attempts = 3))]
//! fn h(_: Event, _: &Context) -> Result<(), HandlerError> { Ok(()) }
//! ```
//! Two variants for one event type:
//! ```compile_fail
//! #[derive(handler_sdk::Events)]
//! enum E { UserRegistered, #[event("USER_REGISTERED")] Again }
//! ```
//! A variant with two fields:
//! ```compile_fail
//! #[derive(handler_sdk::Events)]
//! enum E { UserRegistered(u32, u32) }
//! ```
//!
//! The twin that compiles, with every option:
//! ```
//! use handler_sdk::{Context, HandlerError, Message, handler};
//! #[derive(handler_sdk::Events)]
//! enum E { UserRegistered(u32), #[event("other")] Other }
//! #[handler(topics = ["a"], raw_topics = ["b"], retry(max_attempts = 3, backoff_ms = 10), stateless)]
//! fn h(_: Message, _: &Context) -> Result<(), HandlerError> { Ok(()) }
//! ```

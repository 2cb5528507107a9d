//! The handler SDK: write a handler as one function and the SDK makes it a
//! component of the `handler` world in `wit/v0.2`, so a handler crate holds
//! only its rule.
//!
//! ```
//! use handler_sdk::{Context, Events, HandlerError, OutgoingEvent, handler};
//! use serde::Deserialize;
//!
//! #[derive(Events)]
//! enum UserEvent {
//!     UserRegistered(User), // "USER_REGISTERED", data parsed into `User`
//!     UserDeleted,          // "USER_DELETED", data ignored
//! }
//!
//! #[derive(Deserialize)]
//! struct User {
//!     name: String,
//! }
//!
//! #[handler(topics = ["user-events"], retry(max_attempts = 5, backoff_ms = 100))]
//! fn audit(event: UserEvent, ctx: &Context) -> Result<(), HandlerError> {
//!     if let UserEvent::UserRegistered(user) = event {
//!         handler_sdk::info!("welcome {}", user.name);
//!         let welcome = OutgoingEvent::new("WELCOMED").maybe_user_id(ctx.user_id());
//!         handler_sdk::publish("audit", welcome.data(&user.name)?)?;
//!     }
//!     Ok(())
//! }
//!
//! // `#[handler]` made `Handler`; `testing` runs it natively.
//! let outcome = handler_sdk::testing::event("USER_REGISTERED")
//!     .user_id("u1")
//!     .data(serde_json::json!({"name": "Ada"}))
//!     .handle::<Handler>();
//! assert_eq!(outcome.result, Ok(()));
//! assert_eq!(outcome.events[0].data, "Ada");
//! ```
//!
//! What `#[handler]` generates can also be written by hand: implement
//! [`MessageHandler`] and [`export!`] it.

mod context;
mod error;
mod event;
mod export;
mod host;
mod input;
mod publish;
#[cfg(not(target_arch = "wasm32"))]
mod recorder;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

/// The bindings of `wit/v0.2`, for what the SDK's own types do not cover.
pub mod wit {
    wit_bindgen::generate!({
        path: "../../wit/v0.2",
        world: "handler",
        pub_export_macro: true,
        // Wrapped by this crate's own `export!`.
        export_macro_name: "__export_generated",
        default_bindings_module: "handler_sdk::wit",
        // So that tests can compare what a handler published.
        additional_derives: [PartialEq, Eq],
    });
}

pub use context::Context;
pub use error::{HandlerError, ResultExt};
pub use export::MessageHandler;
pub use handler_sdk_macros::{Events, handler};
pub use host::{Level, log, new_id, now};
pub use input::{Accepts, FromMessage, RawMessage};
pub use publish::{OutgoingEvent, OutgoingMessage, publish, publish_message};
pub use wit::event_host::handler::types::{
    Delivery, Description, Event, Format, Header, Message, RetryPolicy, Subscription,
};

/// What the macros' expansions call; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::export::{check_input, describe, dispatch, flush_stdout};
    pub use crate::input::{expect_event, unexpected_event_type};
}

// `compile_fail` examples of what the macros refuse, run by `cargo test`.
#[cfg(doctest)]
mod compile_errors;

//! The handler SDK's macros: `#[handler]` turns one function into a
//! handler component, `#[derive(Events)]` turns an enum into the event
//! types it handles. Use them through `handler-sdk`, which re-exports them;
//! their expansions name `::handler_sdk`.
//!
//! Everything a handler declares is checked here, at compile time, with the
//! error on the offending token: a handler that compiles describes itself
//! in a way the host accepts.

mod events;
mod handler;
mod names;

use proc_macro::TokenStream;

/// Makes `fn name(input: T, ctx: &Context) -> Result<(), HandlerError>` the
/// crate's handler: generates `pub struct Handler` implementing
/// `handler_sdk::MessageHandler`, and exports it as the component.
///
/// Options: `topics = ["a", "b"]` (envelope subscriptions), `raw_topics =
/// ["c"]` (raw subscriptions), at least one topic in all;
/// `retry(max_attempts = 5, backoff_ms = 100)`; `stateless`.
#[proc_macro_attribute]
pub fn handler(attr: TokenStream, item: TokenStream) -> TokenStream {
    handler::expand(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Implements `handler_sdk::FromMessage` for an enum of event types: a
/// variant `UserRegistered(User)` handles `USER_REGISTERED` events with
/// their data parsed into `User`; a unit variant ignores the data;
/// `#[event("OTHER_NAME")]` names the type. On a `Deserialize` struct, the
/// one event type named after the struct (`NotificationSent` →
/// `NOTIFICATION_SENT`), its data parsed into the struct.
#[proc_macro_derive(Events, attributes(event))]
pub fn derive_events(item: TokenStream) -> TokenStream {
    events::expand(item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

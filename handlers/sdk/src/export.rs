//! A handler as the component exports it: its description and its `handle`,
//! in SDK types. `#[handler]` implements [`MessageHandler`] and exports it;
//! the rest of this file is what that expansion calls, so that the export
//! and `testing` run one path (decode, then the handler's function).

use crate::{
    Context, Delivery, Description, Format, FromMessage, HandlerError, Message, RetryPolicy,
    Subscription,
};

/// A handler component's two exports. `#[handler]` implements it on the
/// `Handler` struct it generates; implement it by hand for what the macro
/// cannot say (a description computed at load time), then [`export!`](crate::export!) it.
pub trait MessageHandler {
    /// What to subscribe to, how to retry, whether it keeps state.
    fn describe() -> Description;
    /// Handles one message; `Ok` lets the host commit it.
    fn handle(message: Message, delivery: Delivery) -> Result<(), HandlerError>;
}

/// Exports `$ty`, which implements [`MessageHandler`], as the component's
/// handler: `handler_sdk::export!(MyHandler);`. `#[handler]` does this for
/// you; there can be one per component.
///
/// After each `handle` it flushes stdout: Rust holds printed text until a
/// newline, and what is still held when `handle` returns would otherwise be
/// lost with the instance. Natively (`cargo test`) it exports nothing.
#[macro_export]
macro_rules! export {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        struct __HandlerSdkExport;

        #[cfg(target_arch = "wasm32")]
        impl $crate::wit::Guest for __HandlerSdkExport {
            fn describe() -> $crate::Description {
                <$ty as $crate::MessageHandler>::describe()
            }

            fn handle(
                message: $crate::Message,
                delivery: $crate::Delivery,
            ) -> ::core::result::Result<(), $crate::wit::event_host::handler::types::HandlerError>
            {
                let result = <$ty as $crate::MessageHandler>::handle(message, delivery);
                $crate::__private::flush_stdout();
                result.map_err(::core::convert::Into::into)
            }
        }

        #[cfg(target_arch = "wasm32")]
        $crate::wit::__export_generated!(__HandlerSdkExport);

        // Natively nothing is exported, but `$ty` is still the handler.
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn() -> $crate::Description = <$ty as $crate::MessageHandler>::describe;
    };
}

/// The description `#[handler]` declares for input `T`.
pub fn describe<T: FromMessage>(
    topics: &[&str],
    raw_topics: &[&str],
    retry: Option<RetryPolicy>,
    stateless: bool,
) -> Description {
    let subscribe = |format: Format| {
        move |topic: &&str| Subscription {
            topic: topic.to_string(),
            format,
        }
    };
    let subscriptions = (topics.iter().map(subscribe(Format::Envelope)))
        .chain(raw_topics.iter().map(subscribe(Format::Raw)))
        .collect();
    Description {
        subscriptions,
        event_types: T::EVENT_TYPES.iter().map(|t| t.to_string()).collect(),
        retry,
        stateless,
    }
}

/// Stops the build when `T` cannot take a kind of message the handler
/// subscribes to (evaluated in a `const`, so it is a compile error).
pub const fn check_input<T: FromMessage>(envelope: bool, raw: bool) {
    if envelope && !T::ACCEPTS.envelope() {
        panic!(
            "this handler's input takes raw messages only, but `topics` subscribes to envelope events: use `raw_topics`, or take `Event` or `Message`"
        );
    }
    if raw && !T::ACCEPTS.raw() {
        panic!(
            "this handler's input takes envelope events only, but `raw_topics` subscribes to raw messages: use `topics`, or take `RawMessage` or `Message`"
        );
    }
}

/// Decodes `message` into `T` and calls `handler` with it.
pub fn dispatch<T: FromMessage>(
    message: Message,
    delivery: Delivery,
    handler: fn(T, &Context) -> Result<(), HandlerError>,
) -> Result<(), HandlerError> {
    let context = Context::new(&message, delivery);
    let input = T::from_message(message)?;
    handler(input, &context)
}

pub fn flush_stdout() {
    use std::io::Write as _;
    // Nothing to report a failure to: the instance is about to go.
    let _ = std::io::stdout().flush();
}

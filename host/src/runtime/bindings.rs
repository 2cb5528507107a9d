//! Rust types for the `handler` world in `wit/`, generated at compile time.

wasmtime::component::bindgen!({
    path: "../wit/v0.1",
    world: "handler",
    exports: { default: async },
});

pub use self::event_host::handler::types::OutgoingEvent;

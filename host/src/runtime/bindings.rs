//! Rust types for each version of the `handler` world in `wit/`, generated
//! at compile time. The host serves every version side by side; nothing
//! outside `runtime` sees these types.

/// The first contract, `event-host:handler@0.1.0`: envelope events only.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1",
        world: "handler",
        exports: { default: async },
    });
}

/// `event-host:handler@0.2.0`: keys, headers, raw messages, `stateless`.
pub mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../wit/v0.2",
        world: "handler",
        exports: { default: async },
    });
}

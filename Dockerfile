# syntax=docker/dockerfile:1
#
# The event-host image: the host binary and the demo handlers, built from
# the sources in this repository, on a slim Debian run as a non-root user.
#
#   docker build -t event-host:local .
#   docker run --rm -p 3000:3000 event-host:local     # on the embedded broker
#
# docker-compose.yml builds and runs it as the `event-host` service (README,
# "Running it in containers"). Settings are the host's environment
# variables (host/src/config.rs). host/tests/it/image.rs checks these values,
# among them that every cargo and rustup command here is one .ci/run runs.

FROM rust:1.95-bookworm AS builder
# rust-toolchain.toml asks for `stable`: without this, rustup would download
# whatever stable is today instead of using the image's own toolchain.
ENV RUSTUP_TOOLCHAIN=${RUST_VERSION}
# rdkafka links the system OpenSSL (TLS, SASL/SCRAM); its bundled librdkafka
# also needs make, perl, gcc and g++, which the rust image has.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
RUN rustup target add wasm32-wasip2
WORKDIR /src
COPY . .
# The host, and through host/build.rs the demo handlers into handlers/*.wasm.
# Only the crate downloads are cached between builds: a cached target folder
# would keep the build script from running again, and the handlers would
# not be rebuilt into this fresh copy of the sources.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked -p event-host

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/*
# A fixed uid/gid, so volumes and Kubernetes' runAsUser can name it. It owns
# the handlers folder (uploads write there) and the compile cache.
RUN groupadd --gid 10001 event-host \
    && useradd --uid 10001 --gid 10001 --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin event-host \
    && mkdir -p /app/handlers /app/cache \
    && chown 10001:10001 /app/handlers /app/cache
COPY --from=builder /src/target/release/event-host /usr/local/bin/event-host
COPY --from=builder --chown=10001:10001 \
    /src/handlers/notification-analytics.wasm \
    /src/handlers/order-handler.wasm \
    /src/handlers/user-handler.wasm \
    /app/handlers/
WORKDIR /app
ENV BIND_ADDRESS=0.0.0.0 HANDLERS_DIR=/app/handlers COMPILE_CACHE_DIR=/app/cache
EXPOSE 3000
USER 10001:10001
# Ready when GET /health answers 200 (503 while its consumers join their
# groups). The slim image has no HTTP client; bash, which it has, speaks
# enough HTTP over /dev/tcp. The first start compiles the handlers.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${PORT:-3000} && printf 'GET /health HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && read -r -t 5 _ status _ <&3 && [ \"$status\" = 200 ]"]
ENTRYPOINT ["/usr/local/bin/event-host"]

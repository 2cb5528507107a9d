//! Wires the parts together and owns the order of start-up and shut-down.
//!
//! Start-up: runtime, broker connection, the demo's topics, every handler in
//! the handlers folder with its topics and consume loop, then "ready" once
//! every consumer holds its partitions. The API answers from the start
//! (`/health` says `starting` until ready).
//!
//! Shut-down: stop accepting requests and finish those in flight; stop every
//! consume loop (the event in flight finishes, offsets are committed, the
//! group is left); deliver what the producer still holds; stop the broker.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState};
use crate::bus::{Bus, HandlerLoop};
use crate::config::Config;
use crate::event::Topic;
use crate::registry::{Loaded, Registry};
use crate::runtime::{Limits, Runtime};

/// Runs the host until `shutdown` completes, then shuts down in order.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let runtime = Arc::new(Runtime::new(Limits {
        timeout: config.handler_timeout(),
        memory_bytes: config.handler_memory_mb.saturating_mul(1024 * 1024),
    })?);
    let bus = Arc::new(Bus::connect(&config)?);
    let broker = bus.info();
    if broker.mode == "embedded" {
        tracing::warn!(
            bootstrap = %broker.bootstrap_servers,
            "KAFKA_BROKERS is not set: using the EMBEDDED in-memory broker; events are lost when the host stops"
        );
    } else {
        tracing::info!(bootstrap = %broker.bootstrap_servers, "using Kafka cluster");
    }
    tracing::info!(allocator = ?runtime.allocator(), "wasm runtime ready");

    let demo_topics = [
        api::USER_EVENTS,
        api::ORDER_EVENTS,
        api::NOTIFICATION_EVENTS,
    ]
    .map(|t| Topic::parse(t).context("demo topic"))
    .into_iter()
    .collect::<anyhow::Result<Vec<_>>>()?;
    bus.ensure_topics(&demo_topics).await?;

    let registry = Arc::new(Registry::new(runtime.clone()));
    let state = AppState::new(bus.clone(), registry.clone());

    let stop_http = CancellationToken::new();
    let server = {
        let stop = stop_http.clone();
        let app = api::router(state.clone());
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        })
    };

    let mut loops = BTreeMap::new();
    let stopping = CancellationToken::new();
    let signal = {
        let stopping = stopping.clone();
        tokio::spawn(async move {
            shutdown.await;
            stopping.cancel();
        })
    };

    let started = tokio::select! {
        r = start_handlers(&config, &bus, &registry, &mut loops) => Some(r),
        () = stopping.cancelled() => None,
    };
    match started {
        Some(Ok(())) => {
            state.set_started();
            wait_until_ready(&state, &stopping).await;
            stopping.cancelled().await;
        }
        Some(Err(e)) => {
            tracing::error!(error = ?e, "start-up failed");
            stop(stop_http, server, loops, &bus, &config).await;
            signal.abort();
            return Err(e);
        }
        None => {}
    }
    tracing::info!("shutting down");
    stop(stop_http, server, loops, &bus, &config).await;
    Ok(())
}

/// Loads every handler in the handlers folder and starts its consume loop.
async fn start_handlers(
    config: &Config,
    bus: &Bus,
    registry: &Registry,
    loops: &mut BTreeMap<String, HandlerLoop>,
) -> anyhow::Result<()> {
    let files = Registry::scan(&config.handlers_dir)?;
    if files.is_empty() {
        tracing::warn!(
            dir = %config.handlers_dir.display(),
            "no handler components found: build them with `cargo build`, or set HANDLERS_DIR"
        );
    }
    for file in files {
        match registry.load_file(&file).await {
            Ok(Loaded::New {
                name,
                versions,
                stats,
            }) => {
                let topics = versions.borrow().subscription().topics.clone();
                bus.ensure_topics(&topics).await?;
                let handler_loop = HandlerLoop::start(
                    &name,
                    versions,
                    bus.publisher().clone(),
                    bus.consumer_settings(),
                    stats,
                )?;
                loops.insert(name, handler_loop);
            }
            Ok(Loaded::Replaced { .. } | Loaded::Rejected { .. }) => {}
            Err(e) => tracing::error!(file = %file.display(), error = %e, "skipping file"),
        }
    }
    Ok(())
}

async fn wait_until_ready(state: &AppState, stopping: &CancellationToken) {
    let started = std::time::Instant::now();
    while !state.is_ready() {
        tokio::select! {
            () = stopping.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    tracing::info!(after = ?started.elapsed(), "ready: every handler is consuming");
}

async fn stop(
    stop_http: CancellationToken,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    loops: BTreeMap<String, HandlerLoop>,
    bus: &Bus,
    config: &Config,
) {
    stop_http.cancel();
    let drain = async {
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "HTTP server failed"),
            Err(e) => tracing::error!(error = %e, "HTTP server task failed"),
        }
        futures_util::future::join_all(loops.into_values().map(HandlerLoop::stop)).await;
    };
    if tokio::time::timeout(config.shutdown_timeout(), drain)
        .await
        .is_err()
    {
        tracing::warn!(timeout = ?config.shutdown_timeout(), "shut-down timed out; uncommitted events will be delivered again");
    }
    bus.flush(Duration::from_secs(5));
    tracing::info!("stopped");
}

//! Wires the parts together and owns the order of start-up and shut-down.
//!
//! Start-up: runtime, broker clients, the API (answering from the start;
//! `/health` says `starting` until ready), then — retrying while the broker
//! cannot be reached — the demo's topics, every handler in the handlers
//! folder with its topics and consume loop, the folder watcher (and, with
//! `--dev`, the source watcher), and "ready" once every consumer holds its
//! partitions.
//!
//! Shut-down: stop accepting requests and finish those in flight; stop
//! watching; stop every consume loop (the event in flight finishes, offsets
//! are committed, the group is left); deliver what the producer still holds;
//! stop the broker.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use notify::RecursiveMode;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AdminPolicy, AppState};
use crate::bus::Bus;
use crate::config::Config;
use crate::event::Topic;
use crate::registry::Registry;
use crate::runtime::{Limits, ReusePolicy, Runtime};
use crate::supervisor::Supervisor;
use crate::{devloop, watcher};

/// Which handlers run on reused instances, from the settings.
fn reuse_policy(config: &Config) -> ReusePolicy {
    let names = |names: &[String]| {
        names
            .iter()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect()
    };
    ReusePolicy {
        reuse: names(&config.reuse_instances),
        isolate: names(&config.isolate_instances),
        max_events: config.reuse_max_events,
        max_memory_percent: config.reuse_max_memory_percent,
        idle: std::time::Duration::from_millis(config.reuse_idle_ms),
    }
}

/// Runs the host until `shutdown` completes, then shuts down in order.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let limits = Limits {
        timeout: config.handler_timeout(),
        memory_bytes: config.handler_memory_mb.saturating_mul(1024 * 1024),
    };
    let compile_cache = config.compile_cache();
    let runtime =
        Arc::new(Runtime::new(limits, compile_cache.as_deref())?.with_reuse(reuse_policy(&config)));
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
    tracing::info!(allocator = ?runtime.allocator(), compile_cache = ?compile_cache, "wasm runtime ready");

    let registry = Arc::new(Registry::default());
    let handlers_dir = std::path::absolute(&config.handlers_dir)
        .with_context(|| format!("bad handlers folder {}", config.handlers_dir.display()))?;
    let supervisor = Supervisor::new(handlers_dir.clone(), runtime, registry.clone(), bus.clone());
    let stop_supervisor = CancellationToken::new();
    let (changes, supervisor_task) = supervisor.spawn(stop_supervisor.clone());
    // The cluster (instances, and the catalog if on) once the broker is up.
    let cluster_slot = crate::cluster::Slot::default();
    let changes = match config.catalog {
        true => changes.with_catalog(cluster_slot.clone()),
        false => changes,
    };

    let stopping = CancellationToken::new();
    let signal = {
        let stopping = stopping.clone();
        tokio::spawn(async move {
            shutdown.await;
            stopping.cancel();
        })
    };

    // The API answers from here on; `/health` says `starting` until ready.
    let admin = AdminPolicy::new(
        config.admin_token.as_ref().map(|t| t.expose().to_string()),
        config.bind_address,
    );
    let state = AppState::new(
        bus.clone(),
        registry.clone(),
        changes.clone(),
        admin,
        cluster_slot.clone(),
    );
    let advertised = advertised_url(&config, listener.local_addr()?);
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

    let startup = async {
        wait_for_broker(&bus, &state).await;
        let cluster = match config.catalog || broker.mode != "embedded" {
            true => {
                let settings = crate::cluster::Settings {
                    id: uuid::Uuid::new_v4().simple().to_string(),
                    url: advertised.clone(),
                    catalog_topic: config.catalog.then(|| config.catalog_topic.clone()),
                    instances_topic: config.instances_topic.clone(),
                    interval: Duration::from_millis(config.announce_interval_ms),
                };
                let started = crate::cluster::Cluster::start(
                    settings,
                    bus.clone(),
                    registry.clone(),
                    changes.clone(),
                )
                .await;
                match started {
                    Ok(cluster) => {
                        tracing::info!(instance = cluster.id(), url = %advertised, catalog = ?cluster.settings().catalog_topic, "taking part in the cluster");
                        let _ = cluster_slot.set(cluster.clone());
                        Some(cluster)
                    }
                    Err(e) if config.catalog => {
                        return Err(e.context("cannot use the handler catalog"));
                    }
                    // Without a catalog the instances topic only feeds
                    // `GET /cluster`: a client that may not create it
                    // still runs.
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "cannot announce this instance to the cluster; GET /cluster is off");
                        None
                    }
                }
            }
            false => None,
        };
        // Watch first, then scan: a file dropped in between is seen by
        // one or both (a second look at the same bytes changes nothing).
        let folder_watch = {
            let changes = changes.clone();
            watcher::watch(
                &handlers_dir,
                RecursiveMode::NonRecursive,
                watcher::QUIET,
                move |path| {
                    let changes = changes.clone();
                    async move { changes.file_changed(path).await }
                },
            )?
        };
        let files = Registry::scan(&handlers_dir)?;
        match cluster.as_ref().filter(|c| c.has_catalog()) {
            Some(cluster) => {
                state.set_waiting(Some("reading the handler catalog".into()));
                cluster.caught_up().await;
                state.set_waiting(None);
                crate::cluster::seed(cluster, &changes, &files).await?;
            }
            None => {
                // Load what is in the folder, through the same path as
                // later changes.
                if files.is_empty() {
                    tracing::warn!(
                        dir = %handlers_dir.display(),
                        "no handler components found: build them with `cargo build`, drop .wasm files here, or set HANDLERS_DIR"
                    );
                }
                for file in files {
                    if let Err(e) = changes.load_file(file.clone()).await {
                        tracing::error!(file = %file.display(), error = %e, "cannot start handler");
                    }
                }
            }
        }
        tracing::info!(dir = %handlers_dir.display(), "watching the handlers folder");
        let dev = match config.dev {
            true => Some(devloop::start(&config.workspace_dir, &handlers_dir)?),
            false => None,
        };
        state.set_started();
        anyhow::Ok((folder_watch, dev))
    };
    let started = tokio::select! {
        r = startup => Some(r),
        () = stopping.cancelled() => None,
    };
    let failed = match started {
        Some(Ok(watches)) => {
            wait_until_ready(&state, &stopping).await;
            watch_the_watchers(&watches, &state, &stopping).await;
            drop(watches);
            None
        }
        Some(Err(e)) => Some(e),
        None => None,
    };
    tracing::info!("shutting down");

    stop_http.cancel();
    let drain = async {
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "HTTP server failed"),
            Err(e) => tracing::error!(error = %e, "HTTP server task failed"),
        }
        if let Some(cluster) = cluster_slot.get() {
            cluster.stop().await;
        }
        drop((changes, state));
        stop_supervisor.cancel();
        match supervisor_task.await {
            Ok(supervisor) => supervisor.shutdown().await,
            Err(e) => tracing::error!(error = %e, "handler supervisor failed"),
        }
    };
    if tokio::time::timeout(config.shutdown_timeout(), drain)
        .await
        .is_err()
    {
        tracing::warn!(timeout = ?config.shutdown_timeout(), "shut-down timed out; uncommitted events will be delivered again");
    }
    signal.abort();
    bus.flush(Duration::from_secs(5));
    tracing::info!("stopped");
    match failed {
        Some(e) => Err(e.context("start-up failed")),
        None => Ok(()),
    }
}

/// How others reach this instance's API (see `Config::advertised_url`).
fn advertised_url(config: &Config, local: std::net::SocketAddr) -> String {
    if let Some(url) = &config.advertised_url {
        return url.clone();
    }
    let host = if local.ip().is_unspecified() {
        std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|h| h.trim().to_string())
                    .filter(|h| !h.is_empty())
            })
            .unwrap_or_else(|| local.ip().to_string())
    } else {
        local.ip().to_string()
    };
    format!("http://{host}:{}", local.port())
}

/// Creates the demo's topics, retrying with backoff while the broker cannot
/// be reached; `/health` says what it is waiting for meanwhile.
async fn wait_for_broker(bus: &Bus, state: &AppState) {
    let demo_topics: Vec<Topic> = [
        api::USER_EVENTS,
        api::ORDER_EVENTS,
        api::NOTIFICATION_EVENTS,
    ]
    .into_iter()
    .filter_map(|t| Topic::parse(t).ok())
    .collect();
    let mut delay = Duration::from_millis(500);
    loop {
        match bus.ensure_topics(&demo_topics).await {
            Ok(()) => {
                state.set_waiting(None);
                return;
            }
            Err(e) => {
                let why = format!(
                    "waiting for Kafka at {}: {e:#}",
                    bus.info().bootstrap_servers
                );
                tracing::warn!(retry_in = ?delay, "{why}");
                state.set_waiting(Some(why));
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Until the host stops, checks that the folder watcher and the dev loop
/// still run: one that died is logged once and reported by `/health`, since
/// new files would no longer be picked up.
async fn watch_the_watchers(
    (folder, dev): &(watcher::FolderWatch, Option<devloop::DevLoop>),
    state: &AppState,
    stopping: &CancellationToken,
) {
    let mut reported = (false, false);
    loop {
        tokio::select! {
            () = stopping.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        if folder.has_stopped() && !reported.0 {
            reported.0 = true;
            let problem = "the handlers-folder watcher stopped: new and changed files are not picked up until the host restarts (uploads still work)";
            tracing::error!("{problem}");
            state.add_problem(problem);
        }
        if dev.as_ref().is_some_and(devloop::DevLoop::has_stopped) && !reported.1 {
            reported.1 = true;
            let problem = "the --dev source watcher stopped: handler crates are not rebuilt until the host restarts";
            tracing::error!("{problem}");
            state.add_problem(problem);
        }
    }
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

//! Applies changes to the set of handlers — a file in the handlers folder
//! appeared, changed or went; an upload; a delete; a pause — one at a time,
//! and keeps exactly one consume loop per loaded handler.
//!
//! The handlers folder is the single source of truth: an upload is
//! validated, then written into the folder, and only then installed. A file
//! that fails validation never replaces a running version. A version that
//! subscribes to other topics is installed as a plan: its topics are
//! created and its consume loop started first, and only then does it
//! replace the running one; if any step fails, the running version keeps
//! serving, untouched, and saving the file again tries again.
//!
//! Replays and redrives run off this task (they take seconds), so an upload
//! or a pause never waits behind them. A consume loop that fails is started
//! again after a pause.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::bus::{Bus, HandlerLoop, LoopFailed};
use crate::registry::Registry;
use crate::runtime::Runtime;

mod catalog;
mod changes;
mod files;
mod loops;

use changes::Request;
pub use changes::{ChangeError, Changes, Uploaded, Validated};
pub use files::write_atomically;

/// The handler set and its consume loops.
pub struct Supervisor {
    dir: PathBuf,
    runtime: Arc<Runtime>,
    registry: Arc<Registry>,
    bus: Arc<Bus>,
    loops: BTreeMap<String, HandlerLoop>,
    failed_tx: mpsc::UnboundedSender<LoopFailed>,
    failed: mpsc::UnboundedReceiver<LoopFailed>,
    /// Handlers whose dead letters are being redriven now.
    redriving: Arc<Mutex<BTreeSet<String>>>,
}

impl Supervisor {
    pub fn new(
        dir: PathBuf,
        runtime: Arc<Runtime>,
        registry: Arc<Registry>,
        bus: Arc<Bus>,
    ) -> Self {
        let (failed_tx, failed) = mpsc::unbounded_channel();
        Self {
            dir,
            runtime,
            registry,
            bus,
            loops: BTreeMap::new(),
            failed_tx,
            failed,
            redriving: Arc::default(),
        }
    }

    /// Runs the supervisor as a task that applies changes in order until
    /// `stop` is cancelled (or every [`Changes`] is dropped); it then
    /// returns itself for shut-down.
    pub fn spawn(self, stop: CancellationToken) -> (Changes, tokio::task::JoinHandle<Self>) {
        let (tx, mut rx) = mpsc::channel::<Request>(64);
        let restarts = tx.downgrade();
        let task = tokio::spawn(async move {
            let mut this = self;
            loop {
                let request = tokio::select! {
                    biased;
                    () = stop.cancelled() => break,
                    Some(failed) = this.failed.recv() => {
                        this.loop_failed(failed, restarts.clone());
                        continue;
                    }
                    r = rx.recv() => r,
                };
                let Some(request) = request else {
                    break;
                };
                this.apply(request).await;
            }
            this
        });
        (Changes::new(tx), task)
    }

    async fn apply(&mut self, request: Request) {
        match request {
            Request::File(path, reply) => {
                let result = self.file_changed(&path).await;
                match reply {
                    Some(reply) => {
                        let _ = reply.send(result.map_err(ChangeError::Failed));
                    }
                    None => {
                        if let Err(e) = result {
                            tracing::error!(file = %path.display(), error = %e, "handler change failed");
                        }
                    }
                }
            }
            Request::Upload { name, bytes, reply } => {
                let _ = reply.send(self.upload(&name, bytes).await);
            }
            Request::Delete { name, reply } => {
                let _ = reply.send(self.delete(&name).await);
            }
            Request::Pause {
                name,
                paused,
                reply,
            } => {
                let _ = reply.send(self.pause(&name, paused));
            }
            Request::Replay { name, from, reply } => match self.loops.get(&name) {
                Some(handler_loop) => {
                    let replay = handler_loop.replay(from);
                    tokio::spawn(async move {
                        let _ = reply.send(replay.await.map_err(ChangeError::Failed));
                    });
                }
                None => {
                    let _ = reply.send(Err(ChangeError::NotFound(name)));
                }
            },
            Request::Redrive { name, reply } => self.redrive(name, reply),
            Request::Restart(failed) => self.restart(failed),
            Request::Validate { name, bytes, reply } => {
                let _ = reply.send(self.validate(&name, bytes).await);
            }
            Request::Catalog { change, reply } => {
                let _ = reply.send(self.apply_catalog(change).await);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use serde_json::value::RawValue;

    use super::*;
    use crate::config::Config;
    use crate::event::{Event, EventType, Topic};
    use crate::registry::Status;
    use crate::runtime::Limits;

    async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
        let started = Instant::now();
        while !check() {
            assert!(started.elapsed() < Duration::from_secs(60), "never: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A lane that panics (a bug in the host) is not left silent: the loop
    /// gives its partitions up, `GET /handlers` says `restarting` with the
    /// reason, and the loop comes back and handles the event it failed on.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_failed_lane_is_reported_and_its_loop_started_again() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info,rdkafka=warn"))
            .with_test_writer()
            .try_init();
        let dir = std::env::temp_dir().join(format!("event-host-restart-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../handlers/user-handler.wasm");
        let file = dir.join("panicky.wasm");
        std::fs::copy(&built, &file).unwrap();
        let mut config = Config::defaults();
        config.retry_backoff_ms = 20;
        let runtime = Arc::new(
            Runtime::new(
                Limits {
                    timeout: Duration::from_secs(5),
                    memory_bytes: 64 << 20,
                },
                None,
            )
            .unwrap(),
        );
        let bus = Arc::new(Bus::connect(&config).unwrap());
        let registry = Arc::new(Registry::default());
        let supervisor = Supervisor::new(dir.clone(), runtime, registry.clone(), bus.clone());
        let stop = CancellationToken::new();
        let (changes, task) = supervisor.spawn(stop.clone());
        changes.load_file(file).await.unwrap();
        wait_for("running", || {
            registry.get("panicky").unwrap().status == Status::Running
        })
        .await;

        crate::bus::test_hooks::panic_once("panicky");
        let topic = Topic::parse("user-events").unwrap();
        let event = Event::new(
            EventType::parse("NOT_FOR_THIS_HANDLER").unwrap(),
            None,
            RawValue::from_string("{}".into()).unwrap(),
        );
        bus.publisher()
            .publish(&topic, &event, crate::metrics::Source::Api)
            .await
            .unwrap();

        wait_for("reported as restarting", || {
            let h = registry.get("panicky").unwrap();
            h.status == Status::Restarting
                && h.last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("injected by a test"))
        })
        .await;
        // Started again; the event it failed on was not committed, so it is
        // taken again (and skipped: not a type this handler asked for).
        wait_for("handled after the restart", || {
            let h = registry.get("panicky").unwrap();
            h.status == Status::Running && h.counts.skipped == 1
        })
        .await;
        stop.cancel();
        task.await.unwrap().shutdown().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}

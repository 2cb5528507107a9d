//! Watches folders (the `notify` crate) and reports each changed path once
//! it has been quiet for a moment, so a file still being written (by `cp`,
//! or a compiler) is reported after its writer stops, not half-way. What is
//! reported is still validated before use: quiet is not proof of complete.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

/// How long a path must see no event before it is reported.
pub const QUIET: Duration = Duration::from_millis(100);

/// A running watch; dropping it stops watching.
pub struct FolderWatch {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FolderWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Watches `dir` (creating it if missing) and calls `report` with every
/// path that changed under it, once the path has been quiet for `quiet`.
pub fn watch<F, Fut>(
    dir: &Path,
    mode: RecursiveMode,
    quiet: Duration,
    report: F,
) -> anyhow::Result<FolderWatch>
where
    F: Fn(PathBuf) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (tx, mut rx) = mpsc::unbounded_channel::<PathBuf>();
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event) if !matches!(event.kind, EventKind::Access(_)) => {
                for path in event.paths {
                    let _ = tx.send(path);
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "folder watch error"),
        })
        .context("cannot create a folder watcher")?;
    watcher
        .watch(dir, mode)
        .with_context(|| format!("cannot watch {}", dir.display()))?;

    let task = tokio::spawn(async move {
        let mut pending: HashMap<PathBuf, Instant> = HashMap::new();
        loop {
            let next_due = pending.values().min().map(|t| *t + quiet);
            tokio::select! {
                path = rx.recv() => match path {
                    Some(path) => {
                        pending.insert(path, Instant::now());
                    }
                    None => return,
                },
                () = sleep_until(next_due) => {
                    let now = Instant::now();
                    let due: Vec<PathBuf> = pending
                        .iter()
                        .filter(|(_, t)| now.duration_since(**t) >= quiet)
                        .map(|(p, _)| p.clone())
                        .collect();
                    for path in due {
                        pending.remove(&path);
                        report(path).await;
                    }
                }
            }
        }
    });
    Ok(FolderWatch {
        _watcher: watcher,
        task,
    })
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

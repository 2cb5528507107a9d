//! Watches folders (the `notify` crate) and reports each changed path once
//! its writer is done: at once when the file was closed after writing or
//! renamed into place (an atomic write), otherwise after it has been quiet
//! for a moment, so a file still being written (by `cp`, or a compiler) is
//! not reported half-way. What is reported is still validated before use:
//! quiet is not proof of complete.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

/// How long a path must see no event before it is reported, unless the
/// event said the write is complete.
pub const QUIET: Duration = Duration::from_millis(100);

/// A running watch; dropping it stops watching.
pub struct FolderWatch {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl FolderWatch {
    /// Whether the task that reports changes has ended (it only does by
    /// failing, until the watch is dropped).
    pub fn has_stopped(&self) -> bool {
        self.task.is_finished()
    }
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
    let (tx, mut rx) = mpsc::unbounded_channel::<(PathBuf, Duration)>();
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event) => {
                let Some(wait) = settle_time(&event.kind, quiet) else {
                    return;
                };
                for path in event.paths {
                    let _ = tx.send((path, wait));
                }
            }
            Err(e) => tracing::warn!(error = %e, "folder watch error"),
        })
        .context("cannot create a folder watcher")?;
    watcher
        .watch(dir, mode)
        .with_context(|| format!("cannot watch {}", dir.display()))?;

    let task = tokio::spawn(async move {
        // When each changed path is due to be reported.
        let mut pending: HashMap<PathBuf, Instant> = HashMap::new();
        loop {
            let next_due = pending.values().min().copied();
            tokio::select! {
                event = rx.recv() => match event {
                    Some((path, wait)) => {
                        pending.insert(path, Instant::now() + wait);
                    }
                    None => return,
                },
                () = sleep_until(next_due) => {
                    let now = Instant::now();
                    let due: Vec<PathBuf> = pending
                        .iter()
                        .filter(|(_, t)| **t <= now)
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

/// How long to wait after an event before reporting its path: nothing when
/// the event says the write is complete, `quiet` when more may follow,
/// `None` for events that change nothing (reads).
fn settle_time(kind: &EventKind, quiet: Duration) -> Option<Duration> {
    use notify::event::{AccessKind, AccessMode, ModifyKind};
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(Duration::ZERO),
        EventKind::Access(_) => None,
        EventKind::Modify(ModifyKind::Name(_)) | EventKind::Remove(_) => Some(Duration::ZERO),
        _ => Some(quiet),
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, ModifyKind, RenameMode};

    #[test]
    fn completed_writes_are_reported_at_once_and_others_after_quiet() {
        let q = Duration::from_millis(100);
        let closed = EventKind::Access(AccessKind::Close(AccessMode::Write));
        let renamed = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        let written = EventKind::Modify(ModifyKind::Data(DataChange::Content));
        let created = EventKind::Create(CreateKind::File);
        let read = EventKind::Access(AccessKind::Open(AccessMode::Read));
        assert_eq!(settle_time(&closed, q), Some(Duration::ZERO));
        assert_eq!(settle_time(&renamed, q), Some(Duration::ZERO));
        assert_eq!(settle_time(&written, q), Some(q));
        assert_eq!(settle_time(&created, q), Some(q));
        assert_eq!(settle_time(&read, q), None);
    }
}

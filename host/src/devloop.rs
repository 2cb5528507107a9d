//! The development loop (`--dev`): watches the handler crates' sources (and
//! the WIT contract) and rebuilds the crate that changed for wasm32-wasip2
//! into the handlers folder, where the folder watcher picks it up like any
//! other new file. A failed build leaves the running version alone and
//! prints the compiler's errors.
//!
//! It builds with the `handler-dev` profile (no link-time optimisation, so a
//! save rebuilds in well under a second), and builds every handler crate
//! once at start, so that the first save does not wait for the crates'
//! dependencies.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use notify::RecursiveMode;
use tokio::sync::mpsc;

use crate::handler_crates::{self, Profile};
use crate::supervisor::write_atomically;
use crate::watcher::{self, FolderWatch};

/// What to rebuild.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Rebuild {
    /// A file changed in this folder under `handlers/`.
    One(String),
    /// The WIT contract changed: every handler.
    All,
}

/// Keeps the watches and the build task alive; dropping it stops them.
pub struct DevLoop {
    _watches: Vec<FolderWatch>,
    task: tokio::task::JoinHandle<()>,
}

impl DevLoop {
    /// Whether its build task or one of its watches has ended (they only do
    /// by failing, until the dev loop is dropped).
    pub fn has_stopped(&self) -> bool {
        self.task.is_finished() || self._watches.iter().any(FolderWatch::has_stopped)
    }
}

impl Drop for DevLoop {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn start(workspace: &Path, handlers_dir: &Path) -> anyhow::Result<DevLoop> {
    let workspace = workspace
        .canonicalize()
        .with_context(|| format!("workspace {} not found", workspace.display()))?;
    let crates_dir = workspace.join("handlers");
    let (tx, mut rx) = mpsc::unbounded_channel::<Rebuild>();

    let sources = {
        let tx = tx.clone();
        let crates_dir = crates_dir.clone();
        watcher::watch(
            &crates_dir.clone(),
            RecursiveMode::Recursive,
            watcher::QUIET * 2,
            move |path| {
                if let Some(rebuild) = what_to_rebuild(&crates_dir, &path) {
                    let _ = tx.send(rebuild);
                }
                async {}
            },
        )?
    };
    let wit = watcher::watch(
        &workspace.join("wit"),
        RecursiveMode::Recursive,
        watcher::QUIET * 2,
        move |_| {
            let _ = tx.send(Rebuild::All);
            async {}
        },
    )?;

    let handlers_dir = handlers_dir.to_path_buf();
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("handlers");
    tracing::info!(crates = %crates_dir.display(), "dev mode: rebuilding handler crates when their sources change");
    let task = tokio::spawn(async move {
        warm_up(&workspace, &target_dir, &crates_dir).await;
        while let Some(first) = rx.recv().await {
            // Coalesce what queued up while the last build ran.
            let mut todo = BTreeSet::from([first]);
            while let Ok(more) = rx.try_recv() {
                todo.insert(more);
            }
            let crates = match handler_crates::handler_crates(&crates_dir) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "dev mode: cannot read the handler crates");
                    continue;
                }
            };
            let names = to_build(&crates_dir, &crates, &todo);
            for name in names {
                build(&workspace, &target_dir, &handlers_dir, &name).await;
            }
        }
    });
    Ok(DevLoop {
        _watches: vec![sources, wit],
        task,
    })
}

/// Maps a changed path under `handlers/` to the crate to rebuild: a file in
/// a crate's folder (not its build output, not a built `.wasm`).
fn what_to_rebuild(crates_dir: &Path, path: &Path) -> Option<Rebuild> {
    let relative = path.strip_prefix(crates_dir).ok()?;
    let mut parts = relative.components();
    let crate_dir = parts.next()?.as_os_str().to_str()?.to_string();
    let inside: Vec<&str> = parts.filter_map(|c| c.as_os_str().to_str()).collect();
    let Some(file) = inside.last() else {
        // A new folder: files written into it at once may come before the
        // watch on it does (`event-host new`, `cp -r`), so the folder
        // itself stands for them.
        return path.is_dir().then_some(Rebuild::One(crate_dir));
    };
    if inside.first() == Some(&"target") || file.starts_with('.') || file.ends_with('~') {
        return None;
    }
    Some(Rebuild::One(crate_dir))
}

/// The handler crates to rebuild for `todo`: a handler crate itself; every
/// handler when a library crate changed (the SDK, its macros, shared code),
/// since handlers may use it; nothing for a folder that is not a crate.
fn to_build(
    crates_dir: &Path,
    crates: &[(String, PathBuf)],
    todo: &BTreeSet<Rebuild>,
) -> Vec<String> {
    let all = || crates.iter().map(|(name, _)| name.clone()).collect();
    let mut names = BTreeSet::new();
    for rebuild in todo {
        let Rebuild::One(dir) = rebuild else {
            return all();
        };
        let handler = crates
            .iter()
            .find(|(_, d)| d.file_name().and_then(|n| n.to_str()) == Some(dir.as_str()));
        match handler {
            Some((name, _)) => {
                names.insert(name.clone());
            }
            None if crates_dir.join(dir).join("Cargo.toml").is_file() => return all(),
            None => {}
        }
    }
    names.into_iter().collect()
}

/// Builds every handler crate with the dev profile, installing nothing: the
/// running versions stay, and the crates' dependencies are built before the
/// first save needs them (saves meanwhile wait, then build).
async fn warm_up(workspace: &Path, target_dir: &Path, crates_dir: &Path) {
    let Ok(crates) = handler_crates::handler_crates(crates_dir) else {
        return; // Said again, with the reason, at the first save.
    };
    if crates.is_empty() {
        return;
    }
    tracing::info!(
        "dev mode: building the handler crates once, so that a save rebuilds only its own"
    );
    let started = std::time::Instant::now();
    let names = crates.iter().map(|(name, _)| name.as_str());
    match cargo(workspace, target_dir, names).await {
        Ok(output) if output.status.success() => {
            tracing::info!(elapsed = ?started.elapsed(), "dev mode: ready for edits")
        }
        Ok(output) => tracing::warn!(
            "dev mode: a handler crate does not build yet; each is built again when its sources change\n{}",
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(e) => tracing::error!(error = %e, "dev mode: cannot run cargo"),
    }
}

/// Runs cargo's build of `names` with the dev profile; the build stops if
/// the dev loop does.
async fn cargo<'a>(
    workspace: &Path,
    target_dir: &Path,
    names: impl IntoIterator<Item = &'a str>,
) -> std::io::Result<std::process::Output> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let command = handler_crates::cargo_build(&cargo, workspace, target_dir, Profile::Dev, names);
    tokio::process::Command::from(command)
        .kill_on_drop(true)
        .output()
        .await
}

async fn build(workspace: &Path, target_dir: &Path, handlers_dir: &Path, name: &str) {
    tracing::info!(handler = name, "dev mode: building");
    let started = std::time::Instant::now();
    let output = cargo(workspace, target_dir, [name]).await;
    let output = match output {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(handler = name, error = %e, "dev mode: cannot run cargo");
            return;
        }
    };
    if !output.status.success() {
        tracing::error!(
            handler = name,
            "dev mode: build failed; the running version stays\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        return;
    }
    let built = handler_crates::built_component(target_dir, Profile::Dev, name);
    let installed = async {
        let bytes = tokio::fs::read(&built).await?;
        write_atomically(&handlers_dir.join(format!("{name}.wasm")), &bytes).await
    }
    .await;
    match installed {
        Ok(()) => {
            tracing::info!(handler = name, elapsed = ?started.elapsed(), "dev mode: built; reloading")
        }
        Err(e) => tracing::error!(handler = name, error = %e, "dev mode: cannot install the build"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_changes_map_to_their_crate() {
        let root = Path::new("/w/handlers");
        let r = |p: &str| what_to_rebuild(root, Path::new(p));
        assert_eq!(
            r("/w/handlers/user-handler/src/lib.rs"),
            Some(Rebuild::One("user-handler".into()))
        );
        assert_eq!(
            r("/w/handlers/user-handler/Cargo.toml"),
            Some(Rebuild::One("user-handler".into()))
        );
        assert_eq!(
            r("/w/handlers/sdk/src/lib.rs"),
            Some(Rebuild::One("sdk".into()))
        );
        assert_eq!(r("/w/handlers/user-handler.wasm"), None);
        assert_eq!(r("/w/handlers/user-handler/target/x"), None);
        assert_eq!(r("/w/handlers/user-handler/src/.lib.rs.swp"), None);
        assert_eq!(r("/elsewhere/x.rs"), None);
    }

    #[test]
    fn a_library_crate_rebuilds_every_handler_and_a_plain_folder_nothing() {
        let root = std::env::temp_dir().join(format!("devloop-{}", std::process::id()));
        for dir in ["sdk-macros", "a", "b"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
            std::fs::write(root.join(dir).join("Cargo.toml"), "").unwrap();
        }
        std::fs::create_dir_all(root.join("python-audit")).unwrap();
        let crates = vec![
            ("a".to_string(), root.join("a")),
            ("b-handler".to_string(), root.join("b")),
        ];
        let todo = |dirs: &[&str]| -> BTreeSet<Rebuild> {
            dirs.iter().map(|d| Rebuild::One(d.to_string())).collect()
        };
        assert_eq!(to_build(&root, &crates, &todo(&["b"])), ["b-handler"]);
        // A new crate folder counts as a change to that crate.
        assert_eq!(
            what_to_rebuild(&root, &root.join("b")),
            Some(Rebuild::One("b".into()))
        );
        assert_eq!(
            to_build(&root, &crates, &todo(&["sdk-macros"])),
            ["a", "b-handler"]
        );
        assert!(to_build(&root, &crates, &todo(&["python-audit"])).is_empty());
        let mut everything = todo(&["a"]);
        everything.insert(Rebuild::All);
        assert_eq!(to_build(&root, &crates, &everything), ["a", "b-handler"]);
        let _ = std::fs::remove_dir_all(&root);
    }
}

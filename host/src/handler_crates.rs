//! Which crates under `handlers/` are handlers, and where cargo puts their
//! components. Shared by the build script (which builds them all) and the
//! `--dev` loop (which rebuilds the one that changed).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The target handler components are built for.
pub const TARGET: &str = "wasm32-wasip2";

/// The cargo profile a handler component is built with (both are in the
/// workspace Cargo.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// As the host serves them (the build script, a build by hand):
    /// optimised across crates, which makes a call 7–12 % faster.
    Release,
    /// What `--dev` rebuilds on each save: the same without link-time
    /// optimisation, which would add ~0.7 s to every edit.
    Dev,
}

impl Profile {
    pub fn name(self) -> &'static str {
        match self {
            Profile::Release => "handler",
            Profile::Dev => "handler-dev",
        }
    }
}

/// `(package name, directory)` of every crate under `crates_dir` whose
/// library is a `cdylib`: those are handlers; the others (the SDK) are
/// libraries.
pub fn handler_crates(crates_dir: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let Ok(entries) = std::fs::read_dir(crates_dir) else {
        return Ok(Vec::new());
    };
    let mut crates = Vec::new();
    for dir in entries.filter_map(Result::ok).map(|e| e.path()) {
        let Ok(text) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        let manifest: toml::Table =
            toml::from_str(&text).map_err(|e| format!("{}/Cargo.toml: {e}", dir.display()))?;
        let Some(name) = manifest
            .get("package")
            .and_then(|p| p.get("name"))
            .and_then(|n| n.as_str())
        else {
            continue;
        };
        let is_cdylib = manifest
            .get("lib")
            .and_then(|lib| lib.get("crate-type"))
            .and_then(|t| t.as_array())
            .is_some_and(|types| types.iter().any(|t| t.as_str() == Some("cdylib")));
        if is_cdylib {
            crates.push((name.to_string(), dir));
        }
    }
    crates.sort();
    Ok(crates)
}

/// Where `cargo build --profile <profile> --target wasm32-wasip2` leaves the
/// component of package `name`.
pub fn built_component(target_dir: &Path, profile: Profile, name: &str) -> PathBuf {
    target_dir
        .join(TARGET)
        .join(profile.name())
        .join(format!("{}.wasm", name.replace('-', "_")))
}

/// `cargo build` of the handler crates `names` into `target_dir` with
/// `profile`, run from `workspace`. `cargo` is the cargo to run (the `CARGO`
/// cargo sets, where there is one).
pub fn cargo_build<'a>(
    cargo: &str,
    workspace: &Path,
    target_dir: &Path,
    profile: Profile,
    names: impl IntoIterator<Item = &'a str>,
) -> Command {
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args([
            "build",
            "--profile",
            profile.name(),
            "--target",
            TARGET,
            "--target-dir",
        ])
        .arg(target_dir);
    for name in names {
        cmd.args(["-p", name]);
    }
    cmd
}

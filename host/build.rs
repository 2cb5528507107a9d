//! Builds the workspace's handler crates (`handlers/*` with a `cdylib` lib)
//! into WebAssembly components and puts them into the default handlers
//! folder, `handlers/NAME.wasm`, so `cargo run` starts with them.
//!
//! A fresh toolchain lacks the `wasm32-wasip2` target and `rust-toolchain.toml`
//! does not add it to a toolchain that is already installed: this script adds
//! it with rustup, or stops with the command to run.
//!
//! Set `EVENT_HOST_SKIP_HANDLER_BUILD=1` to build the host alone.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

#[path = "src/handler_crates.rs"]
#[allow(dead_code)] // The dev loop's profile is the host's concern, not the build's.
mod handler_crates;

use handler_crates::{Profile, TARGET, built_component};

fn main() {
    emit_wasmtime_version();
    println!("cargo:rerun-if-env-changed=EVENT_HOST_SKIP_HANDLER_BUILD");
    if env::var_os("EVENT_HOST_SKIP_HANDLER_BUILD").is_some_and(|v| v != "0") {
        return;
    }
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir
        .parent()
        .expect("host/ is inside the workspace")
        .to_path_buf();
    let handlers_dir = workspace.join("handlers");

    // The SDK, its macros and the demos' shared code: every handler builds on them.
    let shared = [
        "handlers/sdk",
        "handlers/sdk-macros",
        "handlers/demo-common",
    ];
    for path in ["wit", "Cargo.toml", "Cargo.lock"].iter().chain(&shared) {
        println!("cargo:rerun-if-changed={}", workspace.join(path).display());
    }
    let crates = handler_crates::handler_crates(&handlers_dir).unwrap_or_else(|e| panic!("{e}"));
    // Sources only: watching the built files would rebuild the host once
    // more after every build that wrote them, and a handler file the user
    // deleted stays deleted until its crate changes.
    for (_, dir) in &crates {
        println!("cargo:rerun-if-changed={}", dir.display());
    }
    if crates.is_empty() {
        return;
    }

    ensure_target();
    let target_dir = target_dir().join("handlers");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let names = crates.iter().map(|(name, _)| name.as_str());
    let mut cmd =
        handler_crates::cargo_build(&cargo, &workspace, &target_dir, Profile::Release, names);
    clean_env(&mut cmd);
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo: {e}"));
    if !output.status.success() {
        panic!(
            "building the handler components failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    for (name, _) in &crates {
        let from = built_component(&target_dir, Profile::Release, name);
        let to = handlers_dir.join(format!("{name}.wasm"));
        install(&from, &to);
    }
}

/// Adds the wasm32-wasip2 target to the active toolchain when it is missing.
fn ensure_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let installed = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .is_some_and(|dir| dir.is_dir());
    if installed {
        return;
    }
    println!("cargo:warning=the {TARGET} target is missing; running `rustup target add {TARGET}`");
    let added = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .is_ok_and(|s| s.success());
    if !added {
        panic!(
            "the {TARGET} target is needed to build the handler components.\n\
             Install it with:\n\n    rustup target add {TARGET}\n"
        );
    }
}

/// The build's target directory: the ancestor of OUT_DIR that cargo marked
/// with CACHEDIR.TAG.
fn target_dir() -> PathBuf {
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    out_dir
        .ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| out_dir.join("target"))
}

/// Removes what cargo set for *this* build script so the nested build
/// configures itself from scratch (keeping the jobserver, to share cores).
fn clean_env(cmd: &mut Command) {
    const KEEP: &[&str] = &["CARGO_HOME", "CARGO_MAKEFLAGS"];
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let cargo_set = key.starts_with("CARGO_")
            && !KEEP.contains(&key)
            && !key.starts_with("CARGO_NET_")
            && !key.starts_with("CARGO_HTTP_")
            && !key.starts_with("CARGO_REGISTR");
        let build_set = matches!(
            key,
            "RUSTFLAGS"
                | "RUSTC_WORKSPACE_WRAPPER"
                | "RUSTC_WRAPPER"
                | "TARGET"
                | "HOST"
                | "OUT_DIR"
                | "OPT_LEVEL"
                | "PROFILE"
                | "DEBUG"
                | "NUM_JOBS"
                | "RUSTDOC"
        );
        if cargo_set || build_set {
            cmd.env_remove(key);
        }
    }
}

/// Copies a built component into the handlers folder when it changed,
/// through a temporary file and a rename, so a running host watching the
/// folder never sees half a file.
fn install(from: &Path, to: &Path) {
    let bytes = fs::read(from).unwrap_or_else(|e| panic!("cannot read {}: {e}", from.display()));
    if fs::read(to).is_ok_and(|old| old == bytes) {
        return;
    }
    let tmp = to.with_extension("wasm.tmp");
    fs::write(&tmp, &bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", tmp.display()));
    fs::rename(&tmp, to).unwrap_or_else(|e| panic!("cannot write {}: {e}", to.display()));
}

/// `WASMTIME_VERSION` for the host's build-info metric: the release
/// Cargo.lock resolved.
fn emit_wasmtime_version() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let lock = manifest_dir.join("../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let version = fs::read_to_string(&lock)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .and_then(|lock| {
            lock.get("package")?
                .as_array()?
                .iter()
                .find(|p| p.get("name").and_then(|n| n.as_str()) == Some("wasmtime"))?
                .get("version")?
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=WASMTIME_VERSION={version}");
}

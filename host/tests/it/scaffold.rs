//! `event-host new`: the crate it writes builds on the first try, its own
//! tests pass, and the built component handles an event in the host's
//! runtime. Run in a copy of the workspace (the SDK, its macros, the root
//! manifest and lock file), so the real one is left alone.

use std::path::{Path, PathBuf};
use std::process::Command;

use event_host::runtime::Level;
use event_host::testing::Harness;
use serde_json::json;

use crate::support::workspace;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() != "target" {
                copy_dir(&src, &dst);
            }
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// The workspace's root manifest and lock file, the contract and the SDK
/// crates under `handlers/`, in a fresh folder `name` (one per test: tests
/// run at once).
pub(crate) fn workspace_copy(name: &str) -> PathBuf {
    let real = workspace();
    let copy = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&copy);
    for library in ["sdk", "sdk-macros"] {
        copy_dir(
            &real.join("handlers").join(library),
            &copy.join("handlers").join(library),
        );
    }
    copy_dir(&real.join("wit"), &copy.join("wit"));
    let mut manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(real.join("Cargo.toml")).unwrap()).unwrap();
    let ws = manifest["workspace"].as_table_mut().unwrap();
    ws.insert(
        "members".into(),
        toml::Value::Array(vec!["handlers/*".into()]),
    );
    ws.remove("exclude");
    ws.remove("default-members");
    std::fs::write(copy.join("Cargo.toml"), manifest.to_string()).unwrap();
    std::fs::copy(real.join("Cargo.lock"), copy.join("Cargo.lock")).unwrap();
    copy
}

pub(crate) fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run the command");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

#[test]
fn a_new_handler_builds_passes_its_tests_and_runs() {
    let ws = workspace_copy("scaffold-workspace");
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("scaffold-target");
    let said = run(Command::new(env!("CARGO_BIN_EXE_event-host"))
        .args(["new", "audit-log", "--topic", "order-events"])
        .args(["--event-type", "ORDER_CREATED", "--workspace-dir"])
        .arg(&ws));
    assert!(said.contains("cargo test -p audit-log"), "{said}");
    // Bad names and existing crates are refused, and nothing is written.
    for bad in [
        &["new", "Audit"][..],
        &["new", "audit-log"],
        &["new", "sdk"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_event-host"))
            .args(bad)
            .arg("--workspace-dir")
            .arg(&ws)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad:?} was accepted");
    }

    let cargo = || {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(&ws)
            .env_remove("RUSTFLAGS")
            .arg("--color=never");
        cmd
    };
    let tested = run(cargo()
        .args(["test", "-p", "audit-log", "--target-dir"])
        .arg(&target));
    assert!(tested.contains("2 passed"), "{tested}");
    run(cargo()
        .args(["build", "-p", "audit-log", "--profile", "handler"])
        .args(["--target", "wasm32-wasip2", "--target-dir"])
        .arg(&target));

    let harness = Harness::new().unwrap();
    let handler = harness
        .load(target.join("wasm32-wasip2/handler/audit_log.wasm"))
        .unwrap();
    let topics: Vec<_> = handler
        .subscription()
        .topics
        .iter()
        .map(|t| t.to_string())
        .collect();
    assert_eq!(topics, ["order-events"]);
    let run = handler
        .event("order-events", "ORDER_CREATED")
        .user_id("u-7")
        .data(json!({"name": "Ada"}))
        .handle();
    assert!(run.result.is_ok(), "{run:?}");
    assert_eq!(run.lines(Level::Info), ["audit-log: Ada (user u-7)"]);
}

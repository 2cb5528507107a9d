//! `--dev` end to end, as a handler developer runs it: the host binary in
//! dev mode on a copy of the workspace with a crate `event-host new` wrote,
//! then saves of that crate's source, each served as a new version.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::scaffold::{run, workspace_copy};
use crate::support::{self, HostProcess, PATIENCE};

const NAME: &str = "dev-probe";

/// `GET /handlers/NAME` once it answers with a `running` status whose
/// version is not `not`; `None` until then.
fn running_version(host: &HostProcess, not: Option<&str>) -> Option<String> {
    let url = format!("http://{}/handlers/{NAME}", host.addr);
    let view: Value = reqwest::blocking::get(url).ok()?.json().ok()?;
    let version = view["version"].as_str()?;
    (view["status"] == "running" && Some(version) != not).then(|| version.to_string())
}

/// Waits for a version of the handler other than `not` to be serving.
fn wait_new_version(host: &mut HostProcess, not: Option<&str>) -> String {
    let started = Instant::now();
    loop {
        if let Some(version) = running_version(host, not) {
            return version;
        }
        host.drain();
        assert!(
            started.elapsed() < PATIENCE,
            "no new version of {NAME} serving; log:\n{}",
            host.log.join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Saves the crate's source with `text` in place of the log line's prefix.
fn save(lib: &Path, from: &str, to: &str) {
    let source = std::fs::read_to_string(lib).unwrap();
    assert!(source.contains(from), "{from:?} not in {}", lib.display());
    std::fs::write(lib, source.replace(from, to)).unwrap();
}

#[test]
fn in_dev_mode_each_save_of_a_handler_crate_is_served_as_a_new_version() {
    let ws = workspace_copy("dev-loop-workspace");
    run(Command::new(env!("CARGO_BIN_EXE_event-host"))
        .args([
            "new",
            NAME,
            "--topic",
            "dev-events",
            "--event-type",
            "PROBE",
        ])
        .arg("--workspace-dir")
        .arg(&ws));
    let handlers = support::temp_handlers_dir("dev-loop");
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dev-loop-target");
    let mut host = HostProcess::spawn(&[
        ("HANDLERS_DIR", handlers.to_str().unwrap()),
        ("WORKSPACE_DIR", ws.to_str().unwrap()),
        ("CARGO_TARGET_DIR", target.to_str().unwrap()),
        ("DEV", "true"),
    ]);

    // At start the dev loop builds every handler crate once, with the dev
    // profile, so that a save rebuilds only its crate. On a fresh machine
    // that builds their dependencies too, beside the other tests.
    host.wait_for_within("dev mode: ready for edits", Duration::from_secs(600));
    let warmed = target.join("handlers/wasm32-wasip2/handler-dev/dev_probe.wasm");
    assert!(warmed.is_file(), "{} not built", warmed.display());

    // A save builds the crate into the handlers folder, and it serves.
    let lib = ws.join("handlers").join(NAME).join("src/lib.rs");
    save(&lib, "\"dev-probe: {}", "\"dev-probe round 1: {}");
    let first = wait_new_version(&mut host, None);
    assert!(handlers.join(format!("{NAME}.wasm")).is_file());

    let events = format!("http://{}/events/dev-events", host.addr);
    let post = |name: &str| {
        let r = reqwest::blocking::Client::new()
            .post(&events)
            .json(&json!({"type": "PROBE", "userId": "u-1", "data": {"name": name}}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
    };
    post("Ada");
    let line = host.wait_for("dev-probe round 1: Ada");
    assert!(line.contains("(user u-1)"), "{line}");

    // The next save replaces it; the new text is what the next event logs.
    save(&lib, "round 1:", "round 2:");
    let second = wait_new_version(&mut host, Some(&first));
    assert_ne!(first, second);
    post("Bob");
    host.wait_for("dev-probe round 2: Bob");

    // A save that does not compile leaves the running version serving.
    save(&lib, "round 2:", "round 3:\" + ");
    host.wait_for("dev mode: build failed; the running version stays");
    assert_eq!(
        running_version(&host, None).as_deref(),
        Some(second.as_str())
    );
}

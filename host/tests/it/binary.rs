//! The `event-host` binary as a user runs it: configured by environment,
//! embedded broker by default, stopped cleanly by SIGTERM and SIGINT.

use crate::support::{self, HostProcess};

fn run_and_stop(signal: &str) {
    let dir = support::temp_handlers_dir(&format!("binary-{signal}"));
    support::install_demo_handlers(&dir, &["user-handler", "notification-analytics"]);
    let mut host = HostProcess::spawn(&[("HANDLERS_DIR", dir.to_str().unwrap())]);
    let warning = host.wait_for("EMBEDDED");
    assert!(warning.contains("WARN"), "{warning}");
    host.wait_for("ready: every handler is consuming");

    let health = reqwest::blocking::get(format!("http://{}/health", host.addr)).unwrap();
    assert_eq!(health.status(), 200);

    // What handlers print lands in the host's log, tagged with the handler.
    let r = reqwest::blocking::Client::new()
        .post(format!("http://{}/users", host.addr))
        .json(&serde_json::json!({"name": "Ada", "email": "ada@example.com", "age": 36}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let line = host.wait_for("Analytics: Notification sent - Type: welcome");
    assert!(line.contains("handler=notification-analytics"), "{line}");
    assert!(line.contains("event_id="), "{line}");

    host.signal(signal);
    host.wait_for("consumer group left");
    host.wait_for("stopped");
    let exit = host.wait_exit();
    assert!(exit.success(), "{exit}; log:\n{}", host.log.join("\n"));
}

#[test]
fn sigterm_stops_the_host_cleanly() {
    run_and_stop("-TERM");
}

#[test]
fn sigint_stops_the_host_cleanly() {
    run_and_stop("-INT");
}

/// A handler's log lines (through the SDK) and its printed text (WASI stdout
/// and stderr) reach the host's log in the order written, at their levels,
/// tagged with the handler and the event.
#[test]
fn handler_log_lines_keep_their_level_and_order() {
    let dir = support::temp_handlers_dir("binary-log-levels");
    std::fs::copy(
        support::test_component("fault-handler"),
        dir.join("faulty.wasm"),
    )
    .unwrap();
    let mut host = HostProcess::spawn(&[
        ("HANDLERS_DIR", dir.to_str().unwrap()),
        ("RUST_LOG", "info,event_host::runtime=debug,rdkafka=warn"),
    ]);
    host.wait_for("ready: every handler is consuming");

    let r = reqwest::blocking::Client::new()
        .post(format!("http://{}/events/faults", host.addr))
        .json(&serde_json::json!({"type": "FAULT", "data": {"action": "log"}}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<serde_json::Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    let expected = [
        ("DEBUG", "a debug line"),
        ("INFO", "an info line"),
        ("INFO", "in two lines"),
        ("INFO", "printed, then finished"),
        ("WARN", "a warning"),
        ("WARN", "to stderr"),
        ("ERROR", "an error, id "),
        ("INFO", "printed last, without a newline"),
        ("WARN", "no final newline"),
    ];
    let first = host.wait_for("a debug line");
    let mut lines = vec![first];
    for _ in 1..expected.len() {
        lines.push(host.wait_for("handler=faulty"));
    }
    for (line, (level, text)) in lines.iter().zip(expected) {
        assert!(line.contains(level), "{line:?} is not at {level}");
        assert!(line.contains(text), "{line:?} does not say {text:?}");
        assert!(line.contains("handler=faulty"), "{line}");
        assert!(line.contains(&format!("event_id={id}")), "{line}");
    }
    // The id came from the host: a UUID v4.
    let after = lines[6].split("an error, id ").nth(1).unwrap();
    let uuid = after.get(..36).unwrap_or(after);
    let uuid = uuid::Uuid::parse_str(uuid).unwrap_or_else(|e| panic!("{uuid:?}: {e}"));
    assert_eq!(uuid.get_version_num(), 4);
}

/// Switches set by environment take the usual spellings: `DEV=1` turns dev
/// mode on, as `DEV=true` does; a value that is not a yes or a no is refused.
#[test]
fn dev_mode_is_switched_on_by_dev_1() {
    let workspace = support::workspace();
    let dir = support::temp_handlers_dir("binary-dev-1");
    let mut host = HostProcess::spawn(&[
        ("HANDLERS_DIR", dir.to_str().unwrap()),
        ("WORKSPACE_DIR", workspace.to_str().unwrap()),
        ("DEV", "1"),
    ]);
    host.wait_for("dev mode: rebuilding handler crates");
    host.signal("-TERM");
    assert!(host.wait_exit().success());

    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_event-host"))
        .env("DEV", "maybe")
        .env("PORT", "0")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("maybe") && stderr.contains("--dev"),
        "{stderr}"
    );
}

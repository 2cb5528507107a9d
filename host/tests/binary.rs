//! The `event-host` binary as a user runs it: configured by environment,
//! embedded broker by default, stopped cleanly by SIGTERM and SIGINT.

mod support;

use support::HostProcess;

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

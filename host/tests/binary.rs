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

//! The `event-host` binary as a user runs it: configured by environment,
//! embedded broker by default, stopped cleanly by SIGTERM and SIGINT.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::PATIENCE;

fn run_and_stop(signal: &str) {
    let dir = support::temp_handlers_dir(&format!("binary-{signal}"));
    support::install_demo_handlers(&dir, &["user-handler", "notification-analytics"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_event-host"))
        .env_remove("KAFKA_BROKERS")
        .env("PORT", "0")
        .env("HANDLERS_DIR", &dir)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let tx = lines_tx.clone();
    std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .for_each(|l| drop(tx.send(l)))
    });
    std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .for_each(|l| drop(lines_tx.send(l)))
    });

    let mut log = Vec::new();
    let wait_for = |needle: &str, log: &mut Vec<String>| -> String {
        let started = Instant::now();
        loop {
            let left = PATIENCE.saturating_sub(started.elapsed());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("never logged {needle:?}; log:\n{}", log.join("\n")),
            }
        }
    };
    let listening = wait_for("API listening on http://", &mut log);
    let addr = listening
        .rsplit("http://")
        .next()
        .unwrap()
        .trim()
        .to_string();
    let warning = wait_for("EMBEDDED", &mut log);
    assert!(warning.contains("WARN"), "{warning}");
    wait_for("ready: every handler is consuming", &mut log);

    let health = reqwest::blocking::get(format!("http://{addr}/health")).unwrap();
    assert_eq!(health.status(), 200);

    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for("consumer group left", &mut log);
    wait_for("stopped", &mut log);
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(started.elapsed() < PATIENCE, "the host did not exit");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit}; log:\n{}", log.join("\n"));
}

#[test]
fn sigterm_stops_the_host_cleanly() {
    run_and_stop("-TERM");
}

#[test]
fn sigint_stops_the_host_cleanly() {
    run_and_stop("-INT");
}

//! librdkafka properties from the environment and a config file, as an
//! operator sets them for a secured cluster: each reaches every Kafka client
//! the host makes, a bad one stops the start with its name, and a secret
//! never shows.
//!
//! The properties are checked by librdkafka's own account: with
//! `debug=conf` each client logs its configuration when it is created
//! (secrets redacted by librdkafka), and the host forwards that log.
//!
//! TLS and SASL against a broker are not tested here: tansu 0.6's CLI
//! refuses `--cert` together with `--key`, and it has no SASL listener
//! setting (see the README, "Operating a cluster").

use crate::support::{self, HostProcess, Tansu};

const SECRET: &str = "hunter2-not-shown";

#[test]
#[ignore = "needs the tansu broker on PATH; run with: cargo test --workspace -- --include-ignored"]
fn properties_reach_every_client_and_secrets_stay_hidden() {
    let broker = Tansu::start();
    let dir = support::temp_handlers_dir("kafka-properties");
    support::install_demo_handlers(&dir, &["user-handler", "notification-analytics"]);
    let file = dir.join("kafka.properties");
    std::fs::write(
        &file,
        format!(
            "# as a managed Kafka's client.properties\nclient.id=from-the-file\nsasl.username=ops\nsasl.password={SECRET}\n"
        ),
    )
    .unwrap();
    let mut host = HostProcess::spawn(&[
        ("KAFKA_BROKERS", broker.bootstrap.as_str()),
        ("HANDLERS_DIR", dir.to_str().unwrap()),
        ("KAFKA_CONFIG_FILE", file.to_str().unwrap()),
        // The environment wins over the file.
        ("KAFKA_CLIENT_CLIENT_ID", "probe-7"),
        ("KAFKA_CLIENT_DEBUG", "conf"),
        ("KAFKA_CLIENT_SSL_KEY_PASSWORD", SECRET),
        ("RUST_LOG", "info,librdkafka=debug,rdkafka=debug"),
    ]);
    host.wait_for("ready: every handler is consuming");

    let health: serde_json::Value = reqwest::blocking::get(format!("http://{}/health", host.addr))
        .unwrap()
        .json()
        .unwrap();
    let shown = &health["broker"]["properties"];
    assert_eq!(shown["client.id"], "probe-7", "{health}");
    assert_eq!(shown["sasl.username"], "ops", "{health}");
    assert_eq!(shown["sasl.password"], "[redacted]", "{health}");
    assert_eq!(shown["ssl.key.password"], "[redacted]", "{health}");

    host.signal("-TERM");
    assert!(host.wait_exit().success());
    let log = host.log.join("\n");
    // The producer and each handler's consumer logged their configuration,
    // each with the property. (The admin client logs none when it is
    // created; it is made from the same base, which a unit test checks of
    // every client in the source.)
    let clients = log.matches("Client configuration:").count();
    let with_id = log.matches("client.id = probe-7").count();
    assert!(
        log.contains("enable.idempotence = true"),
        "no producer:\n{log}"
    );
    for group in ["user-handler", "notification-analytics"] {
        assert!(
            log.contains(&format!("group.id = {group}")),
            "no consumer {group}:\n{log}"
        );
    }
    assert!(
        clients >= 3,
        "{clients} clients logged their configuration:\n{log}"
    );
    assert_eq!(with_id, clients, "a client without the property:\n{log}");
    assert!(
        !log.contains("from-the-file"),
        "the file's client.id was used:\n{log}"
    );
    assert!(!log.contains(SECRET), "a secret in the log:\n{log}");
}

#[test]
fn a_bad_property_stops_the_start_naming_it() {
    let dir = support::temp_handlers_dir("kafka-properties-bad");
    let run = |env: &[(&str, &str)]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_event-host"))
            .env_remove("KAFKA_BROKERS")
            .env("PORT", "0")
            .env("HANDLERS_DIR", &dir)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!out.status.success(), "started with {env:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let stderr = run(&[("KAFKA_CLIENT_NO_SUCH_PROPERTY", "1")]);
    assert!(
        stderr.contains("KAFKA_CLIENT_NO_SUCH_PROPERTY: no.such.property")
            && stderr.contains("No such configuration property"),
        "{stderr}"
    );
    let stderr = run(&[
        ("KAFKA_CLIENT_SECURITY_PROTOCOL", "carrier-pigeon"),
        ("KAFKA_CLIENT_SASL_PASSWORD", SECRET),
    ]);
    assert!(stderr.contains("security.protocol"), "{stderr}");
    assert!(
        !stderr.contains(SECRET),
        "a secret in the output:\n{stderr}"
    );
    let stderr = run(&[("KAFKA_CLIENT_ENABLE_AUTO_COMMIT", "true")]);
    assert!(
        stderr.contains("enable.auto.commit cannot be set"),
        "{stderr}"
    );
    let missing = dir.join("no-such.properties");
    let stderr = run(&[("KAFKA_CONFIG_FILE", missing.to_str().unwrap())]);
    assert!(
        stderr.contains("cannot read KAFKA_CONFIG_FILE") && stderr.contains("no-such.properties"),
        "{stderr}"
    );
}

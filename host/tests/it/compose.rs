//! Checks the values in `docker-compose.yml` that make the documented local
//! setup work: `docker compose up -d`, then the host on the host machine with
//! `KAFKA_BROKERS=localhost:9092`, and Kafka UI inside the compose network;
//! and what watches the host: Prometheus scraping it on that machine, Grafana
//! with its provisioned datasource and dashboard (`deploy/`), Jaeger taking
//! its traces, on the ports the README names. The `event-host` service,
//! the host itself in compose, is checked in compose_service.rs with the
//! helpers shared from here.
//!
//! No Docker engine is needed: the files are parsed and cross-checked the way
//! the broker, Prometheus, Grafana and the clients will read them. One test
//! starts the host in this process, on the embedded broker, to check that
//! every metric the dashboard queries is one the host really serves.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use event_host::Config;
use serde_json::Value as Json;
use serde_yaml_ng::{Mapping, Value};

use crate::support::{self, TestHost, install_demo_handlers, temp_handlers_dir};

const HOST_BOOTSTRAP: &str = "localhost:9092";

/// A file of the repository, by its path from the repository's root.
pub(crate) fn repo_path(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

fn compose_path() -> PathBuf {
    repo_path("docker-compose.yml")
}

pub(crate) fn compose() -> Value {
    let path = compose_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

pub(crate) fn services(compose: &Value) -> &Mapping {
    compose
        .get("services")
        .and_then(Value::as_mapping)
        .expect("docker-compose.yml has a `services` mapping")
}

pub(crate) fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    services(compose)
        .get(name)
        .unwrap_or_else(|| panic!("docker-compose.yml has no `{name}` service"))
}

/// A YAML scalar as the string a container sees in its environment.
pub(crate) fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        other => panic!("expected a scalar, found {other:?}"),
    }
}

/// A service's environment, in either of compose's two forms (a mapping, or
/// a list of `NAME=value`).
pub(crate) fn environment(service: &Value) -> BTreeMap<String, String> {
    match service.get("environment") {
        None => BTreeMap::new(),
        Some(Value::Mapping(map)) => map.iter().map(|(k, v)| (scalar(k), scalar(v))).collect(),
        Some(Value::Sequence(list)) => list
            .iter()
            .map(|entry| {
                let entry = scalar(entry);
                let (k, v) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        Some(other) => panic!("unexpected environment: {other:?}"),
    }
}

fn env_var<'a>(env: &'a BTreeMap<String, String>, name: &str) -> &'a str {
    env.get(name)
        .unwrap_or_else(|| panic!("the kafka service does not set {name}"))
        .as_str()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listener {
    pub(crate) name: String,
    /// Empty when the listener binds every interface (`NAME://:port`).
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl Listener {
    pub(crate) fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Parses one `NAME://host:port` listener (host may be empty or `[v6]`).
fn parse_listener(text: &str) -> Listener {
    let (name, address) = text
        .split_once("://")
        .unwrap_or_else(|| panic!("listener `{text}` is not NAME://host:port"));
    let (host, port) = address
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("listener `{text}` has no port"));
    assert!(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
        "listener `{text}` has a bad name"
    );
    let port = port
        .parse()
        .unwrap_or_else(|e| panic!("listener `{text}` has a bad port: {e}"));
    Listener {
        name: name.to_owned(),
        host: host.to_owned(),
        port,
    }
}

/// Parses a comma-separated listener list; names must be unique.
fn parse_listeners(text: &str) -> Vec<Listener> {
    let listeners: Vec<Listener> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_listener)
        .collect();
    let mut names: Vec<&str> = listeners.iter().map(|l| l.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(
        names.len(),
        listeners.len(),
        "duplicate listener names in `{text}`"
    );
    listeners
}

fn by_name<'a>(listeners: &'a [Listener], name: &str, what: &str) -> &'a Listener {
    listeners
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("{what} has no listener named {name}: {listeners:?}"))
}

/// `NAME:PROTOCOL,...` to a map.
fn protocol_map(text: &str) -> BTreeMap<String, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let (name, protocol) = pair
                .split_once(':')
                .unwrap_or_else(|| panic!("protocol map entry `{pair}` is not NAME:PROTOCOL"));
            (name.to_owned(), protocol.to_owned())
        })
        .collect()
}

fn comma_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A published port: (host port, container port); a range of host ports
/// (`"3010-3019:3000"`, one per replica) gives each of its ports.
pub(crate) fn published_ports(service: &Value) -> Vec<(u16, u16)> {
    published_ranges(service)
        .into_iter()
        .flat_map(|(hosts, container)| hosts.map(move |host| (host, container)))
        .collect()
}

/// A service's published ports as written: (host ports, container port).
pub(crate) fn published_ranges(service: &Value) -> Vec<(RangeInclusive<u16>, u16)> {
    let Some(ports) = service.get("ports") else {
        return Vec::new();
    };
    let ports = ports.as_sequence().expect("`ports` is a list");
    ports
        .iter()
        .map(|entry| match entry {
            Value::Mapping(long) => {
                let target = long
                    .get("target")
                    .map(scalar)
                    .expect("long port syntax has a target");
                let published = long
                    .get("published")
                    .map(scalar)
                    .expect("long port syntax has `published`");
                (
                    port_range(&published),
                    target.parse().expect("numeric target port"),
                )
            }
            short => {
                let short = scalar(short);
                let spec = short.split('/').next().unwrap_or_default();
                let parts: Vec<&str> = spec.split(':').collect();
                assert!(
                    parts.len() >= 2,
                    "port `{short}` is not published to the host (no HOST:CONTAINER)"
                );
                let container = parts[parts.len() - 1];
                let host = parts[parts.len() - 2];
                (
                    port_range(host),
                    container
                        .parse()
                        .unwrap_or_else(|e| panic!("port `{short}`: {e}")),
                )
            }
        })
        .collect()
}

/// `3000` or `3010-3019`.
fn port_range(text: &str) -> RangeInclusive<u16> {
    let port = |p: &str| {
        p.parse::<u16>()
            .unwrap_or_else(|e| panic!("port `{text}`: {e}"))
    };
    let range = match text.split_once('-') {
        Some((first, last)) => port(first)..=port(last),
        None => port(text)..=port(text),
    };
    assert!(!range.is_empty(), "port range `{text}` is empty");
    range
}

pub(crate) struct Kafka {
    pub(crate) env: BTreeMap<String, String>,
    pub(crate) listeners: Vec<Listener>,
    pub(crate) advertised: Vec<Listener>,
    protocols: BTreeMap<String, String>,
    controller_names: Vec<String>,
}

pub(crate) fn kafka(compose: &Value) -> Kafka {
    let env = environment(service(compose, "kafka"));
    let listeners = parse_listeners(env_var(&env, "KAFKA_LISTENERS"));
    let advertised = parse_listeners(env_var(&env, "KAFKA_ADVERTISED_LISTENERS"));
    let protocols = protocol_map(env_var(&env, "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"));
    let controller_names = comma_list(env_var(&env, "KAFKA_CONTROLLER_LISTENER_NAMES"));
    Kafka {
        env,
        listeners,
        advertised,
        protocols,
        controller_names,
    }
}

#[test]
fn the_host_machine_reaches_kafka_on_localhost_9092() {
    let compose = compose();
    let kafka = kafka(&compose);
    let published = published_ports(service(&compose, "kafka"));

    // The host's client bootstraps from localhost:9092 and then uses the
    // address the broker advertises; it must be that same address.
    let host_listener = kafka
        .advertised
        .iter()
        .find(|l| l.port == 9092)
        .unwrap_or_else(|| {
            panic!(
                "no advertised listener on port 9092: {:?}",
                kafka.advertised
            )
        });
    assert_eq!(host_listener.address(), HOST_BOOTSTRAP);

    // Host port 9092 is published to the container port that this listener
    // binds.
    let bound = by_name(&kafka.listeners, &host_listener.name, "KAFKA_LISTENERS");
    assert!(
        bound.host.is_empty() || bound.host == "0.0.0.0",
        "{} must bind every interface to be reachable through the published port, not `{}`",
        bound.name,
        bound.host
    );
    assert!(
        published.contains(&(9092, bound.port)),
        "kafka must publish host port 9092 to container port {}: {published:?}",
        bound.port
    );
    assert_eq!(
        kafka.protocols.get(&host_listener.name).map(String::as_str),
        Some("PLAINTEXT"),
        "event-host connects without TLS or SASL"
    );
}

#[test]
fn only_the_host_listener_is_published() {
    let compose = compose();
    let kafka = kafka(&compose);
    let published = published_ports(service(&compose, "kafka"));
    assert_eq!(published, vec![(9092, 9092)]);
    // The internal listener is not published, so its advertised address must
    // be reachable inside the compose network as is.
    for listener in kafka.advertised.iter().filter(|l| l.host != "localhost") {
        let bound = by_name(&kafka.listeners, &listener.name, "KAFKA_LISTENERS");
        assert_eq!(
            listener.port, bound.port,
            "{} advertises another port than it binds",
            listener.name
        );
        assert!(
            services(&compose).contains_key(listener.host.as_str()),
            "{} advertises `{}`, which is not a service name on the compose network",
            listener.name,
            listener.host
        );
    }
}

#[test]
fn every_advertised_listener_is_bound_and_has_a_security_protocol() {
    let kafka = kafka(&compose());
    assert!(!kafka.advertised.is_empty());
    for listener in &kafka.advertised {
        by_name(&kafka.listeners, &listener.name, "KAFKA_LISTENERS");
        assert!(
            kafka.protocols.contains_key(&listener.name),
            "advertised listener {} is missing from KAFKA_LISTENER_SECURITY_PROTOCOL_MAP {:?}",
            listener.name,
            kafka.protocols
        );
        assert!(
            !kafka.controller_names.contains(&listener.name),
            "a broker must not advertise the controller listener {}",
            listener.name
        );
    }
    for listener in &kafka.listeners {
        assert!(
            kafka.protocols.contains_key(&listener.name),
            "listener {} is missing from KAFKA_LISTENER_SECURITY_PROTOCOL_MAP {:?}",
            listener.name,
            kafka.protocols
        );
    }
    let ports: Vec<u16> = kafka.listeners.iter().map(|l| l.port).collect();
    let mut unique = ports.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(
        unique.len(),
        ports.len(),
        "two listeners bind one port: {ports:?}"
    );

    let inter_broker = env_var(&kafka.env, "KAFKA_INTER_BROKER_LISTENER_NAME");
    by_name(
        &kafka.advertised,
        inter_broker,
        "KAFKA_ADVERTISED_LISTENERS",
    );
    assert!(!kafka.controller_names.iter().any(|n| n == inter_broker));
}

#[test]
fn kafka_runs_in_kraft_mode_without_zookeeper() {
    let compose = compose();
    for (name, service) in services(&compose) {
        let name = scalar(name);
        let image = service.get("image").map(scalar).unwrap_or_default();
        assert!(
            !name.contains("zookeeper") && !image.contains("zookeeper"),
            "service `{name}` ({image}) is ZooKeeper; KRaft needs none"
        );
    }
    let image = scalar(
        service(&compose, "kafka")
            .get("image")
            .expect("kafka has an image"),
    );
    assert!(
        image.starts_with("apache/kafka:"),
        "{image}: the env var conventions checked here are apache/kafka's"
    );

    let kafka = kafka(&compose);
    assert!(
        !kafka.env.keys().any(|k| k.contains("ZOOKEEPER")),
        "kafka has ZooKeeper settings: {:?}",
        kafka.env.keys().collect::<Vec<_>>()
    );
    let roles = comma_list(env_var(&kafka.env, "KAFKA_PROCESS_ROLES"));
    assert!(roles.iter().any(|r| r == "controller"), "roles: {roles:?}");
    assert!(roles.iter().any(|r| r == "broker"), "roles: {roles:?}");

    // A KRaft cluster id is 16 bytes in URL-safe base64 without padding.
    let cluster_id = env_var(&kafka.env, "CLUSTER_ID");
    assert_eq!(cluster_id.len(), 22, "CLUSTER_ID `{cluster_id}`");
    assert!(
        cluster_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "CLUSTER_ID `{cluster_id}` is not URL-safe base64"
    );
}

#[test]
fn the_controller_quorum_voter_is_this_node_on_the_controller_listener() {
    let kafka = kafka(&compose());
    assert_eq!(kafka.controller_names, vec!["CONTROLLER".to_owned()]);
    let controller = by_name(&kafka.listeners, "CONTROLLER", "KAFKA_LISTENERS");
    assert!(kafka.protocols.contains_key("CONTROLLER"));

    let voters = comma_list(env_var(&kafka.env, "KAFKA_CONTROLLER_QUORUM_VOTERS"));
    assert_eq!(
        voters.len(),
        1,
        "a single node is the whole quorum: {voters:?}"
    );
    let (id, address) = voters[0]
        .split_once('@')
        .unwrap_or_else(|| panic!("voter `{}` is not ID@host:port", voters[0]));
    assert_eq!(
        id,
        env_var(&kafka.env, "KAFKA_NODE_ID"),
        "the voter is this node"
    );
    let (host, port) = address
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("voter `{}` has no port", voters[0]));
    assert_eq!(host, "kafka", "the voter's host is the kafka service");
    assert_eq!(
        port.parse::<u16>().expect("numeric voter port"),
        controller.port
    );
}

#[test]
fn kafka_ui_bootstraps_from_the_internal_advertised_listener() {
    let compose = compose();
    let kafka = kafka(&compose);
    let ui = environment(service(&compose, "kafka-ui"));
    let bootstrap = ui
        .get("KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS")
        .expect("kafka-ui sets KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS");
    assert_eq!(bootstrap, "kafka:29092");
    // Kafka UI runs in a container: it must use an advertised address that
    // resolves there, not localhost.
    let listener = kafka
        .advertised
        .iter()
        .find(|l| l.address() == *bootstrap)
        .unwrap_or_else(|| panic!("{bootstrap} is not advertised: {:?}", kafka.advertised));
    assert_ne!(listener.host, "localhost");
    assert_eq!(
        listener.name,
        env_var(&kafka.env, "KAFKA_INTER_BROKER_LISTENER_NAME")
    );
}

#[test]
fn kafka_ui_waits_for_a_healthy_kafka() {
    let compose = compose();
    let condition = service(&compose, "kafka-ui")
        .get("depends_on")
        .and_then(|d| d.get("kafka"))
        .and_then(|k| k.get("condition"))
        .map(scalar);
    assert_eq!(condition.as_deref(), Some("service_healthy"));

    let test = service(&compose, "kafka")
        .get("healthcheck")
        .and_then(|h| h.get("test"))
        .expect("the kafka service has a healthcheck test");
    let command = match test {
        Value::Sequence(parts) => parts.iter().map(scalar).collect::<Vec<_>>().join(" "),
        other => scalar(other),
    };
    assert!(
        command.contains("/opt/kafka/bin/kafka-broker-api-versions.sh"),
        "healthcheck: {command}"
    );
    assert!(
        command.contains(&format!("--bootstrap-server {HOST_BOOTSTRAP}")),
        "healthcheck: {command}"
    );
}

#[test]
fn a_single_node_keeps_its_internal_topics_and_data() {
    let compose = compose();
    let kafka = kafka(&compose);
    for name in [
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ] {
        assert_eq!(env_var(&kafka.env, name), "1", "{name}");
    }
    assert_eq!(
        env_var(&kafka.env, "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"),
        "0"
    );
    // event-host creates its topics; a typo'd topic must fail, not appear.
    assert_eq!(
        env_var(&kafka.env, "KAFKA_AUTO_CREATE_TOPICS_ENABLE"),
        "false"
    );

    let log_dirs = env_var(&kafka.env, "KAFKA_LOG_DIRS");
    let volumes: Vec<String> = service(&compose, "kafka")
        .get("volumes")
        .and_then(Value::as_sequence)
        .expect("kafka has volumes")
        .iter()
        .map(scalar)
        .collect();
    let (volume, _) = volumes
        .iter()
        .find_map(|v| {
            let (source, target) = v.split_once(':')?;
            (target.trim_end_matches(":rw") == log_dirs).then_some((source, target))
        })
        .unwrap_or_else(|| panic!("KAFKA_LOG_DIRS {log_dirs} is not a volume: {volumes:?}"));
    assert!(
        compose.get("volumes").and_then(|v| v.get(volume)).is_some(),
        "named volume `{volume}` is not declared"
    );
}

#[test]
fn environment_values_are_not_yaml_booleans() {
    // Compose rejects (or rewrites) YAML booleans in `environment`; quote them.
    let compose = compose();
    for (name, service) in services(&compose) {
        if let Some(Value::Mapping(env)) = service.get("environment") {
            for (key, value) in env {
                assert!(
                    !matches!(value, Value::Bool(_)),
                    "{}: {} is a YAML boolean; quote it",
                    scalar(name),
                    scalar(key)
                );
            }
        }
    }
}

#[test]
fn listener_strings_parse_into_name_host_and_port() {
    assert_eq!(
        parse_listeners(
            "PLAINTEXT://:29092, PLAINTEXT_HOST://localhost:9092,CONTROLLER://[::1]:9093"
        ),
        vec![
            Listener {
                name: "PLAINTEXT".into(),
                host: String::new(),
                port: 29092
            },
            Listener {
                name: "PLAINTEXT_HOST".into(),
                host: "localhost".into(),
                port: 9092
            },
            Listener {
                name: "CONTROLLER".into(),
                host: "[::1]".into(),
                port: 9093
            },
        ]
    );
    assert!(std::panic::catch_unwind(|| parse_listener("localhost:9092")).is_err());
    assert!(std::panic::catch_unwind(|| parse_listener("PLAINTEXT://localhost")).is_err());
}

// ---------------------------------------------------------------------------
// Prometheus, Grafana and Jaeger: what watches the host.

/// The dashboard, as committed.
const DASHBOARD: &str = "deploy/grafana/dashboards/event-host.json";

/// The README section that documents them.
const WATCHING: &str = "## Watching it: Prometheus, Grafana, Jaeger";

/// The host's counters, as named without the `_total` they are served with.
const COUNTERS: [&str; 9] = [
    "messaging_client_consumed_messages",
    "event_host_events",
    "event_host_handler_failures",
    "event_host_retries",
    "event_host_redriven",
    "event_host_reloads",
    "messaging_client_sent_messages",
    "event_host_handed_over_unfinished",
    "event_host_instances_created",
];

/// The host's histograms, served as `_bucket`, `_sum` and `_count`.
const HISTOGRAMS: [&str; 4] = [
    "messaging_process_duration_seconds",
    "event_host_event_age_seconds",
    "http_server_request_duration_seconds",
    "messaging_client_operation_duration_seconds",
];

/// The host's gauges (and its build info), served under these names.
const GAUGES: [&str; 7] = [
    "event_host_handler_calls_in_flight",
    "event_host_handler_waiting_for_capacity",
    "event_host_handler_partitions",
    "event_host_consumer_lag",
    "event_host_handler_version",
    "event_host_producer_queue_messages",
    "event_host_build_info",
];

/// Every series name `GET /metrics` may serve.
fn exported_series() -> BTreeSet<String> {
    let counters = COUNTERS.iter().map(|c| format!("{c}_total"));
    let histograms = HISTOGRAMS
        .iter()
        .flat_map(|h| ["_bucket", "_sum", "_count"].map(|suffix| format!("{h}{suffix}")));
    let gauges = GAUGES.iter().map(|g| g.to_string());
    counters.chain(histograms).chain(gauges).collect()
}

/// The port the host listens on unless told otherwise.
pub(crate) fn host_port() -> u16 {
    Config::defaults().port
}

pub(crate) fn read_yaml(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

pub(crate) fn image(compose: &Value, name: &str) -> String {
    service(compose, name)
        .get("image")
        .map(scalar)
        .unwrap_or_else(|| panic!("the {name} service has no image"))
}

/// An image's tag (`prom/prometheus:v3.5.0` → `v3.5.0`), or `None` when it
/// has none and so means `latest`. A digest pins it too.
fn image_tag(image: &str) -> Option<&str> {
    let (name, digest) = image.split_once('@').unwrap_or((image, ""));
    if !digest.is_empty() {
        return Some(digest);
    }
    let after_registry = name.rfind('/').map_or(0, |i| i + 1);
    name[after_registry..].split_once(':').map(|(_, tag)| tag)
}

/// The host port a service publishes `container_port` on.
pub(crate) fn published_as(compose: &Value, name: &str, container_port: u16) -> u16 {
    let ports = published_ports(service(compose, name));
    ports
        .iter()
        .find(|(_, container)| *container == container_port)
        .map(|(host, _)| *host)
        .unwrap_or_else(|| panic!("{name} does not publish its port {container_port}: {ports:?}"))
}

/// A service's bind mounts: (the folder or file in the repository, where
/// the container sees it).
pub(crate) fn bind_mounts(service: &Value) -> Vec<(PathBuf, String)> {
    let Some(volumes) = service.get("volumes").and_then(Value::as_sequence) else {
        return Vec::new();
    };
    volumes
        .iter()
        .filter_map(|entry| {
            let (source, target) = match entry {
                Value::Mapping(long) => (
                    long.get("source").map(scalar)?,
                    long.get("target").map(scalar)?,
                ),
                short => {
                    let short = scalar(short);
                    let mut parts = short.split(':');
                    let source = parts.next()?.to_owned();
                    (source, parts.next()?.to_owned())
                }
            };
            // A named volume has no path; a bind mount is relative to the
            // compose file, which is at the repository's root.
            source
                .starts_with('.')
                .then(|| (repo_path(&source), target))
        })
        .collect()
}

/// Where in the repository a path the container reads comes from.
fn mounted_file(compose: &Value, name: &str, container_path: &str) -> PathBuf {
    let mounts = bind_mounts(service(compose, name));
    mounts
        .iter()
        .find_map(|(source, target)| {
            let rest = container_path.strip_prefix(target.as_str())?;
            if rest.is_empty() {
                Some(source.clone())
            } else {
                rest.strip_prefix('/').map(|rest| source.join(rest))
            }
        })
        .unwrap_or_else(|| panic!("{name} mounts nothing at {container_path}: {mounts:?}"))
}

/// The YAML files of a Grafana provisioning folder.
fn provisioning_files(folder: &Path) -> Vec<Value> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(folder)
        .unwrap_or_else(|e| panic!("reading {}: {e}", folder.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    paths.sort();
    assert!(
        !paths.is_empty(),
        "no provisioning files in {}",
        folder.display()
    );
    paths.iter().map(|p| read_yaml(p)).collect()
}

/// Grafana's provisioning folder, as the grafana service mounts it.
fn grafana_provisioning(compose: &Value, kind: &str) -> Vec<Value> {
    let folder = mounted_file(
        compose,
        "grafana",
        &format!("/etc/grafana/provisioning/{kind}"),
    );
    provisioning_files(&folder)
}

/// The provisioned Prometheus datasource: (uid, url).
fn prometheus_datasource(compose: &Value) -> (String, String) {
    let files = grafana_provisioning(compose, "datasources");
    let prometheus: Vec<&Value> = files
        .iter()
        .filter_map(|f| f.get("datasources").and_then(Value::as_sequence))
        .flatten()
        .filter(|d| d.get("type").map(scalar).as_deref() == Some("prometheus"))
        .collect();
    assert_eq!(
        prometheus.len(),
        1,
        "one Prometheus datasource: {prometheus:?}"
    );
    let field = |name: &str| {
        prometheus[0]
            .get(name)
            .map(scalar)
            .unwrap_or_else(|| panic!("the Prometheus datasource has no {name}"))
    };
    (field("uid"), field("url"))
}

pub(crate) fn prometheus_config(compose: &Value) -> Value {
    read_yaml(&mounted_file(
        compose,
        "prometheus",
        "/etc/prometheus/prometheus.yml",
    ))
}

pub(crate) fn dashboard() -> Json {
    let path = repo_path(DASHBOARD);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// The dashboard's panels, those inside rows included, rows left out.
pub(crate) fn panels(dashboard: &Json) -> Vec<&Json> {
    let mut all = Vec::new();
    for panel in dashboard["panels"]
        .as_array()
        .expect("the dashboard has panels")
    {
        if panel["type"] == "row" {
            all.extend(panel["panels"].as_array().into_iter().flatten());
        } else {
            all.push(panel);
        }
    }
    all
}

/// A panel's PromQL expressions.
pub(crate) fn queries(panel: &Json) -> Vec<&str> {
    panel["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["expr"].as_str())
        .collect()
}

/// PromQL words that are not metric names: aggregations, binary operators,
/// modifiers and literals.
const PROMQL_WORDS: [&str; 24] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
    "and",
    "or",
    "unless",
    "atan2",
    "bool",
    "offset",
    "inf",
    "nan",
    "group_left",
    "group_right",
];

/// Modifiers followed by a list of label names.
const LABEL_LISTS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names a PromQL expression selects: every bare word that is
/// not a function call, a PromQL word, a label in `by (…)`, `{…}` or a
/// Grafana `$variable`; strings, label matchers and `[…]` ranges skipped.
fn metric_names(expr: &str) -> BTreeSet<String> {
    fn word_char(c: char) -> bool {
        c.is_ascii_alphanumeric() || c == '_' || c == ':'
    }
    /// The index just past the bracket that closes the one at `open`,
    /// skipping quoted strings.
    fn skip_group(chars: &[char], open: usize) -> usize {
        let close = match chars[open] {
            '(' => ')',
            '{' => '}',
            '[' => ']',
            other => panic!("`{other}` opens no group"),
        };
        let mut depth = 0;
        let mut i = open;
        while i < chars.len() {
            match chars[i] {
                '"' | '\'' | '`' => i = skip_string(chars, i) - 1,
                c if c == chars[open] => depth += 1,
                c if c == close => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        panic!("unclosed `{}` in {}", chars[open], String::from_iter(chars));
    }
    fn skip_string(chars: &[char], open: usize) -> usize {
        let quote = chars[open];
        let mut i = open + 1;
        while i < chars.len() && chars[i] != quote {
            i += if chars[i] == '\\' { 2 } else { 1 };
        }
        i + 1
    }
    let chars: Vec<char> = expr.chars().collect();
    let next_non_space = |from: usize| (from..chars.len()).find(|&j| !chars[j].is_whitespace());
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&chars, i);
        } else if c == '{' || c == '[' {
            i = skip_group(&chars, i);
        } else if c == '$' || c.is_ascii_digit() || c == '.' {
            // A Grafana variable, or a number or duration.
            i += 1;
            while i < chars.len() && (word_char(chars[i]) || chars[i] == '.') {
                i += 1;
            }
        } else if word_char(c) {
            let start = i;
            while i < chars.len() && word_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = next_non_space(i);
            let opens = next.is_some_and(|j| chars[j] == '(');
            if LABEL_LISTS.contains(&word.as_str()) {
                if let Some(j) = next.filter(|_| opens) {
                    i = skip_group(&chars, j);
                }
            } else if !opens && !PROMQL_WORDS.contains(&word.as_str()) {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// The label names of every `by (…)` in an expression.
fn grouped_by(expr: &str) -> Vec<Vec<String>> {
    expr.match_indices("by (")
        .map(|(at, found)| {
            let rest = &expr[at + found.len()..];
            let list = &rest[..rest.find(')').expect("`by (` is closed")];
            list.split(',').map(|l| l.trim().to_owned()).collect()
        })
        .collect()
}

/// The series names in a text exposition.
fn served_series(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let end = l.find(['{', ' ']).unwrap_or(l.len());
            l[..end].to_owned()
        })
        .collect()
}

/// The README section that documents the setup.
fn watching_section() -> String {
    let path = repo_path("README.md");
    let readme = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let start = readme
        .find(&format!("\n{WATCHING}\n"))
        .unwrap_or_else(|| panic!("README.md has no section `{WATCHING}`"));
    let body = &readme[start + 1..];
    let end = body[WATCHING.len()..]
        .find("\n## ")
        .map_or(body.len(), |e| e + WATCHING.len());
    body[..end].to_owned()
}

#[test]
fn every_image_is_pinned_to_a_version() {
    let compose = compose();
    for (name, _) in services(&compose) {
        let name = scalar(name);
        let image = image(&compose, &name);
        let tag = image_tag(&image);
        assert!(
            tag.is_some_and(|t| !t.is_empty() && t != "latest"),
            "{name}: `{image}` is not pinned to a version"
        );
    }
    assert_eq!(image_tag("prom/prometheus"), None);
    assert_eq!(image_tag("localhost:5000/prom/prometheus"), None);
    assert_eq!(image_tag("localhost:5000/prom/prometheus:v3"), Some("v3"));
}

#[test]
fn prometheus_scrapes_the_host_on_the_machine_that_runs_compose() {
    let compose = compose();
    assert!(
        image(&compose, "prometheus").starts_with("prom/prometheus:"),
        "the official image"
    );
    // This job is for a host run on the machine (`cargo run`); the
    // instances of the event-host service have a job of their own
    // (compose_service.rs checks it).
    let prometheus = service(&compose, "prometheus");
    if let Some(command) = prometheus.get("command") {
        assert!(
            format!("{command:?}").contains("/etc/prometheus/prometheus.yml"),
            "the command must keep reading the mounted config: {command:?}"
        );
    }
    let extra_hosts: Vec<String> = match prometheus.get("extra_hosts") {
        Some(Value::Sequence(list)) => list.iter().map(scalar).collect(),
        Some(Value::Mapping(map)) => map
            .iter()
            .map(|(k, v)| format!("{}:{}", scalar(k), scalar(v)))
            .collect(),
        other => panic!("prometheus has no extra_hosts: {other:?}"),
    };
    assert!(
        extra_hosts
            .iter()
            .any(|h| h == "host.docker.internal:host-gateway"),
        "host.docker.internal must lead to the machine: {extra_hosts:?}"
    );

    let config = prometheus_config(&compose);
    let jobs = config
        .get("scrape_configs")
        .and_then(Value::as_sequence)
        .expect("prometheus.yml has scrape_configs");
    let job = jobs
        .iter()
        .find(|j| j.get("job_name").map(scalar).as_deref() == Some("event-host"))
        .expect("a scrape job named event-host");
    assert_eq!(
        job.get("metrics_path").map(scalar).as_deref(),
        Some("/metrics")
    );
    let interval = job
        .get("scrape_interval")
        .or_else(|| config.get("global").and_then(|g| g.get("scrape_interval")))
        .map(scalar);
    assert_eq!(interval.as_deref(), Some("5s"));
    let scheme = job.get("scheme").map(scalar);
    assert!(
        scheme.is_none() || scheme.as_deref() == Some("http"),
        "the host serves plain HTTP"
    );

    let targets: Vec<String> = job
        .get("static_configs")
        .and_then(Value::as_sequence)
        .expect("event-host has static_configs")
        .iter()
        .filter_map(|c| c.get("targets").and_then(Value::as_sequence))
        .flatten()
        .map(scalar)
        .collect();
    assert!(
        targets.contains(&format!("host.docker.internal:{}", host_port())),
        "the host's default port on the machine: {targets:?}"
    );
    for target in &targets {
        let (host, port) = target
            .rsplit_once(':')
            .unwrap_or_else(|| panic!("target `{target}` has no port"));
        port.parse::<u16>()
            .unwrap_or_else(|e| panic!("target `{target}`: {e}"));
        assert!(
            host == "host.docker.internal" || services(&compose).contains_key(host),
            "target `{target}` is neither the machine nor a compose service"
        );
    }
}

#[test]
fn grafana_reads_prometheus_on_the_compose_network() {
    let compose = compose();
    assert!(
        image(&compose, "grafana").starts_with("grafana/grafana:"),
        "the official image"
    );
    let (_, url) = prometheus_datasource(&compose);
    let address = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("datasource url `{url}` is not http://HOST:PORT"))
        .trim_end_matches('/');
    let (host, port) = address
        .split_once(':')
        .unwrap_or_else(|| panic!("datasource url `{url}` has no port"));
    assert_eq!(host, "prometheus", "the prometheus service, by its name");
    // Inside the network Grafana uses the container's port, whatever the
    // machine's is.
    let port: u16 = port.parse().unwrap();
    assert_eq!(port, 9090, "Prometheus listens on 9090 in its container");
    published_as(&compose, "prometheus", port);

    let depends_on = service(&compose, "grafana")
        .get("depends_on")
        .expect("grafana depends on prometheus");
    let on_prometheus = match depends_on {
        Value::Sequence(list) => list.iter().any(|s| scalar(s) == "prometheus"),
        Value::Mapping(map) => map.contains_key("prometheus"),
        _ => false,
    };
    assert!(on_prometheus, "grafana depends_on: {depends_on:?}");
}

#[test]
fn grafana_provisions_the_committed_dashboard_for_anonymous_viewers() {
    let compose = compose();
    let dashboard_file = repo_path(DASHBOARD).canonicalize().unwrap();
    let files = grafana_provisioning(&compose, "dashboards");
    let providers: Vec<&Value> = files
        .iter()
        .filter_map(|f| f.get("providers").and_then(Value::as_sequence))
        .flatten()
        .collect();
    let folders: Vec<PathBuf> = providers
        .iter()
        .filter(|p| p.get("type").map(scalar).as_deref() == Some("file"))
        .filter_map(|p| p.get("options").and_then(|o| o.get("path")).map(scalar))
        .map(|path| mounted_file(&compose, "grafana", &path))
        .collect();
    assert!(
        folders.iter().any(
            |f| f.join("event-host.json").canonicalize().ok().as_ref() == Some(&dashboard_file)
        ),
        "no dashboard provider reads {DASHBOARD}: {folders:?}"
    );

    let env = environment(service(&compose, "grafana"));
    let var = |name: &str| {
        env.get(name)
            .unwrap_or_else(|| panic!("grafana does not set {name}"))
            .as_str()
    };
    let home = var("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH");
    assert_eq!(
        mounted_file(&compose, "grafana", home).canonicalize().ok(),
        Some(dashboard_file),
        "the home dashboard is the event-host one"
    );
    // A local setup: anyone may look, nobody may change anything unsigned.
    assert_eq!(var("GF_AUTH_ANONYMOUS_ENABLED"), "true");
    assert_eq!(var("GF_AUTH_ANONYMOUS_ORG_ROLE"), "Viewer");

    for (name, service) in services(&compose) {
        for (source, target) in bind_mounts(service) {
            assert!(
                source.exists(),
                "{} mounts {} at {target}, which is not in the repository",
                scalar(name),
                source.display()
            );
        }
    }
}

#[test]
fn jaeger_takes_otlp_over_http_and_shows_its_ui() {
    let compose = compose();
    let image = image(&compose, "jaeger");
    assert!(
        image.starts_with("jaegertracing/jaeger:")
            || image.starts_with("jaegertracing/all-in-one:"),
        "{image}"
    );
    assert_eq!(published_as(&compose, "jaeger", 4318), 4318, "OTLP/HTTP");
    assert_eq!(published_as(&compose, "jaeger", 16686), 16686, "UI");
    let env = environment(service(&compose, "jaeger"));
    if let Some(listen) = env.get("JAEGER_LISTEN_HOST") {
        assert_eq!(listen, "0.0.0.0", "published ports need more than loopback");
    }
}

#[test]
fn no_service_takes_the_port_the_host_listens_on() {
    let compose = compose();
    for (name, service) in services(&compose) {
        for (host, _) in published_ports(service) {
            assert_ne!(
                host,
                host_port(),
                "{} publishes the host's own port {host}",
                scalar(name)
            );
        }
    }
}

#[test]
fn the_readme_names_the_ports_compose_publishes() {
    let compose = compose();
    let section = watching_section();
    let readme = std::fs::read_to_string(repo_path("README.md")).unwrap();
    let after_docker = readme
        .split("\n## ")
        .skip_while(|s| !s.starts_with("With Kafka in Docker\n"))
        .nth(1)
        .unwrap_or_default();
    assert!(
        format!("## {after_docker}").starts_with(WATCHING),
        "`{WATCHING}` comes right after `## With Kafka in Docker`"
    );

    let dashboard = dashboard();
    let uid = dashboard["uid"].as_str().expect("the dashboard has a uid");
    let expected = [
        format!(
            "http://localhost:{}",
            published_as(&compose, "prometheus", 9090)
        ),
        format!(
            "http://localhost:{}/d/{uid}/",
            published_as(&compose, "grafana", 3000)
        ),
        format!(
            "http://localhost:{}",
            published_as(&compose, "jaeger", 16686)
        ),
        format!(
            "OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:{}",
            published_as(&compose, "jaeger", 4318)
        ),
        "BIND_ADDRESS=0.0.0.0".to_owned(),
    ];
    for text in &expected {
        assert!(
            section.contains(text.as_str()),
            "the README section does not say `{text}`"
        );
    }

    // Every localhost port it mentions is one compose publishes.
    let published: BTreeSet<u16> = services(&compose)
        .values()
        .flat_map(|s| published_ports(s).into_iter().map(|(host, _)| host))
        .collect();
    for (at, _) in section.match_indices("localhost:") {
        let digits: String = section[at + "localhost:".len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let port: u16 = digits.parse().unwrap();
        assert!(
            published.contains(&port),
            "the README sends readers to localhost:{port}, which no service publishes: {published:?}"
        );
    }

    // The command it gives starts services that exist.
    let command = section
        .lines()
        .find(|l| l.starts_with("docker compose up -d "))
        .expect("the section says which services to start");
    for name in command["docker compose up -d ".len()..].split_whitespace() {
        service(&compose, name);
    }
}

/// What the dashboard must show, by panel title.
const PANELS: [&str; 15] = [
    "Events handled per second by handler",
    "Failures by kind",
    "Dead letters",
    "Handler call duration p50 / p99",
    "Event age p99",
    "Consumer lag by handler and partition",
    "Calls in flight and waiting for capacity",
    "Reloads by result",
    "HTTP requests per second by route",
    "HTTP request duration p99 by route",
    "Producer sends by source",
    "Producer ack latency p99",
    "Producer queue",
    "Handler versions",
    "Build",
];

#[test]
fn the_dashboard_has_a_panel_for_each_thing_to_watch() {
    let compose = compose();
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "event-host");
    assert_eq!(dashboard["title"], "event-host");
    let panels = panels(&dashboard);
    let titles: Vec<&str> = panels.iter().filter_map(|p| p["title"].as_str()).collect();
    for title in PANELS {
        assert!(titles.contains(&title), "no panel `{title}`: {titles:?}");
    }
    let rows = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "row");
    let mut ids: Vec<u64> = rows
        .chain(panels.iter().copied())
        .filter_map(|p| p["id"].as_u64())
        .collect();
    ids.sort_unstable();
    let count = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), count, "panel ids are unique");

    let (uid, _) = prometheus_datasource(&compose);
    for panel in &panels {
        let title = &panel["title"];
        assert!(!queries(panel).is_empty(), "{title} has no query");
        assert_eq!(panel["datasource"]["uid"], uid.as_str(), "{title}");
        for target in panel["targets"].as_array().unwrap() {
            assert_eq!(target["datasource"]["uid"], uid.as_str(), "{title}");
        }
    }

    let versions = panels
        .iter()
        .find(|p| p["title"] == "Handler versions")
        .unwrap();
    assert_eq!(versions["type"], "table");
    assert_eq!(queries(versions), ["event_host_handler_version"]);
    let durations = panels
        .iter()
        .find(|p| p["title"] == "Handler call duration p50 / p99")
        .unwrap();
    let quantiles: Vec<&str> = queries(durations)
        .into_iter()
        .filter(|q| q.contains("messaging_process_duration_seconds_bucket"))
        .filter_map(|q| q.strip_prefix("histogram_quantile("))
        .filter_map(|q| q.split(',').next())
        .collect();
    assert_eq!(quantiles, ["0.5", "0.99"]);
}

#[test]
fn every_dashboard_query_names_only_metrics_the_host_exports() {
    let exported = exported_series();
    for panel in panels(&dashboard()) {
        for expr in queries(panel) {
            let names = metric_names(expr);
            assert!(!names.is_empty(), "`{expr}` selects no metric");
            let unknown: Vec<&String> = names.difference(&exported).collect();
            assert!(
                unknown.is_empty(),
                "{}: `{expr}` uses {unknown:?}, which the host does not export",
                panel["title"]
            );
            if expr.contains("histogram_quantile") {
                assert!(
                    names.iter().all(|n| n.ends_with("_bucket")),
                    "`{expr}`: a quantile is read from buckets"
                );
                assert!(
                    grouped_by(expr)
                        .iter()
                        .all(|labels| labels.iter().any(|l| l == "le")),
                    "`{expr}`: a quantile needs its buckets kept apart (`by (…, le)`)"
                );
            }
        }
    }
}

#[test]
fn metric_names_are_read_from_promql() {
    let names = |expr| metric_names(expr).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"histogram_quantile(0.99, sum by (handler, le) (rate(a_bucket{outcome="ok", x=~"b|}c"}[$__rate_interval])))"#
        ),
        ["a_bucket"]
    );
    assert_eq!(
        names("sum(rate(x_total[5m])) by (job) / on (job) group_left (version) y offset 5m"),
        ["x_total", "y"]
    );
    assert_eq!(
        names("sum without (instance) (m1) and m2 > bool 0.5"),
        ["m1", "m2"]
    );
    assert_eq!(
        names("event_host_handler_version"),
        ["event_host_handler_version"]
    );
    assert_eq!(
        grouped_by("sum by (source, le) (rate(b[1m])) / sum by (source) (c)"),
        [vec!["source", "le"], vec!["source"]]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_host_serves_every_metric_the_dashboard_queries() {
    let dir = temp_handlers_dir("compose-metrics");
    install_demo_handlers(
        &dir,
        &["user-handler", "order-handler", "notification-analytics"],
    );
    let mut config = support::config(&dir, None);
    // The lag gauge appears with the consumer's first lag report.
    config.lag_interval_ms = 100;
    let host = TestHost::start(config).await;

    let (status, user) = host
        .post(
            "/users",
            &serde_json::json!({"name": "Ada", "email": "ada@example.com", "age": 36}),
        )
        .await;
    assert_eq!(status, 200, "{user}");
    // Histograms are served once they have observed something: wait until
    // user-handler has handled the registration (and reported its lag).
    host.wait_for_handler(
        "user-handler",
        "handle the registration and report its lag",
        // A first report may know no partition's position yet (an empty
        // map, no lag series): wait for one that does.
        |h| {
            h["stats"]["handled"].as_u64() >= Some(1)
                && h["stats"]["lagByPartition"]
                    .as_object()
                    .is_some_and(|m| !m.is_empty())
        },
    )
    .await;

    let response = host.http.get(host.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let served = served_series(&response.text().await.unwrap());

    let queried: BTreeSet<String> = panels(&dashboard())
        .iter()
        .flat_map(|p| queries(p))
        .flat_map(metric_names)
        .collect();
    let missing: Vec<&String> = queried.difference(&served).collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries {missing:?}, which GET /metrics does not serve: {served:?}"
    );
    // And the list this file checks the dashboard against is the host's.
    let exported = exported_series();
    let unlisted: Vec<&String> = served.difference(&exported).collect();
    assert!(
        unlisted.is_empty(),
        "GET /metrics serves {unlisted:?}, not in this file's list"
    );
    host.stop().await;
}

//! Checks the values in `docker-compose.yml` that make the documented local
//! setup work: `docker compose up -d`, then the host on the host machine with
//! `KAFKA_BROKERS=localhost:9092`, and Kafka UI inside the compose network;
//! and that every image is pinned and none takes the host's port. What
//! watches the host (Prometheus, Grafana, Jaeger) is checked in
//! compose_watching.rs, and the `event-host` service, the host itself in
//! compose, in compose_service.rs, both with the helpers shared from here.
//!
//! No Docker engine is needed: the files are parsed and cross-checked the way
//! the broker and its clients will read them.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use event_host::Config;
use serde_yaml_ng::{Mapping, Value};

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

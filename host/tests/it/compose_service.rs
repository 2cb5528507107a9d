//! Checks the `event-host` service of `docker-compose.yml`, which runs the
//! image (`Dockerfile`, checked by image.rs) on compose's Kafka: built and
//! never pulled; scalable with `--scale event-host=3` (no container name, a
//! port range no other service takes); on Kafka's in-network listener once
//! Kafka is healthy; setting only what the host reads (or is about to);
//! safe with no variable set (no default token: handler changes refused);
//! given time to drain when stopped. What scaling relies on beyond the
//! service is in compose_scale.rs.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use serde_yaml_ng::Value;

use crate::compose::{
    compose, host_port, kafka, published_ranges, repo_path, scalar, service, services,
};
use crate::support::dockerfile::builder_and_runtime;
use crate::support::files::interpolate;
use crate::support::settings::{config_from, host_settings};
use crate::support::{TestHost, temp_handlers_dir};

pub(crate) const SERVICE: &str = "event-host";

/// The service's environment as its container gets it, with no variable
/// set in the shell that runs compose.
fn service_env() -> BTreeMap<String, String> {
    crate::compose::environment(service(&compose(), SERVICE))
        .into_iter()
        .map(|(k, v)| {
            let v = interpolate(&v, &BTreeMap::new()).unwrap_or_else(|e| panic!("{k}: {e}"));
            (k, v)
        })
        .collect()
}

/// What the host in the container reads: the image's variables, then the
/// service's over them.
fn container_env() -> BTreeMap<String, String> {
    let (_, runtime) = builder_and_runtime();
    runtime.env.into_iter().chain(service_env()).collect()
}

/// The service's one published port: (host ports, container port).
pub(crate) fn published() -> (RangeInclusive<u16>, u16) {
    let ranges = published_ranges(service(&compose(), SERVICE));
    assert_eq!(ranges.len(), 1, "one published port: {ranges:?}");
    ranges.into_iter().next().expect("one published port")
}

fn depends_on_condition(name: &str) -> Option<String> {
    let compose = compose();
    let depends_on = service(&compose, SERVICE).get("depends_on")?;
    depends_on
        .get(name)
        .and_then(|d| d.get("condition"))
        .map(scalar)
}

#[test]
fn the_service_is_built_from_the_dockerfile_and_never_pulled() {
    let compose = compose();
    let service = service(&compose, SERVICE);
    let context = match service.get("build") {
        Some(Value::Mapping(build)) => {
            assert!(
                build.get("dockerfile").is_none(),
                "the Dockerfile at the context's root"
            );
            build
                .get("context")
                .map(scalar)
                .expect("build has a context")
        }
        Some(other) => scalar(other),
        None => panic!("{SERVICE} is not built"),
    };
    assert_eq!(
        repo_path(&context).join("Dockerfile").canonicalize().ok(),
        repo_path("Dockerfile").canonicalize().ok()
    );
    assert_eq!(
        service.get("pull_policy").map(scalar).as_deref(),
        Some("build")
    );
    // Named, so `docker run event-host:local` runs what compose built.
    assert!(service.get("image").is_some(), "the built image is named");
}

#[test]
fn the_service_scales_to_three_instances_on_ports_no_one_else_takes() {
    let compose = compose();
    let service = service(&compose, SERVICE);
    assert!(
        service.get("container_name").is_none(),
        "a fixed name breaks --scale"
    );
    assert_eq!(
        service.get("restart").map(scalar).as_deref(),
        Some("unless-stopped")
    );
    let (hosts, container) = published();
    let (_, runtime) = builder_and_runtime();
    assert_eq!(runtime.expose, [container.to_string()], "the image's port");
    assert_eq!(
        config_from(&container_env()).port,
        container,
        "the port the host listens on"
    );
    assert!(
        hosts.len() >= 3,
        "--scale {SERVICE}=3 needs 3 host ports: {hosts:?}"
    );
    assert!(
        !hosts.contains(&host_port()),
        "{} is for a host run with cargo",
        host_port()
    );
    for (name, other) in services(&compose) {
        if scalar(name) == SERVICE {
            continue;
        }
        for (taken, _) in published_ranges(other) {
            assert!(
                !taken.clone().any(|p| hosts.contains(&p)),
                "{} publishes {taken:?}, inside {SERVICE}'s {hosts:?}",
                scalar(name)
            );
        }
    }
}

#[test]
fn the_service_reaches_kafka_on_its_in_network_listener_once_kafka_is_healthy() {
    let compose = compose();
    let kafka = kafka(&compose);
    let env = service_env();
    let brokers = env.get("KAFKA_BROKERS").expect("KAFKA_BROKERS is set");
    for address in brokers.split(',').map(str::trim) {
        let listener = kafka
            .advertised
            .iter()
            .find(|l| l.address() == address)
            .unwrap_or_else(|| {
                panic!("kafka does not advertise {address}: {:?}", kafka.advertised)
            });
        assert!(
            services(&compose).contains_key(listener.host.as_str()),
            "a service name"
        );
        assert!(
            kafka
                .listeners
                .iter()
                .any(|l| l.name == listener.name && l.port == listener.port)
        );
    }
    assert_eq!(
        depends_on_condition("kafka").as_deref(),
        Some("service_healthy")
    );
    assert!(service(&compose, "kafka").get("healthcheck").is_some());
}

#[test]
fn every_variable_the_service_sets_is_a_host_setting_it_accepts() {
    let settings = host_settings();
    for name in service_env().keys() {
        assert!(
            settings.contains(name)
                // librdkafka properties, read by their prefix.
                || name.starts_with(event_host::kafka_config::ENV_PREFIX),
            "{SERVICE} sets {name}, which the host does not read"
        );
    }
    let config = config_from(&container_env());
    assert!(config.catalog, "the compose instances share one catalog");
    assert_eq!(config.log_format, event_host::telemetry::LogFormat::Json);
    // Traces go to a service of this file, on a port it listens on, started first.
    let env = service_env();
    let endpoint = &env["OTEL_EXPORTER_OTLP_ENDPOINT"];
    let (host, port) = endpoint
        .strip_prefix("http://")
        .and_then(|a| a.split_once(':'))
        .unwrap_or_else(|| panic!("`{endpoint}` is not http://SERVICE:PORT"));
    let port: u16 = port.trim_end_matches('/').parse().expect("a numeric port");
    let containers: Vec<u16> = published_ranges(service(&compose(), host))
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    assert!(
        containers.contains(&port),
        "{host} listens on {containers:?}"
    );
    assert!(
        depends_on_condition(host).is_some(),
        "{SERVICE} depends on {host}"
    );
}

#[test]
fn compose_needs_no_variable_set_and_gives_no_default_token() {
    // Compose interpolates the whole file for any command, so a required
    // variable (`${X:?…}`) would stop even `docker compose up -d kafka`.
    fn check(value: &Value, at: &str) {
        match value {
            Value::String(s) => {
                interpolate(s, &BTreeMap::new()).unwrap_or_else(|e| panic!("{at}: {e}"));
            }
            Value::Sequence(list) => list.iter().for_each(|v| check(v, at)),
            Value::Mapping(map) => map
                .iter()
                .for_each(|(k, v)| check(v, &format!("{at}.{}", scalar(k)))),
            _ => {}
        }
    }
    check(&compose(), "docker-compose.yml");
    assert_eq!(
        service_env().get("ADMIN_TOKEN").map(String::as_str),
        Some("")
    );
    let given = BTreeMap::from([("ADMIN_TOKEN".to_owned(), "s3cret".to_owned())]);
    let raw = &crate::compose::environment(service(&compose(), SERVICE))["ADMIN_TOKEN"];
    assert_eq!(
        interpolate(raw, &given).as_deref(),
        Ok("s3cret"),
        "taken from the shell"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_token_the_service_refuses_handler_changes() {
    let mut config = config_from(&container_env());
    assert!(
        config
            .admin_token
            .as_ref()
            .is_none_or(|t| t.expose().is_empty())
    );
    // As in the container (listening beyond loopback), on the embedded broker.
    config.port = 0;
    config.kafka_brokers = None;
    config.handlers_dir = temp_handlers_dir("compose-service-token");
    // The image's /app/cache is not on this machine: nothing is compiled here.
    config.no_compile_cache = true;
    let host = TestHost::spawn(config).await;
    let url = format!("http://127.0.0.1:{}/handlers/greeter", host.addr.port());
    let response = host
        .http
        .put(url)
        .header("content-type", "application/wasm")
        .body(b"\0asm".to_vec())
        .send()
        .await
        .expect("PUT /handlers/greeter");
    assert_eq!(response.status(), 403);
    host.stop().await;
}

#[test]
fn the_service_is_given_time_to_drain_when_stopped() {
    let grace = service(&compose(), SERVICE)
        .get("stop_grace_period")
        .map(scalar)
        .expect("stop_grace_period: compose's default 10 s cuts the host's drain short");
    let grace = humantime::parse_duration(&grace).expect("a duration");
    let drain = config_from(&container_env()).shutdown_timeout();
    assert!(
        grace > drain,
        "{grace:?} to stop, the host drains for up to {drain:?}"
    );
}

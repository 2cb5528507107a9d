//! What watches the host in `docker-compose.yml`: Prometheus scraping it on
//! the machine that runs compose, Grafana with its provisioned datasource
//! and dashboard (`deploy/`), Jaeger taking its traces, on the ports the
//! README names. The compose file's parsing is shared from compose.rs.
//!
//! No Docker engine is needed: the files are parsed and cross-checked the
//! way Prometheus, Grafana and the clients will read them. One test starts
//! the host in this process, on the embedded broker, to check that every
//! metric the dashboard queries is one the host really serves.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use serde_yaml_ng::Value;

use crate::compose::{
    bind_mounts, compose, environment, host_port, image, published_as, published_ports, read_yaml,
    repo_path, scalar, service, services,
};
use crate::support::{self, TestHost, install_demo_handlers, temp_handlers_dir};

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

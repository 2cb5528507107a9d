//! Checks what `docker compose up -d --scale event-host=3` relies on
//! beyond the service itself (compose_service.rs): Prometheus finds every
//! instance by the service's name and scrapes none twice, the dashboard
//! selects no job so it sums them all, and the README and the compose
//! file's header give commands and URLs that match the file.

use std::collections::BTreeSet;

use serde_yaml_ng::Value;

use crate::compose::{compose, published_ranges, repo_path, scalar, service, services};
use crate::compose_service::{SERVICE, published};
use crate::compose_watching::{dashboard, panels, prometheus_config, queries};
use crate::support::files::shell_commands;

/// Every `localhost:PORT` in a text.
fn localhost_ports(text: &str) -> Vec<u16> {
    text.match_indices("localhost:")
        .filter_map(|(at, found)| {
            let digits: String = text[at + found.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        })
        .collect()
}

#[test]
fn prometheus_scrapes_every_instance_of_the_service() {
    let compose = compose();
    let config = prometheus_config(&compose);
    let jobs = config["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs");
    let discovered: Vec<&Value> = jobs
        .iter()
        .filter(|j| j.get("dns_sd_configs").is_some())
        .collect();
    assert_eq!(discovered.len(), 1, "one job finds the service's instances");
    let job_names: BTreeSet<String> = jobs.iter().map(|j| scalar(&j["job_name"])).collect();
    assert_eq!(
        job_names.len(),
        jobs.len(),
        "Prometheus refuses a job name twice"
    );
    let job = discovered[0];
    assert_eq!(
        job.get("metrics_path").map(scalar).as_deref(),
        Some("/metrics")
    );
    let (hosts, container) = published();
    let sd = &job["dns_sd_configs"][0];
    let names: Vec<String> = sd["names"]
        .as_sequence()
        .expect("names")
        .iter()
        .map(scalar)
        .collect();
    assert_eq!(
        names,
        [SERVICE],
        "compose's DNS answers a service's name with every instance"
    );
    assert_eq!(sd.get("type").map(scalar).as_deref(), Some("A"));
    assert_eq!(
        sd.get("port").map(scalar),
        Some(container.to_string()),
        "the container's port"
    );

    // The job for a host run with cargo must not reach an instance too.
    let machine_ports: Vec<u16> = jobs
        .iter()
        .filter_map(|j| j.get("static_configs").and_then(Value::as_sequence))
        .flatten()
        .filter_map(|c| c.get("targets").and_then(Value::as_sequence))
        .flatten()
        .map(scalar)
        .filter_map(|t| {
            t.strip_prefix("host.docker.internal:")
                .map(|p| p.parse().unwrap())
        })
        .collect();
    assert!(!machine_ports.is_empty());
    for port in machine_ports {
        assert!(
            !hosts.contains(&port),
            "host.docker.internal:{port} is an instance: scraped twice"
        );
    }
}

/// The label names a PromQL expression's selectors match on (`{a="b"}`).
fn matched_labels(expr: &str) -> BTreeSet<String> {
    let mut labels = BTreeSet::new();
    let mut rest = expr;
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .map(|c| open + c)
            .expect("a closed selector");
        for matcher in rest[open + 1..close]
            .split(',')
            .filter(|m| !m.trim().is_empty())
        {
            let name = matcher.split(['=', '!', '~']).next().unwrap_or_default();
            labels.insert(name.trim().to_owned());
        }
        rest = &rest[close + 1..];
    }
    labels
}

#[test]
fn the_dashboard_selects_no_job_so_it_shows_every_instance() {
    for panel in panels(&dashboard()) {
        for expr in queries(panel) {
            let labels = matched_labels(expr);
            assert!(
                !labels.contains("job"),
                "`{expr}` shows only one job's hosts"
            );
        }
    }
    assert_eq!(
        matched_labels(r#"sum(rate(x{outcome="ok", job=~"a"}[5m])) / y{}"#),
        BTreeSet::from(["outcome".to_owned(), "job".to_owned()])
    );
}

/// Checks the `docker compose` commands and `localhost` ports of a text.
fn check_commands(text: &str, what: &str) {
    let compose = compose();
    let (hosts, container) = published();
    let commands = shell_commands(text);
    let mut scaled = false;
    for c in commands
        .iter()
        .filter(|c| c.starts_with(&["docker".into(), "compose".into()]))
    {
        let words: Vec<&str> = c[2..].iter().map(String::as_str).collect();
        match words.as_slice() {
            ["up", "-d", rest @ ..] => {
                let mut rest = rest.iter();
                while let Some(word) = rest.next() {
                    if *word == "--scale" {
                        let scale = rest.next().expect("--scale SERVICE=N");
                        let (name, n) = scale.split_once('=').expect("SERVICE=N");
                        assert_eq!(name, SERVICE);
                        assert!(
                            n.parse::<usize>().unwrap() <= hosts.len(),
                            "{what}: {scale}"
                        );
                        scaled = true;
                    } else {
                        service(&compose, word);
                    }
                }
            }
            ["port", "--index", _, name, port] => {
                assert_eq!(
                    (*name, port.parse().ok()),
                    (SERVICE, Some(container)),
                    "{what}"
                );
            }
            ["down", ..] | ["stop", ..] | ["ps", ..] => {}
            other => panic!(
                "{what}: `docker compose {}` is not checked here",
                other.join(" ")
            ),
        }
    }
    assert!(scaled, "{what} shows --scale");
    let published: BTreeSet<u16> = services(&compose)
        .values()
        .flat_map(|s| published_ranges(s).into_iter().flat_map(|(h, _)| h))
        .collect();
    for port in localhost_ports(text) {
        assert!(
            published.contains(&port),
            "{what} sends readers to localhost:{port}"
        );
    }
    assert!(
        localhost_ports(text).contains(hosts.start()),
        "{what} names the first instance"
    );
}

#[test]
fn the_readme_and_the_compose_header_say_how_to_run_it() {
    let readme = std::fs::read_to_string(repo_path("README.md")).expect("reading README.md");
    let heading = "\n### Running it in containers\n";
    let start = readme
        .find(heading)
        .expect("README.md has `### Running it in containers`");
    let section = &readme[start + heading.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let before = &readme[..start];
    assert!(
        before.rfind("\n## ") == before.find("\n## With Kafka in Docker\n"),
        "under Docker"
    );
    let code: String = section
        .split("```")
        .skip(1)
        .step_by(2)
        .map(|block| block.trim_start_matches("sh\n"))
        .collect();
    check_commands(&code, "the README");
    assert!(
        section.contains("cargo build --release --locked -p event-host"),
        "the image's build"
    );

    let text = std::fs::read_to_string(repo_path("docker-compose.yml")).unwrap();
    let header: String = text
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| format!("{}\n", l.trim_start_matches('#').trim()))
        .filter(|l| l.starts_with("docker compose ") || l.contains("localhost:"))
        .collect();
    check_commands(&header, "docker-compose.yml's header");
}

//! The host's settings by environment variable, for tests that check
//! deployment files (the Dockerfile, compose) set only what the host reads
//! and values it accepts.

use std::collections::{BTreeMap, BTreeSet};

use clap::{CommandFactory, Parser};
use event_host::Config;

/// Variables the host reads outside its `Config`: the log filter, and the
/// OpenTelemetry ones (`telemetry::init` and the OpenTelemetry SDK).
const READ_OUTSIDE_CONFIG: [&str; 6] = [
    "RUST_LOG",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_SERVICE_NAME",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
];

/// Every environment variable the host reads.
pub fn host_settings() -> BTreeSet<String> {
    Config::command()
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .map(|env| env.to_string_lossy().into_owned())
        .chain(READ_OUTSIDE_CONFIG.map(str::to_owned))
        .collect()
}

/// The host's configuration with these variables set, parsed as the host
/// parses its environment (through their flags: tests share one process
/// environment). Variables read outside `Config` are left out.
pub fn config_from(vars: &BTreeMap<String, String>) -> Config {
    let command = Config::command();
    let mut args = vec!["event-host".to_owned()];
    for (name, value) in vars {
        let Some(arg) = command
            .get_arguments()
            .find(|a| a.get_env().is_some_and(|e| e == name.as_str()))
        else {
            continue;
        };
        let long = format!("--{}", arg.get_long().expect("every setting has a flag"));
        if arg.get_action().takes_values() {
            args.extend([long, value.clone()]);
        } else if ["1", "true", "yes", "on"].contains(&value.to_lowercase().as_str()) {
            args.push(long);
        }
    }
    Config::try_parse_from(&args).unwrap_or_else(|e| panic!("the host refuses {vars:?}: {e}"))
}

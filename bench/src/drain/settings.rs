//! What the consume benchmark runs, from its `CONSUME_*` variables (the
//! table in `benches/consume/main.rs`).

use super::BrokerKind;
use super::telemetry::Telemetry;

/// The cases to run: a drain per broker, partition count, idle-handler
/// count (tansu), round and side.
pub struct Settings {
    pub events: u64,
    pub partitions: Vec<i32>,
    pub idle: Vec<usize>,
    pub rounds: u32,
    pub brokers: Vec<BrokerKind>,
    pub raw: bool,
    pub host: bool,
    pub pipeline: bool,
    /// The host's telemetry modes to drain with (on tansu).
    pub telemetry: Vec<Telemetry>,
}

/// The settings from the environment (`CONSUME_SMOKE` sets small sizes).
/// A value that cannot be read panics, naming its variable.
pub fn settings() -> Settings {
    fn var<T: std::str::FromStr>(name: &str, default: &str) -> Vec<T> {
        let text = std::env::var(name).unwrap_or_else(|_| default.to_string());
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse()
                    .unwrap_or_else(|_| panic!("{name}: cannot read {s:?}"))
            })
            .collect()
    }
    let brokers = var::<String>("CONSUME_BROKERS", "tansu,embedded")
        .iter()
        .map(|b| match b.as_str() {
            "tansu" => BrokerKind::Tansu,
            "embedded" => BrokerKind::Embedded,
            other => panic!("CONSUME_BROKERS: unknown broker {other:?}"),
        })
        .collect();
    let sides = var::<String>("CONSUME_SIDES", "raw,host,pipeline");
    if let Some(other) = sides
        .iter()
        .find(|s| !["raw", "host", "pipeline"].contains(&s.as_str()))
    {
        panic!("CONSUME_SIDES: unknown side {other:?}");
    }
    let telemetry = var::<String>("CONSUME_TELEMETRY", "unsampled")
        .iter()
        .map(|t| match t.as_str() {
            "off" => Telemetry::Off,
            "unsampled" => Telemetry::Unsampled,
            "sampled" => Telemetry::Sampled,
            "baseline" => Telemetry::Baseline,
            "nohistory" => Telemetry::NoHistory,
            "reused" => Telemetry::Reused,
            other => panic!("CONSUME_TELEMETRY: unknown mode {other:?}"),
        })
        .collect::<Vec<_>>();
    let side = |name: &str| sides.iter().any(|s| s == name);
    let (raw, host, pipeline) = (side("raw"), side("host"), side("pipeline"));
    if std::env::var_os("CONSUME_SMOKE").is_some_and(|v| v != "0") {
        return Settings {
            events: 2_000,
            partitions: vec![3],
            idle: vec![1],
            rounds: 1,
            brokers,
            raw,
            host,
            pipeline,
            telemetry,
        };
    }
    Settings {
        events: var("CONSUME_EVENTS", "200000")[0],
        partitions: var("CONSUME_PARTITIONS", "3,12,48"),
        idle: var("CONSUME_IDLE", "1,10,50"),
        rounds: var("CONSUME_ROUNDS", "1")[0],
        brokers,
        raw,
        host,
        pipeline,
        telemetry,
    }
}

//! Every case the settings name, in order: per broker and partition count
//! a fresh broker, pre-filled once, then each round's raw loops and host
//! drains on it.

use std::path::Path;

use event_host_bench::drain::raw::{Source, raw_poll_drain, raw_stream_drain};
use event_host_bench::drain::report::print_run;
use event_host_bench::drain::settings::Settings;
use event_host_bench::drain::telemetry::Telemetry;
use event_host_bench::drain::{BrokerKind, PIPELINE, Run};

use crate::broker::Broker;
use crate::host::host_drain;
use crate::support::PATIENCE;

/// At most this many events per partition on the embedded broker.
const EMBEDDED_PER_PARTITION: u64 = 12_000;

/// Runs every case of `s` with the no-op and the skipping handler
/// components, `(noop, skip)`; sampled host drains export to `receiver`.
pub(crate) async fn run_all(
    s: &Settings,
    (noop_path, skip_path): (&Path, &Path),
    receiver: Option<&str>,
) -> Vec<Run> {
    let mut runs = Vec::new();
    for &kind in &s.brokers {
        for (i, &partitions) in s.partitions.iter().enumerate() {
            // The mock cluster keeps only the last 5 MiB of each partition
            // (librdkafka's rdkafka_mock.c): no more than fits.
            let events = match kind {
                BrokerKind::Tansu => s.events,
                BrokerKind::Embedded => s.events.min(EMBEDDED_PER_PARTITION * partitions as u64),
            };
            let broker = Broker::start(kind, partitions, events).await;
            let mut idle_counts = vec![0];
            if i == 0 && kind == BrokerKind::Tansu {
                idle_counts.extend(s.idle.iter().copied().filter(|&n| n > 0));
            }
            for round in 1..=s.rounds {
                if s.raw {
                    let source = Source {
                        broker: kind,
                        bootstrap: broker.bootstrap(),
                        partitions,
                        events,
                        patience: PATIENCE,
                    };
                    let run = raw_stream_drain(&source).await;
                    print_run(&run);
                    runs.push(run);
                    let run = tokio::task::spawn_blocking(move || raw_poll_drain(&source))
                        .await
                        .unwrap();
                    print_run(&run);
                    runs.push(run);
                }
                if s.pipeline {
                    let name = format!("skip-p{partitions}-r{round}");
                    let handler = (PIPELINE, skip_path);
                    let run = host_drain(&broker, partitions, 0, &name, events, handler, &[]).await;
                    print_run(&run);
                    runs.push(run);
                }
                if !s.host {
                    continue;
                }
                for &idle in &idle_counts {
                    // Telemetry modes side by side on tansu (a child
                    // process each); the embedded host runs as it is.
                    let modes = match kind {
                        BrokerKind::Tansu => s.telemetry.clone(),
                        BrokerKind::Embedded => vec![Telemetry::Unsampled],
                    };
                    for mode in modes {
                        let name = format!(
                            "drain-p{partitions}-i{idle}-r{round}-{}",
                            format!("{mode:?}").to_lowercase()
                        );
                        let handler = (mode.side(), noop_path);
                        let env = mode.env(receiver);
                        let run =
                            host_drain(&broker, partitions, idle, &name, events, handler, &env)
                                .await;
                        print_run(&run);
                        runs.push(run);
                    }
                }
            }
            if let Broker::Embedded { host, dir, .. } = broker {
                host.stop().await;
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }
    runs
}

//! Consume throughput: how fast the host drains a pre-filled topic through a
//! handler that does nothing, against a plain rust-rdkafka loop that only
//! stores offsets, on the same broker with the same consumer settings; and
//! how that changes with the topic's partition count and with idle handlers
//! loaded (subscribed to other topics), with the host's RSS.
//!
//! `cargo bench -p event-host-bench --bench consume` (the no-op test handler in
//! host/tests/handlers/noop-handler). Run it without `RUST_BACKTRACE` (see
//! BENCHMARKS.md). Figures go in BENCHMARKS.md.
//!
//! - **tansu** (needs `tansu` on PATH): each partition count gets its own
//!   tansu process on its memory engine, shared by both sides. Each host
//!   drain runs in a child process of this binary, so its RSS and CPU time
//!   are the host's alone.
//! - **embedded**: librdkafka's mock cluster inside an in-process host (the
//!   host's embedded broker), which is also the host measured. It keeps only
//!   the last 5 MiB of each partition, so at most 12,000 events per
//!   partition are drained there.
//!
//! Each drain has a fresh consumer group and is timed from its partitions
//! being assigned to the last event seen (raw loops) or counted as handled
//! or skipped in the handler's stats (host). CPU time is read from /proc
//! for the consuming process and the tansu process.
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `CONSUME_EVENTS` | 200000 | events pre-filled per partition count (250 bytes each) |
//! | `CONSUME_PARTITIONS` | `3,12,48` | partition counts of the drained topic |
//! | `CONSUME_IDLE` | `1,10,50` | idle handlers loaded besides the no-op one (copies of the demo's user-handler, on `user-events`); tansu, first partition count only |
//! | `CONSUME_BROKERS` | `tansu,embedded` | which brokers to run on |
//! | `CONSUME_SIDES` | `raw,host,pipeline` | which sides to run: the raw loops, the host running the no-op handler, the host skipping every event (no instance: its own per-event cost) |
//! | `CONSUME_ROUNDS` | 1 | drains per case and side, alternating raw and host; above 1 the report adds each side's median |
//! | `CONSUME_RAW_PREFETCH_KIB` | the host's `PREFETCH_KIB` | the raw loops' `queued.max.messages.kbytes` |
//! | `CONSUME_TELEMETRY` | `unsampled` | host drains on tansu, once per mode listed: `off` (no trace context set up, no call history), `unsampled` (the default host: spans carry context, nothing sampled), `nohistory` (as `unsampled`, with `CALL_HISTORY=0`), `sampled` (every trace sampled and exported over OTLP to a receiver in this process that discards it), `baseline` (the host drain run by the consume benchmark binary named in `CONSUME_BASELINE_EXE`, e.g. one built from an earlier commit), `reused` (as `unsampled`, the no-op handler on reused instances: `REUSE_INSTANCES` names it) |
//! | `CONSUME_CALL_HISTORY` | the host's default | the host drains' `CALL_HISTORY` (calls kept in memory), whatever the mode |
//! | `CONSUME_SMOKE` | unset | `1`: 2000 events, 3 partitions, 1 idle handler: checks that it runs |

#[path = "../../../host/tests/it/support/mod.rs"]
mod support;

mod broker;
mod cases;
mod host;

use event_host_bench::drain::BrokerKind;
use event_host_bench::drain::prefill::envelope;
use event_host_bench::drain::report::report;
use event_host_bench::drain::settings::settings;
use event_host_bench::drain::telemetry::{Telemetry, discarding_otlp_receiver};
use host::{CHILD, IDLE_COMPONENT, child_host_run, noop_component};

#[tokio::main]
async fn main() {
    if let Ok(run) = std::env::var(CHILD) {
        return child_host_run(&run).await;
    }
    let s = settings();
    if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
        println!(
            "NOTE: RUST_BACKTRACE is set, which adds several µs per handler call (BENCHMARKS.md); \
             run with `env -u RUST_BACKTRACE` for figures to compare"
        );
    }
    if s.brokers.contains(&BrokerKind::Tansu) {
        assert!(
            support::tansu_on_path(),
            "this benchmark needs tansu on PATH (or CONSUME_BROKERS=embedded)"
        );
    }
    let components = support::temp_handlers_dir("bench-consume-components");
    let noop_path = components.join("noop.wasm");
    std::fs::write(&noop_path, noop_component(false)).unwrap();
    let skip_path = components.join("skip.wasm");
    std::fs::write(&skip_path, noop_component(true)).unwrap();
    assert!(
        support::built_handlers().join(IDLE_COMPONENT).is_file(),
        "build the handlers first: cargo build"
    );
    let sample = envelope(0).1;
    event_host::event::Event::decode(sample.as_bytes()).expect("a valid envelope");
    println!(
        "consume throughput: {} events of {} bytes, brokers {:?}, partitions {:?}, idle handlers {:?} (tansu, {} partitions), {} round(s)",
        s.events,
        sample.len(),
        s.brokers,
        s.partitions,
        s.idle,
        s.partitions[0],
        s.rounds
    );

    // Where sampled host runs export their spans: a receiver that discards.
    let receiver = if s.telemetry.contains(&Telemetry::Sampled) {
        Some(discarding_otlp_receiver().await)
    } else {
        None
    };
    let runs = cases::run_all(&s, (&noop_path, &skip_path), receiver.as_deref()).await;
    report(&runs);
}

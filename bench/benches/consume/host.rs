//! The host drains: the no-op handler added to a running host and timed
//! until it is done with the topic. On tansu each runs in a child process
//! of this binary (so RSS and CPU time are the host's alone), which prints
//! its figures on a `RESULT` line.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use event_host_bench::drain::{EVENT_BYTES, NOOP_BASELINE, PIPELINE, Run};
use event_host_bench::proc::{self, CpuMeter};

use crate::broker::Broker;
use crate::support::{self, PATIENCE, TestHost, config, temp_handlers_dir};

/// The demo handler loaded (under other names) as the idle handlers.
pub(crate) const IDLE_COMPONENT: &str = "user-handler.wasm";

/// Set in a child process that runs one host drain on tansu.
pub(crate) const CHILD: &str = "CONSUME_CHILD_HOST_RUN";

/// Builds the no-op test handler (like `support::test_component` does for
/// the tests' handlers), with its `skip` feature or without, and returns its
/// component.
pub(crate) fn noop_component(skip: bool) -> Vec<u8> {
    let target_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("handlers");
    let status = Command::new(env!("CARGO"))
        .current_dir(support::workspace())
        .args(["build", "--profile", "handler", "--target", "wasm32-wasip2"])
        .args(["-p", "noop-handler"])
        .args(skip.then_some("--features=noop-handler/skip"))
        .arg("--target-dir")
        .arg(&target_dir)
        .status()
        .expect("run cargo");
    assert!(status.success(), "building noop-handler failed");
    std::fs::read(target_dir.join("wasm32-wasip2/handler/noop_handler.wasm")).unwrap()
}

/// On tansu: runs [`child_host_run`] in a child process of its own, so its
/// RSS is the host's alone. On the embedded broker: uses the host holding
/// it. The handler, `(side, component)`, is added as `name` (a fresh group).
pub(crate) async fn host_drain(
    broker: &Broker,
    partitions: i32,
    idle: usize,
    name: &str,
    events: u64,
    (side, noop): (&'static str, &Path),
    env: &[(&'static str, String)],
) -> Run {
    let (time, handled, rss, (cpu, user_cpu), broker_cpu) = match broker {
        Broker::Tansu(tansu) => {
            let spec = format!(
                "{}|{partitions}|{idle}|{name}|{events}|{}|{side}",
                tansu.bootstrap,
                noop.display()
            );
            // A baseline side runs another build's binary the same way.
            let exe = match side {
                NOOP_BASELINE => std::env::var_os("CONSUME_BASELINE_EXE")
                    .map(PathBuf::from)
                    .expect("CONSUME_TELEMETRY=baseline needs CONSUME_BASELINE_EXE"),
                _ => std::env::current_exe().unwrap(),
            };
            let child = tokio::process::Command::new(exe)
                .env(CHILD, spec)
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stderr(std::process::Stdio::inherit())
                .output()
                .await
                .unwrap();
            let out = String::from_utf8_lossy(&child.stdout);
            assert!(child.status.success(), "the host run failed: {out}");
            // The host's warnings and errors, if any (its log is captured).
            for line in out
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            {
                println!("    host: {line}");
            }
            let result = out
                .lines()
                .find_map(|l| l.strip_prefix("RESULT "))
                .unwrap_or_else(|| panic!("no result from the host run: {out}"));
            let v: Vec<f64> = result
                .split_whitespace()
                .map(|x| x.parse().unwrap())
                .collect();
            let rss = (v[2] as u64, v[3] as u64, v[4] as u64);
            let broker_cpu = (v[6] >= 0.0).then(|| Duration::from_secs_f64(v[6]));
            // A build from before the user time was reported has no v[7].
            let user_cpu = v.get(7).map(|&s| Duration::from_secs_f64(s));
            (
                Duration::from_secs_f64(v[0]),
                v[1] as u64,
                Some(rss),
                (Duration::from_secs_f64(v[5]), user_cpu),
                broker_cpu,
            )
        }
        Broker::Embedded {
            host,
            dir,
            bootstrap,
        } => {
            assert_eq!(idle, 0, "idle handlers are measured on tansu only");
            let noop = std::fs::read(noop).unwrap();
            let (time, handled, _, (cpu, user_cpu, broker_cpu)) =
                drain(host, dir, (name, side), events, &noop, bootstrap).await;
            let r = host
                .http
                .delete(host.url(&format!("/handlers/{name}")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 204);
            (time, handled, None, (cpu, Some(user_cpu)), broker_cpu)
        }
    };
    Run {
        broker: broker.kind(),
        side,
        partitions,
        idle,
        events: handled,
        bytes: handled * EVENT_BYTES as u64,
        time,
        rss,
        cpu,
        user_cpu,
        broker_cpu,
    }
}

/// In a child process: starts a host on tansu with `idle` handlers on other
/// topics, waits until they consume, drains the topic through the no-op
/// handler and prints `RESULT seconds handled rss_ready rss_end rss_peak`
/// (KiB) `cpu broker_cpu user_cpu` (seconds; broker -1 if unknown).
pub(crate) async fn child_host_run(spec: &str) {
    let f: Vec<&str> = spec.split('|').collect();
    let [bootstrap, partitions, idle, name, events, noop, side] = f[..] else {
        panic!("bad {CHILD}: {spec}")
    };
    let (partitions, idle, events): (i32, usize, u64) = (
        partitions.parse().unwrap(),
        idle.parse().unwrap(),
        events.parse().unwrap(),
    );
    let dir = temp_handlers_dir(&format!("bench-consume-{name}"));
    let idle_component = support::built_handlers().join(IDLE_COMPONENT);
    for i in 0..idle {
        std::fs::copy(&idle_component, dir.join(format!("idle-{i:02}.wasm"))).unwrap();
    }
    let mut c = config(&dir, Some(bootstrap));
    c.topic_partitions = partitions;
    if std::env::var_os("CONSUME_REUSE").is_some() {
        c.reuse_instances = vec![name.to_string()];
    }
    if std::env::var("EVENT_HOST_TELEMETRY").as_deref() == Ok("off")
        || std::env::var_os("CONSUME_NO_HISTORY").is_some()
    {
        c.call_history = 0;
    }
    if let Some(n) = std::env::var("CONSUME_CALL_HISTORY")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        c.call_history = n;
    }
    let host = TestHost::start(c).await;
    let (_, handlers) = host.get("/handlers").await;
    assert_eq!(handlers.as_array().map(Vec::len), Some(idle), "{handlers}");
    let noop = std::fs::read(noop).unwrap();
    let (time, handled, (ready, end, peak), (cpu, user_cpu, broker_cpu)) =
        drain(&host, &dir, (name, side), events, &noop, bootstrap).await;
    host.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "RESULT {} {handled} {ready} {end} {peak} {} {} {}",
        time.as_secs_f64(),
        cpu.as_secs_f64(),
        broker_cpu.map_or(-1.0, |c| c.as_secs_f64()),
        user_cpu.as_secs_f64()
    );
}

/// Adds the no-op handler (`side` says which build) as `name` to a running
/// host and waits until it is done with `events`: how long from its
/// partitions being assigned, how many it took, the RSS before, at the end
/// and at the peak, and the CPU time this process and the broker used.
async fn drain(
    host: &TestHost,
    dir: &Path,
    (name, side): (&str, &str),
    events: u64,
    noop: &[u8],
    bootstrap: &str,
) -> (
    Duration,
    u64,
    (u64, u64, u64),
    (Duration, Duration, Option<Duration>),
) {
    let rss_ready = proc::status_kib("self", "VmRSS:").unwrap_or(0);
    let meter = CpuMeter::start(bootstrap);
    proc::reset_peak_rss();
    let tmp = dir.join(".noop.tmp");
    std::fs::write(&tmp, noop).unwrap();
    std::fs::rename(&tmp, dir.join(format!("{name}.wasm"))).unwrap();
    let path = format!("/handlers/{name}");
    let started = Instant::now();
    let assigned = loop {
        let (_, h) = host.get(&path).await;
        if h["status"] == "running" {
            break Instant::now();
        }
        assert!(started.elapsed() < PATIENCE, "{name} did not start: {h}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let mut last = (0, Instant::now());
    let stats = loop {
        let stats = host.stats(name).await;
        let taken = done(&stats);
        if taken >= events {
            break stats;
        }
        if taken > last.0 {
            last = (taken, Instant::now());
        }
        assert!(
            last.1.elapsed() < PATIENCE,
            "host: stuck after {taken}: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let time = assigned.elapsed();
    let (cpu, broker_cpu) = meter.stop();
    let user_cpu = meter.user();
    let rss = (
        rss_ready,
        proc::status_kib("self", "VmRSS:").unwrap_or(0),
        proc::status_kib("self", "VmHWM:").unwrap_or(0),
    );
    assert_eq!(
        (stats["failed"].as_u64(), stats["deadLettered"].as_u64()),
        (Some(0), Some(0)),
        "{stats}"
    );
    // The no-op handler runs on every event, the skipping one on none.
    let ran = stats["handled"].as_u64().unwrap();
    assert_eq!(
        ran,
        if side == PIPELINE { 0 } else { done(&stats) },
        "{side}: {stats}"
    );
    (time, done(&stats), rss, (cpu, user_cpu, broker_cpu))
}

/// Events a handler is done with: handled or skipped.
fn done(stats: &serde_json::Value) -> u64 {
    stats["handled"].as_u64().unwrap() + stats["skipped"].as_u64().unwrap()
}

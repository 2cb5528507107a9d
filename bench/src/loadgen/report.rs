//! What the load generator prints: a progress line per step, and the
//! report (Markdown tables for BENCHMARKS.md) of one run or of `--merge`d
//! runs, with the JSON they are kept in.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::args::Criterion;
use super::step::Step;
use super::trend::Latency;

pub(super) fn progress(s: &Step) {
    let p = |l: &Option<Latency>, f: fn(&Latency) -> f64| l.as_ref().map_or(f64::NAN, f);
    eprintln!(
        "  {}/s: ok {} errors {} | HTTP p50 {:.2} p99 {:.2} ms | chains {}/{} p50 {:.2} p99 {:.2} ms | http {} chain {}",
        s.rate,
        s.ok,
        s.errors.values().sum::<u64>(),
        p(&s.http, |l| l.p50_ms),
        p(&s.http, |l| l.p99_ms),
        s.chains_completed,
        s.chains_accepted,
        p(&s.chain, |l| l.p50_ms),
        p(&s.chain, |l| l.p99_ms),
        yes_no(s.http_keeps_up),
        yes_no(s.chain_keeps_up),
    );
}

fn yes_no(b: bool) -> &'static str {
    if b { "keeps up" } else { "BEHIND" }
}

fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else if v < 1000.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "–".to_string(), f)
}

/// A run's results, as written by --json and read by --merge.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Results {
    pub(super) label: String,
    pub(super) url: String,
    /// Resident memory of the watched processes before any load, MiB.
    pub(super) idle_rss_mib: BTreeMap<String, Option<f64>>,
    /// Their peak resident memory over the whole run (`VmHWM`), MiB.
    pub(super) peak_rss_mib: BTreeMap<String, Option<f64>>,
    pub(super) steps: Vec<Step>,
    /// What --find-max found, by criterion.
    pub(super) max_rate: BTreeMap<String, Option<u32>>,
}

impl Results {
    /// The runs of --merge as one: steps together, memory figures of the
    /// first run (idle) and the highest of all (peak).
    pub(super) fn merge(runs: Vec<Results>) -> Option<Self> {
        let mut runs = runs.into_iter();
        let mut all = runs.next()?;
        for run in runs {
            all.steps.extend(run.steps);
            for (name, peak) in run.peak_rss_mib {
                let entry = all.peak_rss_mib.entry(name).or_default();
                *entry = match (*entry, peak) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        Some(all)
    }

    fn best(&self, c: Criterion) -> Option<u32> {
        self.steps
            .iter()
            .filter(|s| s.passes(c))
            .map(|s| s.rate)
            .max()
    }
}

/// The report: three Markdown tables (latency, chain split, resources),
/// ready for BENCHMARKS.md.
pub(super) fn report(r: &Results) {
    let mut sorted: Vec<&Step> = r.steps.iter().collect();
    sorted.sort_by_key(|s| s.rate);
    let durations: Vec<String> = {
        let mut d: Vec<String> = sorted.iter().map(|s| format!("{}", s.duration_s)).collect();
        d.dedup();
        d
    };
    println!();
    println!(
        "### {}: POST /users, open loop, {} s per rate (ms, from the scheduled send time; a chain ends when the welcome is published)",
        r.label,
        durations.join("/")
    );
    println!();
    println!(
        "| rate /s | sent /s | ok | errors | HTTP p50 | p99 | p99.9 | max | keeps up | chains done | chain p50 | p99 | p99.9 | max | p50 1st → last s (fit growth) | keeps up |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|:---:|---:|---:|---:|---:|---:|---:|:---:|");
    for s in &sorted {
        let l = |x: &Option<Latency>, f: fn(&Latency) -> f64| opt(x.as_ref().map(f), ms);
        let trend = s.chain.as_ref().map_or("–".to_string(), |c| {
            format!(
                "{} → {} ({})",
                opt(c.first_second_p50_ms, ms),
                opt(c.last_second_p50_ms, ms),
                opt(c.growth_ms, |g| format!("{g:+.0}"))
            )
        });
        println!(
            "| {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {}/{} | {} | {} | {} | {} | {} | {} |",
            s.rate,
            s.sent_per_s,
            s.ok,
            s.errors.values().sum::<u64>(),
            l(&s.http, |l| l.p50_ms),
            l(&s.http, |l| l.p99_ms),
            l(&s.http, |l| l.p999_ms),
            l(&s.http, |l| l.max_ms),
            if s.http_keeps_up { "yes" } else { "**no**" },
            s.chains_completed,
            s.chains_accepted,
            l(&s.chain, |l| l.p50_ms),
            l(&s.chain, |l| l.p99_ms),
            l(&s.chain, |l| l.p999_ms),
            l(&s.chain, |l| l.max_ms),
            trend,
            if s.chain_keeps_up { "yes" } else { "**no**" },
        );
    }
    for s in &sorted {
        if !s.errors.is_empty() {
            let kinds: Vec<String> = s.errors.iter().map(|(k, n)| format!("{k}: {n}")).collect();
            println!("\nerrors at {}/s: {}", s.rate, kinds.join(", "));
        }
        if s.started_with_backlog {
            println!(
                "\n{}/s started before the previous step's backlog drained",
                s.rate
            );
        }
    }

    println!();
    println!(
        "Chain split, p50 (p99) ms, from the servers' own timestamps (1 ms resolution): \
         due → `createdAt` (request in) | → handler's `sentAt` (event stored, consumed, \
         handler called) | → the welcome's Kafka timestamp (published: the chain ends here) \
         | → read by the generator (not part of the chain: stored, fetched)"
    );
    println!();
    println!("| rate /s | to createdAt | to handler | to published | to reader |");
    println!("|---:|---:|---:|---:|---:|");
    for s in &sorted {
        if let Some(c) = &s.chain_split {
            println!(
                "| {} | {} ({}) | {} ({}) | {} ({}) | {} ({}) |",
                s.rate,
                ms(c.to_created_p50_ms),
                ms(c.to_created_p99_ms),
                ms(c.to_handler_p50_ms),
                ms(c.to_handler_p99_ms),
                ms(c.to_published_p50_ms),
                ms(c.to_published_p99_ms),
                ms(c.to_reader_p50_ms),
                ms(c.to_reader_p99_ms)
            );
        }
    }

    println!();
    let names: Vec<&str> = sorted
        .first()
        .map(|s| {
            s.resources
                .processes
                .iter()
                .map(|p| p.name.as_str())
                .collect()
        })
        .unwrap_or_default();
    let mut header = String::from("| rate /s |");
    let mut rule = String::from("|---:|");
    for n in &names {
        header.push_str(&format!(
            " {n} CPU % | {n} CPU µs per chain | {n} peak RSS MiB |"
        ));
        rule.push_str("---:|---:|---:|");
    }
    header.push_str(" loadgen CPU % | others CPU % | machine busy % | send lag p99 ms |");
    rule.push_str("---:|---:|---:|---:|");
    println!("{header}");
    println!("{rule}");
    for s in &sorted {
        let mut row = format!("| {} |", s.rate);
        for p in &s.resources.processes {
            row.push_str(&format!(
                " {} | {} | {} |",
                opt(p.cpu_percent, |v| format!("{v:.0}")),
                opt(p.cpu_per_chain_us, |v| format!("{v:.0}")),
                opt(p.peak_rss_mib, |v| format!("{v:.0}"))
            ));
        }
        row.push_str(&format!(
            " {} | {} | {} | {} |",
            opt(s.resources.loadgen_cpu_percent, |v| format!("{v:.0}")),
            opt(s.resources.others_cpu_percent, |v| format!("{v:.0}")),
            opt(s.resources.machine_busy_percent, |v| format!("{v:.0}")),
            ms(s.send_lag_p99_ms)
        ));
        println!("{row}");
    }
    let mib = |m: &BTreeMap<String, Option<f64>>| {
        m.iter()
            .map(|(n, v)| format!("{n} {}", opt(*v, |v| format!("{v:.0} MiB"))))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !r.idle_rss_mib.is_empty() {
        println!("\nRSS before the load: {}", mib(&r.idle_rss_mib));
        println!("peak RSS (VmHWM): {}", mib(&r.peak_rss_mib));
    }
    println!(
        "\nCPU % is of one core, over the sending part of each step; CPU per chain is from the step's first \
         request to its last chain done, over the chains completed; machine busy % is of all {} cores; \
         others = the machine's busy time less the processes above (other work on the machine).",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let rate = |c| opt(r.best(c).map(f64::from), |v| format!("{v:.0}/s"));
    println!(
        "\nhighest rate run that kept up: POST /users {}, chain {}",
        rate(Criterion::Http),
        rate(Criterion::Chain)
    );
    for (criterion, best) in &r.max_rate {
        println!(
            "--find-max {criterion}: {}",
            opt(best.map(f64::from), |v| format!("{v:.0}/s"))
        );
    }
}

//! What the consume benchmark prints: a line per drain, then Markdown
//! tables of every drain and, over several rounds, of the medians.

use super::{BrokerKind, NOOP, NOOP_REUSED, PIPELINE, Run};

/// A drain's line, printed as it ends.
pub fn print_run(r: &Run) {
    let rss = match r.rss {
        Some((ready, end, peak)) => format!(
            "   RSS ready {} MiB, end {} MiB, peak {} MiB",
            ready / 1024,
            end / 1024,
            peak / 1024
        ),
        None => String::new(),
    };
    let broker_cpu = match r.broker_cpu_per_event() {
        Some(us) => format!(", broker {us:.1}"),
        None => String::new(),
    };
    let user = match r.user_cpu_per_event() {
        Some(us) => format!(" (user {us:.1})"),
        None => String::new(),
    };
    println!(
        "  {:?}, {:>2} partitions, {:>2} idle: {:<20} {:>8} events in {:6.2} s = {:>8.0} events/s {:6.1} MB/s   CPU µs/event: consumer {:.1}{user}{broker_cpu}{rss}",
        r.broker,
        r.partitions,
        r.idle,
        r.side,
        r.events,
        r.time.as_secs_f64(),
        r.rate(),
        r.mb_per_s(),
        r.cpu_per_event()
    );
}

/// A Markdown table of every run; the host's rate against the best raw
/// rate of the same broker and partition count.
pub fn report(runs: &[Run]) {
    println!();
    println!(
        "| broker | partitions | idle handlers | side | events/s | MB/s | host ÷ raw StreamConsumer | host ÷ raw BaseConsumer | consumer CPU µs/event | of which user | broker CPU µs/event | RSS ready → end (peak) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let best = |side: &str, of: &Run| {
        runs.iter()
            .filter(|r| r.side == side && r.broker == of.broker && r.partitions == of.partitions)
            .map(Run::rate)
            .fold(0.0, f64::max)
    };
    for r in runs {
        let (mut ratio_stream, mut ratio_poll, mut rss) = Default::default();
        if r.side.starts_with("host") {
            ratio_stream = format!("{:.2}", r.rate() / best("raw StreamConsumer", r));
            ratio_poll = format!("{:.2}", r.rate() / best("raw BaseConsumer", r));
        }
        if let Some((ready, end, peak)) = r.rss {
            rss = format!(
                "{} → {} MiB ({} MiB)",
                ready / 1024,
                end / 1024,
                peak / 1024
            );
        }
        let broker_cpu = r
            .broker_cpu_per_event()
            .map_or(String::new(), |us| format!("{us:.1}"));
        let user = r
            .user_cpu_per_event()
            .map_or(String::new(), |us| format!("{us:.1}"));
        println!(
            "| {:?} | {} | {} | {} | {:.0} | {:.1} | {ratio_stream} | {ratio_poll} | {:.1} | {user} | {broker_cpu} | {rss} |",
            r.broker,
            r.partitions,
            r.idle,
            r.side,
            r.rate(),
            r.mb_per_s(),
            r.cpu_per_event()
        );
    }
    report_medians(runs);
}

/// With several rounds: per broker and partition count (no idle handlers),
/// the median rate of each side and each host side's median over the
/// median of the better raw loop. Single drains on a shared machine vary by
/// ±20 %; medians of alternating rounds are the figures to compare.
fn report_medians(runs: &[Run]) {
    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }
    let mut cases: Vec<(BrokerKind, i32)> = Vec::new();
    for r in runs.iter().filter(|r| r.idle == 0) {
        if !cases.contains(&(r.broker, r.partitions)) {
            cases.push((r.broker, r.partitions));
        }
    }
    let rounds = |broker, partitions, side: &str| -> Vec<&Run> {
        runs.iter()
            .filter(|r| r.broker == broker && r.partitions == partitions)
            .filter(|r| r.idle == 0 && r.side == side)
            .collect()
    };
    if !cases
        .iter()
        .any(|&(b, p)| rounds(b, p, "raw StreamConsumer").len() > 1)
    {
        return;
    }
    println!();
    println!(
        "| broker | partitions | rounds | side | median events/s | ÷ better raw median | median consumer CPU µs/event | median broker CPU µs/event |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (broker, partitions) in cases {
        let rate = |side| {
            median(
                rounds(broker, partitions, side)
                    .iter()
                    .map(|r| r.rate())
                    .collect(),
            )
        };
        let raw = rate("raw StreamConsumer").max(rate("raw BaseConsumer"));
        for side in [
            "raw StreamConsumer",
            "raw BaseConsumer",
            PIPELINE,
            NOOP,
            NOOP_REUSED,
        ] {
            let of = rounds(broker, partitions, side);
            if of.is_empty() {
                continue;
            }
            let ratio = if side.starts_with("host") {
                format!("{:.2}", rate(side) / raw)
            } else {
                String::new()
            };
            let cpu = median(of.iter().map(|r| r.cpu_per_event()).collect());
            let broker_cpu = median(of.iter().filter_map(|r| r.broker_cpu_per_event()).collect());
            println!(
                "| {broker:?} | {partitions} | {} | {side} | {:.0} | {ratio} | {cpu:.1} | {} |",
                of.len(),
                rate(side),
                if broker_cpu.is_nan() {
                    String::new()
                } else {
                    format!("{broker_cpu:.1}")
                }
            );
        }
    }
}

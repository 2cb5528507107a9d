//! A handler's lag, from librdkafka's statistics: how many events wait on
//! each partition this instance consumes.

use std::collections::{BTreeMap, BTreeSet};

use rdkafka::Statistics;

use crate::config::OffsetReset;

/// Events waiting on each assigned partition, keyed `topic/partition`: from
/// the partition's end to the offset stored for the next commit (the event
/// after the last one handled and acknowledged), or else to the last
/// committed one, or else (nothing handled since the group first consumed
/// the partition) to where the group started: the partition's start with
/// `earliest`. With `latest` such a partition is left out: where it started
/// is not in the statistics.
pub fn lag(
    statistics: &Statistics,
    assigned: &BTreeSet<(String, i32)>,
    offset_reset: OffsetReset,
) -> BTreeMap<String, u64> {
    let mut lag = BTreeMap::new();
    for (topic, t) in &statistics.topics {
        for (&partition, p) in &t.partitions {
            if !assigned.contains(&(topic.clone(), partition)) {
                continue;
            }
            let from_start = match offset_reset {
                OffsetReset::Earliest if p.lo_offset >= 0 => p.hi_offset - p.lo_offset,
                _ => -1,
            };
            let waiting = [p.consumer_lag_stored, p.consumer_lag, from_start]
                .into_iter()
                .find_map(|l| u64::try_from(l).ok());
            if let Some(waiting) = waiting {
                lag.insert(format!("{topic}/{partition}"), waiting);
            }
        }
    }
    lag
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn lag_counts_assigned_partitions_with_a_known_position() {
        use rdkafka::statistics::{Partition, Topic};
        let partition = |stored: i64, committed: i64| Partition {
            consumer_lag_stored: stored,
            consumer_lag: committed,
            lo_offset: -1,
            hi_offset: -1,
            ..Default::default()
        };
        let unstarted = |lo: i64, hi: i64| Partition {
            lo_offset: lo,
            hi_offset: hi,
            ..partition(-1, -1)
        };
        let statistics = Statistics {
            topics: HashMap::from([(
                "user-events".to_string(),
                Topic {
                    partitions: HashMap::from([
                        (0, partition(5, 9)),
                        // Nothing stored since the start: the commit counts.
                        (1, partition(-1, 2)),
                        // Neither known yet: left out.
                        (2, partition(-1, -1)),
                        // Not assigned to this instance.
                        (3, partition(7, 7)),
                        // Nothing handled or committed: from the start.
                        (4, unstarted(10, 16)),
                        (5, unstarted(0, 0)),
                        // librdkafka's internal "unassigned" partition.
                        (-1, partition(0, 0)),
                    ]),
                    ..Default::default()
                },
            )]),
            ..Default::default()
        };
        let assigned = [0, 1, 2, 4, 5]
            .into_iter()
            .map(|p| ("user-events".to_string(), p))
            .collect();
        let lag_of = |reset| {
            lag(&statistics, &assigned, reset)
                .into_iter()
                .map(|(k, v)| (k.trim_start_matches("user-events/").to_string(), v))
                .collect::<Vec<_>>()
        };
        let known = |v: &[(&str, u64)]| {
            v.iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            lag_of(OffsetReset::Earliest),
            known(&[("0", 5), ("1", 2), ("4", 6), ("5", 0)])
        );
        // With `latest` the start of an unstarted partition is unknown.
        assert_eq!(lag_of(OffsetReset::Latest), known(&[("0", 5), ("1", 2)]));
    }
}

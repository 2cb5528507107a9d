//! The instances of a cluster, as each announces itself on the instances
//! topic (compacted, keyed by instance id): every few seconds, what it
//! serves; a tombstone when it stops. An instance not heard from for
//! [`STALE_AFTER`] announcements is taken for gone (it crashed).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Announcements missed before an instance counts as gone.
pub const STALE_AFTER: u32 = 3;

/// One handler as an instance serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Served {
    pub name: String,
    /// Its digest; `None` when no version could be loaded.
    pub version: Option<String>,
    pub status: String,
    pub partitions: usize,
}

/// What an instance says of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    pub id: String,
    /// Where its API answers.
    pub url: String,
    pub started_at_ms: u64,
    /// When it said this (its own clock).
    pub at_ms: u64,
    pub handlers: Vec<Served>,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The instances heard from.
#[derive(Debug, Default)]
pub struct Instances {
    by_id: BTreeMap<String, Announcement>,
}

impl Instances {
    /// Takes an announcement, or a tombstone (`None`) for `id`.
    pub fn apply(&mut self, id: &str, announcement: Option<Announcement>) {
        match announcement {
            Some(a) if a.id == id => {
                // An older one read late does not undo a newer one.
                if self
                    .by_id
                    .get(id)
                    .is_none_or(|known| known.at_ms <= a.at_ms)
                {
                    self.by_id.insert(id.to_string(), a);
                }
            }
            Some(_) => {}
            None => {
                self.by_id.remove(id);
            }
        }
    }

    /// The instances heard from within [`STALE_AFTER`] intervals of `now_ms`.
    pub fn live(&self, interval: Duration, now_ms: u64) -> Vec<&Announcement> {
        let window = u64::try_from(interval.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_mul(u64::from(STALE_AFTER));
        self.by_id
            .values()
            .filter(|a| now_ms.saturating_sub(a.at_ms) <= window)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(id: &str, at_ms: u64) -> Announcement {
        Announcement {
            id: id.into(),
            url: format!("http://{id}"),
            started_at_ms: 0,
            at_ms,
            handlers: Vec::new(),
        }
    }

    #[test]
    fn instances_are_live_until_silent_or_gone() {
        let mut all = Instances::default();
        let interval = Duration::from_secs(2);
        all.apply("a", Some(said("a", 10_000)));
        all.apply("b", Some(said("b", 10_000)));
        all.apply("c", Some(said("c", 1_000)));
        // A late, older announcement of `a` changes nothing.
        all.apply("a", Some(said("a", 9_000)));
        // An announcement under another instance's key is ignored.
        all.apply("b", Some(said("x", 12_000)));
        let ids = |v: Vec<&Announcement>| v.iter().map(|a| a.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(all.live(interval, 12_000)), ["a", "b"]);
        assert_eq!(all.live(interval, 12_000)[0].at_ms, 10_000);
        all.apply("b", None);
        assert_eq!(ids(all.live(interval, 12_000)), ["a"]);
        assert!(all.live(interval, 17_000).is_empty());
    }
}

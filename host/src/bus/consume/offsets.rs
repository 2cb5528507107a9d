//! What one partition may store and commit: the offset after the longest
//! run of events, in the order they were taken, that are all done.
//!
//! The lane takes events in order and they finish in order too, but the
//! tracker does not rely on it: an acknowledgement that arrives out of order
//! waits until everything before it is done. Once an event is abandoned (the
//! host stops, or the partition is revoked, before it was done) nothing from
//! it on is ever committed by this tracker, so the next owner starts at that
//! event. A replay rewinds the tracker into a new generation: what was taken
//! before it no longer counts.

use std::collections::BTreeMap;

/// An event taken by the lane: which offset, in which generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    generation: u64,
    offset: i64,
}

#[derive(Debug, Default)]
pub struct OffsetTracker {
    generation: u64,
    /// Events taken and not yet part of the committable run: whether each
    /// is done.
    open: BTreeMap<i64, bool>,
    /// Every event taken before this offset is done: the offset to commit.
    /// `None` until an event is done (the committed offset stands).
    next: Option<i64>,
    /// An event was abandoned, or the partition handed over: `next` is final
    /// until a rewind.
    frozen: bool,
}

impl OffsetTracker {
    /// Records that the lane took the event at `offset`.
    pub fn take(&mut self, offset: i64) -> Ticket {
        if !self.frozen {
            self.open.insert(offset, false);
        }
        Ticket {
            generation: self.generation,
            offset,
        }
    }

    /// Whether the event still counts: taken in this generation, and
    /// nothing was abandoned since.
    pub fn is_current(&self, ticket: Ticket) -> bool {
        ticket.generation == self.generation && !self.frozen
    }

    /// Records that an event is done (handled and its output acknowledged,
    /// or dead-lettered). Returns the new offset to commit if it moved.
    pub fn finish(&mut self, ticket: Ticket) -> Option<i64> {
        if !self.is_current(ticket) {
            return None;
        }
        match self.open.get_mut(&ticket.offset) {
            Some(done) => *done = true,
            None => return None,
        }
        let before = self.next;
        while let Some(entry) = self.open.first_entry() {
            if !*entry.get() {
                break;
            }
            let offset = *entry.key();
            entry.remove();
            self.next = Some(offset + 1);
        }
        (self.next != before).then_some(self.next).flatten()
    }

    /// Records that an event will not be done here: nothing from it on may
    /// be committed.
    pub fn abandon(&mut self, ticket: Ticket) {
        if ticket.generation == self.generation {
            // What is open stays, to be counted at the hand-over.
            self.frozen = true;
        }
    }

    /// No event finishes any more (the partition was handed over): what is
    /// committable now is final. Returns how many events were taken and are
    /// not part of it: the next owner handles them again, and some of them
    /// this owner may have handled already.
    pub fn freeze(&mut self) -> usize {
        self.frozen = true;
        let unfinished = self.open.len();
        self.open.clear();
        unfinished
    }

    /// The partition was rewound to `offset` and that position committed:
    /// events taken before no longer count.
    pub fn rewind(&mut self, offset: i64) {
        self.generation += 1;
        self.open.clear();
        self.next = Some(offset);
        self.frozen = false;
    }

    /// The offset to commit: the next event to read after everything done.
    pub fn committable(&self) -> Option<i64> {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_contiguous_run_of_done_events_is_committable() {
        let mut t = OffsetTracker::default();
        assert_eq!(t.committable(), None);
        let a = t.take(10);
        let b = t.take(11);
        let c = t.take(13); // offsets may have gaps (compaction, markers)
        assert_eq!(t.finish(b), None, "11 is done but 10 is not");
        assert_eq!(t.committable(), None);
        assert_eq!(t.finish(a), Some(12), "10 and 11 are done");
        assert_eq!(t.finish(c), Some(14));
        assert_eq!(
            t.finish(c),
            None,
            "a second acknowledgement changes nothing"
        );
        assert_eq!(t.committable(), Some(14));
    }

    #[test]
    fn nothing_after_an_abandoned_event_is_committed() {
        let mut t = OffsetTracker::default();
        let a = t.take(0);
        let b = t.take(1);
        let c = t.take(2);
        assert_eq!(t.finish(a), Some(1));
        t.abandon(b);
        assert_eq!(t.finish(c), None);
        assert!(!t.is_current(c));
        let d = t.take(3);
        assert_eq!(t.finish(d), None, "nothing taken after it counts either");
        assert_eq!(t.committable(), Some(1), "the next owner starts at 1");
        assert_eq!(t.freeze(), 2, "1 and 2 are left to the next owner");
    }

    #[test]
    fn a_rewind_makes_earlier_events_stale() {
        let mut t = OffsetTracker::default();
        let old = t.take(50);
        t.rewind(0);
        assert_eq!(t.committable(), Some(0));
        assert!(!t.is_current(old));
        assert_eq!(
            t.finish(old),
            None,
            "stale: must not move the rewound position"
        );
        t.abandon(old);
        let fresh = t.take(0);
        assert!(t.is_current(fresh), "a stale abandonment does not freeze");
        assert_eq!(t.finish(fresh), Some(1));
    }

    #[test]
    fn a_frozen_tracker_keeps_what_was_committable() {
        let mut t = OffsetTracker::default();
        let a = t.take(7);
        let b = t.take(8);
        assert_eq!(t.finish(a), Some(8));
        assert_eq!(t.freeze(), 1, "8 was taken and is not done");
        assert_eq!(t.freeze(), 0);
        assert_eq!(t.finish(b), None, "handed over: the new owner handles 8");
        assert_eq!(t.committable(), Some(8));
        t.rewind(3);
        let c = t.take(3);
        assert_eq!(t.finish(c), Some(4), "a rewind thaws it");
    }
}

//! The per-shard checkpoint tracker: pure bookkeeping of which batches were fetched, which
//! were delivered by every sink, and which cursor was committed to the log service.
//!
//! Batches are numbered in fetch order. The checkpoint may move only past a contiguous run of
//! delivered batches starting at the oldest undelivered one, so a batch delivered early never
//! lets the checkpoint skip one still in flight. Invariant, in batch counts:
//! `committed <= delivered <= fetched`, and none of them ever goes back.

use std::collections::BTreeMap;

/// A tracker misuse; each is a bug in the caller, reported instead of corrupting state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackerError {
    /// The batch number was never handed out, or was already delivered.
    #[error("batch {0} is not in flight")]
    UnknownBatch(u64),
    /// A commit was confirmed for a cursor that was not the one to commit.
    #[error("confirmed commit of `{0}` which was not offered")]
    UnexpectedCommit(String),
}

/// Fetched, delivered and committed positions of one shard.
#[derive(Debug, Clone)]
pub struct CheckpointTracker {
    /// Cursor the shard started from (the checkpoint loaded or the start position).
    start_cursor: String,
    /// Batches handed out: number → cursor after the batch, and whether it was delivered.
    in_flight: BTreeMap<u64, (String, bool)>,
    /// Number of batches fetched so far (the next batch number).
    fetched: u64,
    /// Number of leading batches delivered.
    delivered: u64,
    /// Cursor after the last delivered batch of the contiguous run.
    delivered_cursor: String,
    /// Number of batches covered by the last committed cursor.
    committed: u64,
    /// The cursor last committed (or loaded from the server).
    committed_cursor: String,
}

impl CheckpointTracker {
    /// Starts tracking from `cursor`. `already_committed` is true when the cursor came from
    /// the server's checkpoint, so it need not be committed again.
    pub fn new(cursor: &str, already_committed: bool) -> Self {
        Self {
            start_cursor: cursor.to_owned(),
            in_flight: BTreeMap::new(),
            fetched: 0,
            delivered: 0,
            delivered_cursor: cursor.to_owned(),
            committed: 0,
            committed_cursor: if already_committed {
                cursor.to_owned()
            } else {
                String::new()
            },
        }
    }

    /// Records a fetched batch ending at `next_cursor`; returns its number.
    pub fn fetched(&mut self, next_cursor: &str) -> u64 {
        let number = self.fetched;
        self.fetched += 1;
        self.in_flight
            .insert(number, (next_cursor.to_owned(), false));
        number
    }

    /// Records that every sink delivered batch `number`.
    ///
    /// # Errors
    ///
    /// [`TrackerError::UnknownBatch`] for a number not in flight.
    pub fn delivered(&mut self, number: u64) -> Result<(), TrackerError> {
        match self.in_flight.get_mut(&number) {
            Some((_, done)) if !*done => *done = true,
            _ => return Err(TrackerError::UnknownBatch(number)),
        }
        while let Some(entry) = self.in_flight.first_entry() {
            if !entry.get().1 {
                break;
            }
            let (number, (cursor, _)) = entry.remove_entry();
            debug_assert_eq!(number, self.delivered);
            self.delivered = number + 1;
            self.delivered_cursor = cursor;
        }
        debug_assert!(self.committed <= self.delivered && self.delivered <= self.fetched);
        Ok(())
    }

    /// The cursor to commit, when the delivered position moved past the committed one.
    pub fn to_commit(&self) -> Option<&str> {
        (self.delivered_cursor != self.committed_cursor).then_some(self.delivered_cursor.as_str())
    }

    /// Records that `cursor` (from [`CheckpointTracker::to_commit`]) was committed.
    ///
    /// # Errors
    ///
    /// [`TrackerError::UnexpectedCommit`] when `cursor` is not the delivered cursor.
    pub fn committed(&mut self, cursor: &str) -> Result<(), TrackerError> {
        if cursor != self.delivered_cursor {
            return Err(TrackerError::UnexpectedCommit(cursor.to_owned()));
        }
        self.committed_cursor = cursor.to_owned();
        self.committed = self.delivered;
        Ok(())
    }

    /// Forgets every batch in flight (after a failed delivery) and returns the cursor to
    /// fetch from again: the one after the delivered run.
    pub fn rewind(&mut self) -> &str {
        self.in_flight.clear();
        self.fetched = self.delivered;
        &self.delivered_cursor
    }

    /// Number of batches fetched and not yet delivered.
    pub fn undelivered(&self) -> usize {
        self.in_flight.len()
    }

    /// The cursor after the delivered run.
    pub fn delivered_cursor(&self) -> &str {
        &self.delivered_cursor
    }

    /// The last committed cursor (empty when nothing was committed yet).
    pub fn committed_cursor(&self) -> &str {
        &self.committed_cursor
    }

    /// The cursor the shard started from.
    pub fn start_cursor(&self) -> &str {
        &self.start_cursor
    }

    /// `(committed, delivered, fetched)` in batch counts.
    pub fn positions(&self) -> (u64, u64, u64) {
        (self.committed, self.delivered, self.fetched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn out_of_order_delivery_waits_for_the_gap() {
        let mut tracker = CheckpointTracker::new("MA==", true);
        assert_eq!(
            tracker.to_commit(),
            None,
            "a loaded checkpoint is not committed again"
        );
        let first = tracker.fetched("MQ==");
        let second = tracker.fetched("Mg==");
        tracker.delivered(second).unwrap();
        assert_eq!(tracker.to_commit(), None, "batch 0 is still in flight");
        tracker.delivered(first).unwrap();
        assert_eq!(tracker.to_commit(), Some("Mg=="));
        tracker.committed("Mg==").unwrap();
        assert_eq!(tracker.to_commit(), None);
        assert_eq!(tracker.positions(), (2, 2, 2));
        assert_eq!(
            tracker.delivered(first),
            Err(TrackerError::UnknownBatch(first))
        );
    }

    #[test]
    fn rewind_returns_to_the_delivered_cursor() {
        let mut tracker = CheckpointTracker::new("MA==", false);
        assert_eq!(
            tracker.to_commit(),
            Some("MA=="),
            "a start position is committed once"
        );
        let first = tracker.fetched("MQ==");
        tracker.fetched("Mg==");
        tracker.delivered(first).unwrap();
        assert_eq!(tracker.rewind(), "MQ==");
        assert_eq!(tracker.undelivered(), 0);
        assert_eq!(
            tracker.fetched("Mg=="),
            1,
            "numbering continues after the delivered run"
        );
    }

    #[derive(Debug, Clone)]
    enum Step {
        Fetch,
        Deliver(usize),
        Commit,
        Rewind,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => Just(Step::Fetch),
            3 => (0usize..8).prop_map(Step::Deliver),
            1 => Just(Step::Commit),
            1 => Just(Step::Rewind),
        ]
    }

    proptest! {
        #[test]
        fn committed_le_delivered_le_fetched_and_never_regress(steps in prop::collection::vec(step(), 1..200)) {
            let mut tracker = CheckpointTracker::new("start", true);
            let mut next_cursor = 0u64;
            let mut previous = tracker.positions();
            let mut committed_cursors = vec!["start".to_owned()];
            for step in steps {
                match step {
                    Step::Fetch => {
                        next_cursor += 1;
                        tracker.fetched(&format!("c{next_cursor}"));
                    }
                    Step::Deliver(pick) => {
                        let pending: Vec<u64> = tracker.in_flight.iter().filter(|(_, (_, d))| !d).map(|(n, _)| *n).collect();
                        if !pending.is_empty() {
                            tracker.delivered(pending[pick % pending.len()]).unwrap();
                        }
                    }
                    Step::Commit => {
                        if let Some(cursor) = tracker.to_commit().map(str::to_owned) {
                            tracker.committed(&cursor).unwrap();
                            committed_cursors.push(cursor);
                        }
                    }
                    Step::Rewind => {
                        tracker.rewind();
                    }
                }
                let (committed, delivered, fetched) = tracker.positions();
                prop_assert!(committed <= delivered && delivered <= fetched);
                prop_assert!(committed >= previous.0 && delivered >= previous.1);
                previous = (committed, delivered, fetched);
            }
            // Cursors were committed in fetch order: each later one comes from a later batch.
            let numbers: Vec<u64> = committed_cursors[1..].iter().map(|c| c[1..].parse().unwrap()).collect();
            prop_assert!(numbers.windows(2).all(|w| w[0] < w[1]));
        }
    }
}

//! Shard leases: how long this consumer may still act as a shard's owner without hearing
//! from the server again.
//!
//! The server may hand a shard to another consumer once the group timeout has passed since it
//! last received a heartbeat listing the shard, in its answer or in the report (the
//! official consumers keep reporting a shard they drain, so that its final commit lands
//! before the shard moves on). Counting from when that heartbeat was *sent*
//! (never later than when it was received) and keeping a margin, a shard's lease holds until
//! `sent + timeout - margin`. A process that was frozen (SIGSTOP, a paused VM) or cut off
//! past that moment finds its leases gone when it runs again, before its heartbeat task had
//! a chance to learn of the eviction: it then delivers nothing it pulled, and commits only
//! with the server's ownership check.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The part of the group timeout kept back from a lease.
const MARGIN_DIVISOR: u32 = 10;

/// The leases of one logstore's shards, renewed by its heartbeat, read by its shard tasks.
#[derive(Debug)]
pub struct Leases {
    /// How long a lease lasts from the heartbeat that renewed it.
    term: Duration,
    /// Per shard, when the last successful heartbeat that listed it was sent.
    renewed: Mutex<BTreeMap<u32, Instant>>,
}

impl Leases {
    /// Leases for a group with this timeout: each holds for the timeout minus a tenth.
    pub fn new(group_timeout: Duration) -> Self {
        Self {
            term: group_timeout - group_timeout / MARGIN_DIVISOR,
            renewed: Mutex::new(BTreeMap::new()),
        }
    }

    /// A successful heartbeat sent at `sent` reported or was given `shards`. Other shards
    /// keep the lease they had.
    pub fn renew(&self, shards: impl IntoIterator<Item = u32>, sent: Instant) {
        let mut renewed = self.renewed.lock().expect("leases lock");
        for shard in shards {
            let at = renewed.entry(shard).or_insert(sent);
            *at = (*at).max(sent);
        }
    }

    /// The server said it does not know this consumer: every lease ends now.
    pub fn revoke_all(&self) {
        self.renewed.lock().expect("leases lock").clear();
    }

    /// True while this consumer may still act as the owner of `shard`.
    pub fn holds(&self, shard: u32) -> bool {
        self.renewed
            .lock()
            .expect("leases lock")
            .get(&shard)
            .is_some_and(|sent| Instant::now() < *sent + self.term)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_lease_holds_for_the_group_timeout_minus_a_tenth_from_the_heartbeat_sent() {
        let leases = Leases::new(Duration::from_secs(10));
        assert!(!leases.holds(0), "never granted");
        let sent = Instant::now();
        tokio::time::advance(Duration::from_secs(1)).await;
        leases.renew([0, 1], sent);
        tokio::time::advance(Duration::from_millis(7_999)).await;
        assert!(leases.holds(0));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(!leases.holds(0), "9 s after the heartbeat was sent");
        leases.renew([1], Instant::now());
        assert!(leases.holds(1) && !leases.holds(0));
        leases.revoke_all();
        assert!(!leases.holds(1));
    }
}

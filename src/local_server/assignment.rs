//! Server-side shard assignment of one consumer group, without I/O.
//!
//! On each heartbeat: register the consumer and what it reports holding, expire consumers
//! silent for longer than the group timeout, give unowned shards to the least-loaded consumer,
//! rebalance while loads differ by more than one (keeping owners where possible), and answer
//! with the consumer's shards minus any that another live consumer still reports holding or
//! was last told to hold: a shard is released before it is granted, so no shard is consumed
//! by two at once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
struct Member {
    last_seen: Instant,
    /// What the consumer said it holds (including shards it is still draining).
    reported: BTreeSet<u32>,
    /// What the last heartbeat response told it to hold.
    granted: BTreeSet<u32>,
}

/// Membership and ownership of one consumer group.
#[derive(Debug, Clone, Default)]
pub struct Assignment {
    members: BTreeMap<String, Member>,
    owners: BTreeMap<u32, String>,
}

impl Assignment {
    /// Handles a heartbeat from `consumer` holding `reported`, given the shards that may be
    /// assigned now, and returns the shards the consumer should hold (sorted).
    pub fn heartbeat(
        &mut self,
        consumer: &str,
        reported: &[u32],
        eligible: &BTreeSet<u32>,
        timeout: Duration,
        now: Instant,
    ) -> Vec<u32> {
        let member = self
            .members
            .entry(consumer.to_owned())
            .or_insert_with(|| Member {
                last_seen: now,
                reported: BTreeSet::new(),
                granted: BTreeSet::new(),
            });
        member.last_seen = now;
        member.reported = reported.iter().copied().collect();
        // Shards the consumer was told to hold but no longer reports, it gave up on purpose
        // (shutdown, or a lost shard): hand them on now instead of after the timeout.
        let released: BTreeSet<u32> = member
            .granted
            .difference(&member.reported)
            .copied()
            .collect();
        if !released.is_empty() && member.reported.is_empty() {
            tracing::info!(
                consumer,
                "consumer released every shard; removing it from the group"
            );
            self.members.remove(consumer);
            self.owners.retain(|_, owner| owner != consumer);
            return Vec::new();
        }
        self.owners
            .retain(|shard, owner| !(owner == consumer && released.contains(shard)));
        self.expire(timeout, now);
        self.owners.retain(|shard, _| eligible.contains(shard));
        self.assign_unowned(eligible, &released, consumer);
        self.rebalance();
        let granted: BTreeSet<u32> = self
            .owned_by(consumer)
            .filter(|shard| {
                !self.members.iter().any(|(name, member)| {
                    name != consumer
                        && (member.reported.contains(shard) || member.granted.contains(shard))
                })
            })
            .collect();
        let member = self.members.get_mut(consumer).expect("inserted above");
        member.granted = granted.clone();
        granted.into_iter().collect()
    }

    /// Drops consumers silent for longer than `timeout`, and their ownerships.
    pub fn expire(&mut self, timeout: Duration, now: Instant) {
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, member)| now.saturating_duration_since(member.last_seen) > timeout)
            .map(|(name, _)| name.clone())
            .collect();
        for name in expired {
            tracing::info!(consumer = %name, "consumer timed out; releasing its shards");
            self.members.remove(&name);
            self.owners.retain(|_, owner| *owner != name);
        }
    }

    /// True when a heartbeat of `consumer` reporting `reported` may be answered. The log
    /// service refuses (400 `NotExistConsumerWithBody`) a non-empty report from a consumer it
    /// does not know, one that never joined or timed out: such a consumer must drop its shards
    /// and join again with an empty report, instead of being silently registered with shards
    /// that may belong to another consumer by now.
    pub fn admits(
        &self,
        consumer: &str,
        reported: &[u32],
        timeout: Duration,
        now: Instant,
    ) -> bool {
        reported.is_empty()
            || self
                .members
                .get(consumer)
                .is_some_and(|member| now.saturating_duration_since(member.last_seen) <= timeout)
    }

    /// True when `consumer` is a live member (as of the last expiry).
    pub fn is_member(&self, consumer: &str) -> bool {
        self.members.contains_key(consumer)
    }

    /// True when `consumer` owns `shard` in this assignment: what UpdateCheckPoint without
    /// `forceSuccess` requires. A consumer still draining a shard that moved on does not own
    /// it any more (its final commit needs `forceSuccess=true`, as the official consumers
    /// send it).
    pub fn owns(&self, consumer: &str, shard: u32) -> bool {
        self.owners
            .get(&shard)
            .is_some_and(|owner| owner == consumer)
    }

    fn owned_by<'a>(&'a self, consumer: &'a str) -> impl Iterator<Item = u32> + 'a {
        self.owners
            .iter()
            .filter(move |(_, owner)| owner.as_str() == consumer)
            .map(|(shard, _)| *shard)
    }

    fn loads(&self) -> BTreeMap<&str, usize> {
        let mut loads: BTreeMap<&str, usize> =
            self.members.keys().map(|name| (name.as_str(), 0)).collect();
        for owner in self.owners.values() {
            *loads.entry(owner.as_str()).or_default() += 1;
        }
        loads
    }

    /// The least-loaded member other than `excluded`, ties broken by name.
    fn idlest(&self, excluded: Option<&str>) -> Option<String> {
        self.loads()
            .into_iter()
            .filter(|(name, _)| Some(*name) != excluded)
            .min_by_key(|(name, load)| (*load, *name))
            .map(|(name, _)| name.to_owned())
    }

    /// Gives unowned shards to the idlest consumer; `released` shards never go straight back
    /// to `releaser`, the consumer that just let them go.
    fn assign_unowned(
        &mut self,
        eligible: &BTreeSet<u32>,
        released: &BTreeSet<u32>,
        releaser: &str,
    ) {
        for shard in eligible {
            if self.owners.contains_key(shard) {
                continue;
            }
            let excluded = released.contains(shard).then_some(releaser);
            match self.idlest(excluded) {
                Some(consumer) => {
                    self.owners.insert(*shard, consumer);
                }
                None => return,
            }
        }
    }

    fn rebalance(&mut self) {
        loop {
            let loads = self.loads();
            let Some((busiest, max)) = loads
                .iter()
                .max_by_key(|(name, load)| (**load, std::cmp::Reverse(**name)))
                .map(|(name, load)| (name.to_string(), *load))
            else {
                return;
            };
            let Some((idlest, min)) = loads
                .iter()
                .min_by_key(|(name, load)| (**load, **name))
                .map(|(name, load)| (name.to_string(), *load))
            else {
                return;
            };
            if max <= min + 1 {
                return;
            }
            // Move the busiest consumer's highest shard.
            let shard = self
                .owned_by(&busiest)
                .last()
                .expect("the busiest consumer owns shards");
            self.owners.insert(shard, idlest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);

    fn shards(n: u32) -> BTreeSet<u32> {
        (0..n).collect()
    }

    #[test]
    fn a_consumer_that_timed_out_must_come_back_with_an_empty_report() {
        let mut group = Assignment::default();
        let t0 = Instant::now();
        let all = shards(2);
        assert!(group.admits("c1", &[], TIMEOUT, t0), "joining");
        assert!(!group.admits("c1", &[0], TIMEOUT, t0), "never joined");
        let held = group.heartbeat("c1", &[], &all, TIMEOUT, t0);
        assert!(group.admits("c1", &held, TIMEOUT, t0 + TIMEOUT));
        let late = t0 + TIMEOUT + Duration::from_millis(1);
        assert!(!group.admits("c1", &held, TIMEOUT, late), "timed out");
        group.heartbeat("c2", &[], &all, TIMEOUT, late);
        assert!(
            !group.admits("c1", &held, TIMEOUT, late),
            "expired and gone"
        );
        assert!(
            group.admits("c1", &[], TIMEOUT, late),
            "an empty report joins again"
        );
    }

    #[test]
    fn first_consumer_gets_everything_then_shares_after_release() {
        let mut group = Assignment::default();
        let t0 = Instant::now();
        let all = shards(4);
        assert_eq!(group.heartbeat("c1", &[], &all, TIMEOUT, t0), [0, 1, 2, 3]);
        assert_eq!(
            group.heartbeat("c1", &[0, 1, 2, 3], &all, TIMEOUT, t0),
            [0, 1, 2, 3]
        );
        // c2 joins: ownership of two shards moves, but c1 still reports them.
        assert!(group.heartbeat("c2", &[], &all, TIMEOUT, t0).is_empty());
        let c1 = group.heartbeat("c1", &[0, 1, 2, 3], &all, TIMEOUT, t0);
        assert_eq!(c1.len(), 2);
        let moved: Vec<u32> = all.iter().copied().filter(|s| !c1.contains(s)).collect();
        assert!(
            group.heartbeat("c2", &[], &all, TIMEOUT, t0).is_empty(),
            "not before release"
        );
        // c1 released the moved shards.
        group.heartbeat("c1", &c1, &all, TIMEOUT, t0);
        assert_eq!(group.heartbeat("c2", &[], &all, TIMEOUT, t0), moved);
    }

    #[test]
    fn a_shard_granted_but_not_yet_reported_is_not_granted_twice() {
        let mut group = Assignment::default();
        let t0 = Instant::now();
        let all = shards(4);
        assert_eq!(group.heartbeat("c2", &[], &all, TIMEOUT, t0), [0, 1, 2, 3]);
        // c1 joins before c2 has reported anything: ownership moves, but c2 was told to hold
        // every shard, so c1 gets nothing yet.
        assert!(group.heartbeat("c1", &[], &all, TIMEOUT, t0).is_empty());
        let kept = group.heartbeat("c2", &[0, 1, 2, 3], &all, TIMEOUT, t0);
        assert_eq!(kept.len(), 2);
        assert!(
            group.heartbeat("c1", &[], &all, TIMEOUT, t0).is_empty(),
            "c2 still drains"
        );
        group.heartbeat("c2", &kept, &all, TIMEOUT, t0);
        assert_eq!(group.heartbeat("c1", &[], &all, TIMEOUT, t0).len(), 2);
    }

    #[test]
    fn released_shards_move_at_once_and_a_leaving_consumer_is_forgotten() {
        let mut group = Assignment::default();
        let t0 = Instant::now();
        let all = shards(4);
        group.heartbeat("a", &[], &all, TIMEOUT, t0);
        group.heartbeat("b", &[], &all, TIMEOUT, t0);
        let a = group.heartbeat("a", &[0, 1, 2, 3], &all, TIMEOUT, t0);
        group.heartbeat("a", &a, &all, TIMEOUT, t0);
        let b = group.heartbeat("b", &[], &all, TIMEOUT, t0);
        assert_eq!((a.len(), b.len()), (2, 2));
        // b stops: it releases everything with an empty heartbeat.
        assert!(group.heartbeat("b", &[], &all, TIMEOUT, t0).is_empty());
        assert!(!group.is_member("b"));
        assert_eq!(group.heartbeat("a", &a, &all, TIMEOUT, t0), [0, 1, 2, 3]);
        // a gives up shard 0 alone (e.g. it lost it): it goes to nobody else, and not back to a.
        group.heartbeat("c", &[], &all, TIMEOUT, t0);
        let a = group.heartbeat("a", &[1, 2, 3], &all, TIMEOUT, t0);
        assert!(!a.contains(&0));
        assert!(group.heartbeat("c", &[], &all, TIMEOUT, t0).contains(&0));
    }

    #[test]
    fn only_the_owner_owns_a_shard_not_the_consumer_still_draining_it() {
        let mut group = Assignment::default();
        let t0 = Instant::now();
        let all = shards(2);
        let a = group.heartbeat("a", &[], &all, TIMEOUT, t0);
        group.heartbeat("a", &a, &all, TIMEOUT, t0);
        assert!(group.owns("a", 0) && group.owns("a", 1));
        group.heartbeat("b", &[], &all, TIMEOUT, t0);
        let moved = 1 - group.heartbeat("a", &[0, 1], &all, TIMEOUT, t0)[0];
        assert!(!group.owns("a", moved), "a only drains the moved shard");
        assert!(group.owns("b", moved), "b owns it, though not granted yet");
        assert!(!group.owns("c", moved));
    }

    #[test]
    fn dead_consumer_shards_move_after_the_timeout() {
        let mut group = Assignment::default();
        let t0 = Instant::now();
        let all = shards(6);
        let mut held: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for _ in 0..3 {
            for name in ["a", "b", "c"] {
                let reported = held.get(name).cloned().unwrap_or_default();
                held.insert(name, group.heartbeat(name, &reported, &all, TIMEOUT, t0));
            }
        }
        let (a, b, c) = (held["a"].clone(), held["b"].clone(), held["c"].clone());
        assert_eq!((a.len(), b.len(), c.len()), (2, 2, 2));
        // c dies; a and b keep heartbeating.
        let midway = t0 + TIMEOUT / 2;
        group.heartbeat("a", &a, &all, TIMEOUT, midway);
        group.heartbeat("b", &b, &all, TIMEOUT, midway);
        let later = t0 + TIMEOUT + Duration::from_secs(1);
        let a1 = group.heartbeat("a", &a, &all, TIMEOUT, later);
        assert_eq!(a1.len(), 3);
        let b2 = group.heartbeat("b", &b, &all, TIMEOUT, later);
        let a2 = group.heartbeat("a", &a1, &all, TIMEOUT, later);
        assert_eq!(a2.len() + b2.len(), 6);
        assert!(!group.is_member("c"));
        assert!(a2.iter().all(|s| !b2.contains(s)));
    }

    #[test]
    fn loads_stay_balanced_and_sticky() {
        let mut group = Assignment::default();
        let t0 = Instant::now();
        let all = shards(8);
        let names = ["p1", "p2", "p3"];
        let mut held: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for _ in 0..4 {
            for name in names {
                let reported = held.get(name).cloned().unwrap_or_default();
                held.insert(name, group.heartbeat(name, &reported, &all, TIMEOUT, t0));
            }
        }
        let loads: Vec<usize> = names.iter().map(|n| group.owned_by(n).count()).collect();
        assert_eq!(loads.iter().sum::<usize>(), 8);
        assert!(loads.iter().all(|load| (2..=3).contains(load)), "{loads:?}");
        let before = group.owners.clone();
        for name in names {
            group.heartbeat(name, &held[name], &all, TIMEOUT, t0);
        }
        assert_eq!(group.owners, before, "a stable group does not move shards");
    }
}

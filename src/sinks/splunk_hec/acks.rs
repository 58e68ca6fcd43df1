//! Indexer acknowledgement: requests answered with an `ackId` register it here, and one
//! background task per sink queries `/services/collector/ack` on the sink's channel for every
//! pending id, on an interval (sooner when Splunk warns with code 25). An id reported `true`
//! is forgotten by Splunk, so it is removed and its waiter woken at once. A waiter that gave up
//! (timeout, shutdown) drops its receiver, and its id is no longer queried.
//!
//! Only a HEC answer with code 14 ("ACK is disabled": the token's acknowledgement was turned
//! off) releases the waiters, since a 200 is then final; ids handed out later are awaited
//! again. Any other failed query (a 404 or 503 from a load balancer while Splunk restarts, a
//! network error) releases nothing: the sink turns unhealthy, the failure is counted in
//! `sink_failed_requests`, and the query is repeated after a backoff.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{oneshot, Notify};
use tokio_util::sync::CancellationToken;

use super::health::HealthReporter;
use super::service::{AckQueryError, HecClient};
use crate::common::backoff::Backoff;
use crate::telemetry::metrics::SinkLabels;

/// Ids per acknowledgement query, so one query stays small however many are pending.
const IDS_PER_QUERY: usize = 10_000;

/// Pending acknowledgement ids of one channel and their waiters.
#[derive(Debug, Default)]
pub(crate) struct AckTracker {
    pending: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    poll_now: Notify,
}

/// What the query task needs besides the tracker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AckQueries<'a> {
    /// The collector client.
    pub client: &'a HecClient,
    /// The sink's health entry, unhealthy while queries fail.
    pub health: &'a HealthReporter,
    /// Metric labels of the sink.
    pub labels: &'a SinkLabels,
    /// Delay between queries.
    pub interval: Duration,
    /// Longest delay between queries while they fail.
    pub retry_max: Duration,
    /// Whether the configuration asked for acknowledgement (a code 14 is then an error).
    pub ack_expected: bool,
}

impl AckTracker {
    /// Waits for `ack_id`; the receiver resolves once Splunk reports it indexed (or answers
    /// that acknowledgement is off). A repeated id replaces the older waiter.
    pub fn register(&self, ack_id: u64) -> oneshot::Receiver<()> {
        let (sender, receiver) = oneshot::channel();
        if let Ok(mut pending) = self.pending.lock() {
            pending.insert(ack_id, sender);
        }
        receiver
    }

    /// Asks for a query before the next interval (Splunk's ack store is nearly full).
    pub fn poll_soon(&self) {
        self.poll_now.notify_one();
    }

    /// The ids still awaited, dropping those whose waiter gave up.
    fn awaited_ids(&self) -> Vec<u64> {
        let Ok(mut pending) = self.pending.lock() else {
            return Vec::new();
        };
        pending.retain(|_, waiter| !waiter.is_closed());
        pending.keys().copied().collect()
    }

    fn release(&self, ids: impl IntoIterator<Item = u64>) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        for id in ids {
            if let Some(waiter) = pending.remove(&id) {
                let _ = waiter.send(());
            }
        }
    }

    /// Releases every waiter, under the same lock as [`AckTracker::register`]: an id registered
    /// before is released now, one registered after is queried next time. Returns how many.
    fn release_all(&self) -> usize {
        let Ok(mut pending) = self.pending.lock() else {
            return 0;
        };
        let count = pending.len();
        for (_, waiter) in pending.drain() {
            let _ = waiter.send(());
        }
        count
    }

    /// Queries pending ids every `interval` (after a backoff while queries fail) until
    /// `shutdown`.
    pub async fn run(&self, queries: AckQueries<'_>, sink: &str, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(queries.interval, queries.retry_max);
        let mut wait = queries.interval;
        let mut refused = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
                _ = self.poll_now.notified() => {}
            }
            let ids = self.awaited_ids();
            let mut failure = None;
            for chunk in ids.chunks(IDS_PER_QUERY) {
                match queries.client.query_acks(chunk).await {
                    Ok(indexed) => {
                        refused = false;
                        self.release(indexed);
                    }
                    Err(AckQueryError::Refused(reason)) => {
                        let released = self.release_all();
                        if !refused {
                            refused = true;
                            report_refusal(sink, &reason, released, queries.ack_expected);
                        }
                        break;
                    }
                    Err(AckQueryError::Failed(reason)) => {
                        failure = Some(reason);
                        break;
                    }
                }
            }
            match failure {
                None => {
                    if !ids.is_empty() {
                        queries.health.acks_answered();
                    }
                    backoff.reset();
                    wait = queries.interval;
                }
                Some(reason) => {
                    crate::telemetry::metrics()
                        .sink_failed_requests
                        .get_or_create(queries.labels)
                        .inc();
                    queries.health.acks_failing(&reason);
                    wait = backoff.next_delay();
                    let attempt = backoff.attempts();
                    // The first failure and every tenth after it, so a long outage stays readable.
                    if attempt % 10 == 1 {
                        tracing::error!(sink, %reason, pending = ids.len(), attempt, ?wait, "indexer acknowledgement query failed; pending batches stay unconfirmed, querying again");
                    }
                }
            }
        }
    }
}

/// Logs that the collector answered code 14: acknowledgement is off for the token.
fn report_refusal(sink: &str, reason: &str, released: usize, ack_expected: bool) {
    const MESSAGE: &str = "collector reports indexer acknowledgement off for this token; a 200 is final for the requests awaiting it";
    if ack_expected {
        tracing::error!(sink, %reason, released, "ack = true: {MESSAGE}");
    } else {
        tracing::warn!(sink, %reason, released, "{MESSAGE}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn released_ids_wake_only_their_waiters() {
        let tracker = AckTracker::default();
        let mut first = tracker.register(1);
        let second = tracker.register(2);
        tracker.release([2, 99]);
        assert!(second.await.is_ok());
        assert!(first.try_recv().is_err());
        assert_eq!(tracker.awaited_ids(), [1]);
    }

    #[test]
    fn abandoned_waiters_are_not_queried() {
        let tracker = AckTracker::default();
        let _kept = tracker.register(1);
        drop(tracker.register(2));
        assert_eq!(tracker.awaited_ids(), [1]);
    }

    #[tokio::test]
    async fn a_refusal_releases_every_waiter_and_later_ids_are_awaited_again() {
        let tracker = AckTracker::default();
        let first = tracker.register(1);
        assert_eq!(tracker.release_all(), 1);
        assert!(first.await.is_ok());
        let mut later = tracker.register(2);
        assert!(later.try_recv().is_err(), "a later id waits for its answer");
        assert_eq!(tracker.awaited_ids(), [2]);
    }

    #[test]
    fn ids_registered_during_a_refusal_are_released_or_still_queried() {
        let tracker = AckTracker::default();
        let receivers = std::thread::scope(|scope| {
            let registering = scope.spawn(|| {
                (0..2_000)
                    .map(|id| tracker.register(id))
                    .collect::<Vec<_>>()
            });
            while !registering.is_finished() {
                tracker.release_all();
            }
            registering.join().unwrap()
        });
        let awaited: std::collections::HashSet<u64> = tracker.awaited_ids().into_iter().collect();
        for (id, mut receiver) in (0..).zip(receivers) {
            assert!(
                receiver.try_recv().is_ok() || awaited.contains(&id),
                "id {id} is neither released nor queried"
            );
        }
    }
}

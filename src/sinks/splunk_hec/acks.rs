//! Indexer acknowledgement: requests answered with an `ackId` register it here, and one
//! background task per sink queries `/services/collector/ack` on the sink's channel for every
//! pending id, on an interval (sooner when Splunk warns with code 25). An id reported `true`
//! is forgotten by Splunk, so it is removed and its waiter woken at once. A waiter that gave up
//! (timeout, shutdown) drops its receiver, and its id is no longer queried.
//!
//! When the collector refuses queries (code 14, acknowledgement off for the token), a 200 is
//! final: every waiter is released and later ids are not tracked.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{oneshot, Notify};
use tokio_util::sync::CancellationToken;

use super::service::{AckQueryError, HecClient};

/// Ids per acknowledgement query, so one query stays small however many are pending.
const IDS_PER_QUERY: usize = 10_000;

/// Pending acknowledgement ids of one channel and their waiters.
#[derive(Debug, Default)]
pub(crate) struct AckTracker {
    pending: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    poll_now: Notify,
    unsupported: AtomicBool,
}

impl AckTracker {
    /// Waits for `ack_id`; the receiver resolves once Splunk reports it indexed (or when
    /// acknowledgement turned out to be off). A repeated id replaces the older waiter.
    pub fn register(&self, ack_id: u64) -> oneshot::Receiver<()> {
        let (sender, receiver) = oneshot::channel();
        if self.unsupported.load(Ordering::Acquire) {
            let _ = sender.send(());
        } else if let Ok(mut pending) = self.pending.lock() {
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

    /// Queries pending ids every `interval` until `shutdown`.
    pub async fn run(
        &self,
        client: &HecClient,
        interval: Duration,
        sink: &str,
        shutdown: CancellationToken,
    ) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
                _ = self.poll_now.notified() => {}
            }
            let ids = self.awaited_ids();
            for chunk in ids.chunks(IDS_PER_QUERY) {
                match client.query_acks(chunk).await {
                    Ok(indexed) => self.release(indexed),
                    Err(AckQueryError::Refused(reason)) => {
                        tracing::warn!(
                            sink,
                            %reason,
                            "collector refuses acknowledgement queries; treating every accepted request as final"
                        );
                        self.unsupported.store(true, Ordering::Release);
                        let all = self.awaited_ids();
                        self.release(all);
                        return;
                    }
                    Err(error @ AckQueryError::Failed(_)) => {
                        tracing::warn!(sink, %error, pending = ids.len(), "will query again");
                        break;
                    }
                }
            }
        }
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
}

//! Per-batch delivery tracking. A batch's logs may travel in several requests, and a request
//! may carry logs of several batches (and shards); each request confirms the events it got
//! through, and the batch's ack is settled `delivered()` when its last event is confirmed.
//! Dropping the last reference to an unfinished batch drops its token, which reports a failure.
//!
//! The tracking keeps no log: the batch's logs (and the share of the consumer's in-flight
//! budget their memory holds) go back as soon as every log is encoded into requests, which
//! carry their own copy; only the acknowledgement waits for the collector.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::model::batch::{Batch, ShardKey};
use crate::model::AckToken;
use crate::sinks::SinkBatch;

/// One batch in flight through the sink.
#[derive(Debug)]
pub(crate) struct BatchDelivery {
    /// The shard the batch came from (for dead-letter entries).
    pub shard: ShardKey,
    /// The batch's position among its shard's batches (for dead-letter entries).
    pub sequence: u64,
    unconfirmed: AtomicUsize,
    ack: Mutex<Option<AckToken>>,
}

impl BatchDelivery {
    /// Starts tracking `sink_batch`; an empty batch is delivered at once. Returns the batch's
    /// logs apart from the tracking, for the encoder to drop once it has encoded them.
    pub fn new(sink_batch: SinkBatch) -> (Arc<Batch>, Arc<Self>) {
        let SinkBatch { batch, ack } = sink_batch;
        let events = batch.records.len();
        let ack = if events == 0 {
            ack.delivered();
            None
        } else {
            Some(ack)
        };
        let delivery = Arc::new(Self {
            shard: batch.shard.clone(),
            sequence: batch.sequence,
            unconfirmed: AtomicUsize::new(events),
            ack: Mutex::new(ack),
        });
        (batch, delivery)
    }

    /// Confirms `events` events (accepted, or dead-lettered); settles the ack after the last.
    pub fn confirm(&self, events: usize) {
        let before = self.unconfirmed.fetch_sub(events, Ordering::AcqRel);
        debug_assert!(
            before >= events,
            "more events confirmed than the batch holds"
        );
        if before == events {
            // NOTE: no await happens under this std mutex.
            let token = self.ack.lock().map(|mut ack| ack.take()).ok().flatten();
            if let Some(token) = token {
                token.delivered();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DeliveryStatus, RecordsBuilder};

    fn sink_batch(events: u32) -> (SinkBatch, crate::model::AckReceiver) {
        let mut builder = RecordsBuilder::new();
        for time in 0..events {
            builder = builder.log(time, None, &[]);
        }
        SinkBatch::new("ls", 0, 0, builder.build())
    }

    #[tokio::test]
    async fn settles_after_the_last_event_only() {
        let (batch, mut receiver) = sink_batch(3);
        let (_, delivery) = BatchDelivery::new(batch);
        delivery.confirm(2);
        assert_eq!(receiver.try_outcome(), None);
        delivery.confirm(1);
        assert_eq!(receiver.await, DeliveryStatus::Delivered);
    }

    #[tokio::test]
    async fn dropping_an_unfinished_batch_fails_it() {
        let (batch, receiver) = sink_batch(2);
        let (_, delivery) = BatchDelivery::new(batch);
        delivery.confirm(1);
        drop(delivery);
        assert!(matches!(receiver.await, DeliveryStatus::Failed(_)));
    }

    #[tokio::test]
    async fn empty_batches_are_delivered_at_once() {
        let (batch, receiver) = sink_batch(0);
        let _tracked = BatchDelivery::new(batch);
        assert_eq!(receiver.await, DeliveryStatus::Delivered);
    }
}

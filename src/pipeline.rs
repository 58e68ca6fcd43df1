//! Fan-out: every batch from the consumer goes to every sink; the consumer's ack settles only
//! when all sinks delivered the batch. Sends to a slow sink wait (bounded channels), which
//! slows the pull instead of growing memory.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::model::batch::SinkBatch;
use crate::model::Batch;
use crate::transform::Transform;

/// Batches queued per sink before the pipeline waits.
pub const SINK_QUEUE: usize = 8;

/// Forwards each batch of `input`, transformed when a transform is given, to every sender
/// in `sinks`, splitting its ack so that the consumer learns of delivery only when every
/// sink confirmed. Ends when `input` closes (dropping the sink senders so the sinks finish
/// too) or every sink is gone.
pub async fn fan_out(
    mut input: mpsc::Receiver<SinkBatch>,
    sinks: Vec<mpsc::Sender<SinkBatch>>,
    transform: Option<Arc<Transform>>,
) {
    while let Some(SinkBatch { mut batch, ack }) = input.recv().await {
        if let Some(transform) = &transform {
            batch = transformed(batch, transform.clone()).await;
        }
        let tokens = ack.split(sinks.len());
        for (sink, token) in sinks.iter().zip(tokens) {
            // A sink that stopped drops the batch, and with it the token: the batch fails and
            // its shard keeps its checkpoint before it.
            let _ = sink
                .send(SinkBatch {
                    batch: Arc::clone(&batch),
                    ack: token,
                })
                .await;
        }
    }
}

/// Runs the transform off the async threads (it copies the batch).
async fn transformed(batch: Arc<Batch>, transform: Arc<Transform>) -> Arc<Batch> {
    let original = batch.clone();
    tokio::task::spawn_blocking(move || {
        Arc::new(Batch {
            shard: batch.shard.clone(),
            sequence: batch.sequence,
            cursor: batch.cursor.clone(),
            next_cursor: batch.next_cursor.clone(),
            records: transform.apply(&batch.records),
        })
    })
    .await
    .unwrap_or(original)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ack::{self, DeliveryStatus};
    use crate::model::{Batch, RecordsBuilder, ShardKey};

    fn batch() -> Arc<Batch> {
        Arc::new(Batch {
            shard: ShardKey {
                logstore: "ls".into(),
                shard: 0,
            },
            sequence: 0,
            cursor: "MA==".into(),
            next_cursor: "MQ==".into(),
            records: RecordsBuilder::new().log(1, None, &[("k", "v")]).build(),
        })
    }

    #[tokio::test]
    async fn acks_only_when_every_sink_delivered() {
        let (input_tx, input_rx) = mpsc::channel(1);
        let (a_tx, mut a_rx) = mpsc::channel(1);
        let (b_tx, mut b_rx) = mpsc::channel(1);
        let pipeline = tokio::spawn(fan_out(input_rx, vec![a_tx, b_tx], None));
        let (token, mut receiver) = ack::channel();
        input_tx
            .send(SinkBatch {
                batch: batch(),
                ack: token,
            })
            .await
            .unwrap();
        let a = a_rx.recv().await.unwrap();
        let b = b_rx.recv().await.unwrap();
        assert!(Arc::ptr_eq(&a.batch, &b.batch), "sinks share one batch");
        a.ack.delivered();
        tokio::task::yield_now().await;
        assert_eq!(receiver.try_outcome(), None);
        b.ack.delivered();
        assert_eq!(receiver.await, DeliveryStatus::Delivered);
        drop(input_tx);
        pipeline.await.unwrap();
        assert!(a_rx.recv().await.is_none(), "sinks see the end of input");
    }

    #[tokio::test]
    async fn a_stopped_sink_fails_the_batch() {
        let (input_tx, input_rx) = mpsc::channel(1);
        let (a_tx, a_rx) = mpsc::channel(1);
        drop(a_rx);
        tokio::spawn(fan_out(input_rx, vec![a_tx], None));
        let (token, receiver) = ack::channel();
        input_tx
            .send(SinkBatch {
                batch: batch(),
                ack: token,
            })
            .await
            .unwrap();
        assert!(matches!(receiver.await, DeliveryStatus::Failed(_)));
    }
}

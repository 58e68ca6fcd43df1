//! Fan-out: every batch from the consumer goes to every sink; the consumer's ack settles only
//! when all sinks delivered the batch. Sends to a slow sink wait (bounded channels), which
//! slows the pull instead of growing memory.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::model::batch::SinkBatch;
use crate::model::{Batch, LogRecords};

/// Batches queued per sink before the pipeline waits.
pub const SINK_QUEUE: usize = 8;

/// A transform of a batch's records (in production, [`crate::transform::Transform::apply`]).
pub type RecordsTransform = Arc<dyn Fn(&LogRecords) -> LogRecords + Send + Sync>;

/// Forwards each batch of `input`, transformed when a transform is given, to every sender
/// in `sinks`, splitting its ack so that the consumer learns of delivery only when every
/// sink confirmed. Ends when `input` closes (dropping the sink senders so the sinks finish
/// too) or every sink is gone.
///
/// A batch whose transform fails (panics) fails as a whole and reaches no sink: forwarding
/// the untransformed logs would send fields and logs the transform was meant to remove.
pub async fn fan_out(
    mut input: mpsc::Receiver<SinkBatch>,
    sinks: Vec<mpsc::Sender<SinkBatch>>,
    transform: Option<RecordsTransform>,
) {
    while let Some(SinkBatch { mut batch, ack }) = input.recv().await {
        if let Some(transform) = &transform {
            match transformed(batch, transform.clone()).await {
                Ok(output) => batch = output,
                Err(reason) => {
                    tracing::error!(%reason, "transform failed; the batch is sent nowhere and its shard will retry it");
                    ack.failed(reason);
                    continue;
                }
            }
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

/// Runs the transform off the async threads (it copies the batch); a panic in it is the
/// batch's failure, described for the shard's error report.
async fn transformed(batch: Arc<Batch>, transform: RecordsTransform) -> Result<Arc<Batch>, String> {
    let shard = batch.shard.clone();
    tokio::task::spawn_blocking(move || {
        Arc::new(Batch {
            shard: batch.shard.clone(),
            sequence: batch.sequence,
            cursor: batch.cursor.clone(),
            next_cursor: batch.next_cursor.clone(),
            records: transform(&batch.records),
            budget: batch.budget.clone(),
        })
    })
    .await
    .map_err(|error| format!("transform of a batch of shard {shard} failed: {error}"))
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
            budget: None,
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

    #[tokio::test]
    async fn a_failed_transform_fails_the_batch_and_sends_nothing() {
        let (input_tx, input_rx) = mpsc::channel(1);
        let (sink_tx, mut sink_rx) = mpsc::channel(1);
        let panicking: RecordsTransform = Arc::new(|_: &LogRecords| panic!("transform bug"));
        let pipeline = tokio::spawn(fan_out(input_rx, vec![sink_tx], Some(panicking)));
        let (token, receiver) = ack::channel();
        input_tx
            .send(SinkBatch {
                batch: batch(),
                ack: token,
            })
            .await
            .unwrap();
        match receiver.await {
            DeliveryStatus::Failed(reason) => assert!(reason.contains("transform"), "{reason}"),
            other => panic!("expected a failed batch, got {other:?}"),
        }
        drop(input_tx);
        pipeline.await.unwrap();
        assert!(
            sink_rx.recv().await.is_none(),
            "the untransformed batch must reach no sink"
        );
    }
}

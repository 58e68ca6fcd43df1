//! A batch: the logs of one pull from one shard, with the cursors around them.

use std::fmt;
use std::sync::Arc;

use super::ack::{self, AckReceiver, AckToken};
use super::record::LogRecords;

/// Identifies a shard across logstores: `logstore/shard`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardKey {
    /// Logstore name.
    pub logstore: Arc<str>,
    /// Shard id within the logstore.
    pub shard: u32,
}

impl fmt::Display for ShardKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.logstore, self.shard)
    }
}

/// Logs pulled from one shard in one request.
#[derive(Debug)]
pub struct Batch {
    /// Where the logs came from.
    pub shard: ShardKey,
    /// Position of this batch among the shard's batches in this process (0, 1, 2, ...).
    pub sequence: u64,
    /// Cursor the pull started at.
    pub cursor: String,
    /// Cursor after the last log group of this batch: the checkpoint once it is delivered.
    pub next_cursor: String,
    /// The logs.
    pub records: LogRecords,
    /// What the batch's memory holds while it exists (the consumer's in-flight budget):
    /// released when the last holder drops the batch, not when it is acknowledged. A copy of
    /// the batch (a transform) carries it on. `None` for batches made outside a consumer.
    pub budget: Option<BatchBudget>,
}

/// A share of a budget held by a batch's memory; dropping the last share releases it.
pub type BatchBudget = Arc<dyn std::any::Any + Send + Sync>;

/// What a sink receives: a shared batch and the token it settles once the batch is delivered.
#[derive(Debug)]
pub struct SinkBatch {
    /// The batch, shared by every sink.
    pub batch: Arc<Batch>,
    /// Settle with `delivered()` only after the destination has confirmed every log.
    pub ack: AckToken,
}

impl SinkBatch {
    /// A batch of `records` from `logstore`/`shard` (no cursors), and the receiver that learns
    /// its delivery: for custom sources, tests and benchmarks that feed a sink directly.
    pub fn new(
        logstore: &str,
        shard: u32,
        sequence: u64,
        records: LogRecords,
    ) -> (Self, AckReceiver) {
        let (ack, receiver) = ack::channel();
        let batch = Batch {
            shard: ShardKey {
                logstore: logstore.into(),
                shard,
            },
            sequence,
            cursor: String::new(),
            next_cursor: String::new(),
            records,
            budget: None,
        };
        (
            SinkBatch {
                batch: Arc::new(batch),
                ack,
            },
            receiver,
        )
    }
}

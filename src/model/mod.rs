//! Wire-independent data passed from the consumer to the sinks: log records viewed in place
//! over the pulled buffer, batches with their shard position, and delivery acknowledgements.
//! `consumer` and `sinks` meet here, so neither imports the other.

pub mod ack;
pub mod batch;
pub mod flatten;
pub mod record;

pub use ack::{AckReceiver, AckToken, DeliveryStatus};
pub use batch::{Batch, ShardKey};
pub use record::{FieldSpan, LogRecord, LogRecords, RecordsBuilder, Span};

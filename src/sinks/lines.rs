//! The loop shared by the sinks that write one encoded log per line to a local stream (the
//! console and file sinks): encode the batch, write it, flush, optionally sync, then ack.

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{next_batch, SinkBatch, SinkError};
use crate::encoding::Encoder;
use crate::telemetry::metrics::{metrics, SinkLabels};

/// Makes written bytes durable before a batch is acknowledged (a file's `sync_data`).
pub type Sync<W> = fn(&mut W) -> futures::future::BoxFuture<'_, std::io::Result<()>>;

/// Writes every batch of `input` as lines to `writer` until `input` closes or `shutdown`.
///
/// # Errors
///
/// The first write, flush or sync error; the failing batch is not acknowledged.
pub async fn write_lines<W: AsyncWrite + Unpin>(
    name: &str,
    encoder: &dyn Encoder,
    mut writer: W,
    sync: Option<Sync<W>>,
    mut input: mpsc::Receiver<SinkBatch>,
    shutdown: CancellationToken,
) -> Result<(), SinkError> {
    let labels = SinkLabels::new(name);
    let mut buffer = Vec::with_capacity(1 << 20);
    loop {
        let Some(SinkBatch { batch, ack }) = next_batch(&mut input, &shutdown).await else {
            return Ok(());
        };
        buffer.clear();
        for record in batch.records.iter() {
            encoder.encode(&record, &mut buffer);
            buffer.push(b'\n');
        }
        writer.write_all(&buffer).await?;
        writer.flush().await?;
        if let Some(sync) = sync {
            sync(&mut writer).await?;
        }
        metrics().count_delivered(&labels, batch.records.len(), buffer.len());
        ack.delivered();
    }
}

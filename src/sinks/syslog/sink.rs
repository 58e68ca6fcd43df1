//! The syslog sink's run loop: encode a batch, frame it, write it through a
//! [`Connector`]'s connection, and retry on a new connection until it is confirmed.

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::connection::{Connection, Connector, Protocol};
use crate::common::Backoff;
use crate::encoding::framing::Framing;
use crate::encoding::text::utf8_prefix_len;
use crate::encoding::Encoder;
use crate::model::LogRecords;
use crate::sinks::{next_batch, Sink, SinkBatch, SinkError};
use crate::telemetry::metrics::SinkLabels;
use crate::telemetry::{health, metrics, HealthState};

/// Delivers logs to a syslog receiver. Built by
/// [`SyslogSinkConfig::build`](super::SyslogSinkConfig::build).
pub struct SyslogSink {
    /// Name in logs, metrics and health.
    pub(super) name: String,
    /// Opens connections to the receiver.
    pub(super) connector: Connector,
    /// Stream framing (TCP and TLS).
    pub(super) framing: Framing,
    /// Formats each log.
    pub(super) encoder: Box<dyn Encoder>,
    /// With UDP, the largest datagram; longer messages are cut.
    pub(super) max_datagram: usize,
    /// Time allowed for one write.
    pub(super) write_timeout: Duration,
    /// First and longest delay between attempts.
    pub(super) retry: (Duration, Duration),
}

impl std::fmt::Debug for SyslogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyslogSink")
            .field("name", &self.name)
            .field("address", &self.connector.address)
            .field("protocol", &self.connector.protocol)
            .field("framing", &self.framing)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Sink for SyslogSink {
    fn name(&self) -> &str {
        &self.name
    }

    /// Opens (and politely closes) one connection; for UDP this only resolves and binds.
    async fn healthcheck(&self) -> Result<(), SinkError> {
        let connection = self
            .connector
            .connect()
            .await
            .map_err(|error| SinkError::Unavailable(error.to_string()))?;
        connection.close().await;
        Ok(())
    }

    async fn run(
        self: Box<Self>,
        mut input: mpsc::Receiver<SinkBatch>,
        shutdown: CancellationToken,
    ) -> Result<(), SinkError> {
        let mut delivery = SyslogDelivery::new(*self);
        health().set(&delivery.health_key, HealthState::Starting);
        while let Some(batch) = next_batch(&mut input, &shutdown).await {
            if !delivery.deliver(batch, &shutdown).await {
                break;
            }
        }
        delivery.close().await;
        tracing::info!(sink = %delivery.sink.name, "syslog sink stopped");
        Ok(())
    }
}

/// Framed messages are written in chunks of about this size: small enough to stay in the CPU's
/// caches between encoding and the kernel's copy (a whole batch of several MiB does not, and
/// measured a quarter slower), large enough to keep system calls and receiver wake-ups rare.
const WRITE_CHUNK: usize = 1 << 20;

/// What one attempt at a batch wrote.
#[derive(Debug, Default)]
struct Written {
    /// Bytes handed to the transport.
    bytes: usize,
    /// UDP messages cut to `max_datagram`.
    truncated: u64,
}

/// The state of a running sink.
struct SyslogDelivery {
    sink: SyslogSink,
    connection: Option<Connection>,
    backoff: Backoff,
    labels: SinkLabels,
    health_key: String,
    /// Reused buffer for one encoded UDP datagram (stream messages are encoded in place in
    /// `chunk`).
    message: Vec<u8>,
    /// Reused buffer for framed messages not yet written.
    chunk: Vec<u8>,
}

impl SyslogDelivery {
    fn new(sink: SyslogSink) -> Self {
        let (initial, max) = sink.retry;
        Self {
            labels: SinkLabels::new(&sink.name),
            health_key: format!("sink:{}", sink.name),
            backoff: Backoff::new(initial, max),
            connection: None,
            message: Vec::new(),
            chunk: Vec::with_capacity(WRITE_CHUNK + WRITE_CHUNK / 8),
            sink,
        }
    }

    /// Delivers one batch, retrying until it is confirmed. Returns `false` when shutdown
    /// interrupted it (the batch is then dropped unacknowledged, which reports a failure).
    async fn deliver(&mut self, batch: SinkBatch, shutdown: &CancellationToken) -> bool {
        let records = &batch.batch.records;
        if records.is_empty() {
            batch.ack.delivered();
            return true;
        }
        // UDP resumes a retry after the datagrams already sent; streams resend the batch.
        let mut datagrams_sent = 0;
        let mut written = Written::default();
        loop {
            let result = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return false,
                result = self.attempt(records, &mut datagrams_sent, &mut written) => result,
            };
            match result {
                Ok(()) => {
                    // Counted before the ack, so whoever learns of the delivery sees them.
                    self.record_success(records.len(), &written);
                    batch.ack.delivered();
                    return true;
                }
                Err(reason) => {
                    self.connection = None;
                    metrics()
                        .sink_failed_requests
                        .get_or_create(&self.labels)
                        .inc();
                    tracing::warn!(
                        sink = %self.sink.name,
                        address = %self.sink.connector.address,
                        shard = %batch.batch.shard,
                        logs = records.len(),
                        attempt = self.backoff.attempts() + 1,
                        error = %reason,
                        "syslog delivery failed, will retry"
                    );
                    health().set(&self.health_key, HealthState::Unhealthy(reason));
                    if !self.backoff.wait(shutdown).await {
                        return false;
                    }
                    metrics().sink_retries.get_or_create(&self.labels).inc();
                }
            }
        }
    }

    fn record_success(&mut self, messages: usize, written: &Written) {
        let metrics = metrics();
        metrics.count_delivered(&self.labels, messages, written.bytes);
        if written.truncated > 0 {
            metrics
                .sink_truncated_messages
                .get_or_create(&self.labels)
                .inc_by(written.truncated);
            tracing::debug!(sink = %self.sink.name, truncated = written.truncated, max_datagram = self.sink.max_datagram, "messages cut to the datagram limit");
        }
        self.backoff.reset();
        health().set(&self.health_key, HealthState::Healthy);
    }

    /// One attempt to send the batch (for UDP, the datagrams from `datagrams_sent` on),
    /// encoding as it goes. Reuses the connection when its peer is still there, otherwise
    /// connects anew.
    async fn attempt(
        &mut self,
        records: &LogRecords,
        datagrams_sent: &mut usize,
        written: &mut Written,
    ) -> Result<(), String> {
        if let Some(connection) = &mut self.connection {
            if let Some(reason) = connection.peer_gone().await {
                tracing::info!(sink = %self.sink.name, reason = %reason, "reconnecting to the syslog receiver");
                self.connection = None;
            }
        }
        let connection = match &mut self.connection {
            Some(connection) => connection,
            None => {
                let connection = self
                    .sink
                    .connector
                    .connect()
                    .await
                    .map_err(|error| error.to_string())?;
                tracing::debug!(sink = %self.sink.name, address = %self.sink.connector.address, "connected to the syslog receiver");
                self.connection.insert(connection)
            }
        };
        let sink = &self.sink;
        let (message, chunk) = (&mut self.message, &mut self.chunk);
        // Each write (a datagram, or a chunk of up to WRITE_CHUNK bytes) gets the whole
        // `write_timeout`: a receiver that stops reading is found out within it, however
        // large the batch.
        let (timeout, address) = (sink.write_timeout, sink.connector.address.as_str());
        if sink.connector.protocol == Protocol::Udp {
            for record in records.iter().skip(*datagrams_sent) {
                message.clear();
                sink.encoder.encode(&record, message);
                let keep = utf8_prefix_len(message, sink.max_datagram);
                written.truncated += u64::from(keep < message.len());
                send_within(connection, &message[..keep], timeout, address).await?;
                written.bytes += keep;
                *datagrams_sent += 1;
            }
            return Ok(());
        }
        written.bytes = 0;
        chunk.clear();
        for (index, record) in records.iter().enumerate() {
            sink.framing
                .encode_framed(chunk, |out| sink.encoder.encode(&record, out));
            if chunk.len() >= WRITE_CHUNK || index + 1 == records.len() {
                send_within(connection, chunk, timeout, address).await?;
                written.bytes += chunk.len();
                chunk.clear();
            }
        }
        Ok(())
    }

    async fn close(&mut self) {
        if let Some(connection) = self.connection.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), connection.close()).await;
        }
    }
}

/// Writes `bytes` within `timeout`, describing a failure for the sink's health and log.
async fn send_within(
    connection: &mut Connection,
    bytes: &[u8],
    timeout: Duration,
    address: &str,
) -> Result<(), String> {
    match tokio::time::timeout(timeout, connection.send(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(format!("sending to {address} failed: {error}")),
        Err(_) => Err(format!(
            "sending to {address} timed out after {timeout:?} (the receiver stopped reading)"
        )),
    }
}

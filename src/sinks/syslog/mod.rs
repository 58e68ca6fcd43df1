//! The syslog sink: encodes each batch (RFC 5424, RFC 3164, CEF, LEEF or JSON), frames it for
//! the transport, and delivers it over UDP, TCP or TLS.
//!
//! Delivery is at-least-once on TCP and TLS: a batch is acknowledged only after all its bytes
//! were written and flushed to a connection whose peer had not closed it. On any failure the
//! connection is dropped and the whole batch is sent again on a new one, after a capped,
//! jittered backoff, until it succeeds or the process shuts down. UDP is best effort: a batch
//! is acknowledged once every datagram was handed to the kernel.

pub mod config;
pub mod connection;
pub mod formats;

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use self::config::Protocol;
pub use self::config::SyslogSinkConfig;
use self::connection::{Connection, Connector};
use crate::common::Backoff;
use crate::encoding::framing::Framing;
use crate::encoding::text::utf8_prefix_len;
use crate::encoding::Encoder;
use crate::model::LogRecords;
use crate::sinks::{Sink, SinkBatch, SinkError};
use crate::telemetry::metrics::SinkLabels;
use crate::telemetry::{health, metrics, HealthState};

/// Delivers logs to a syslog receiver. Built by [`SyslogSinkConfig::build`].
pub struct SyslogSink {
    name: String,
    connector: Connector,
    framing: Framing,
    encoder: Box<dyn Encoder>,
    max_datagram: usize,
    write_timeout: Duration,
    retry: (Duration, Duration),
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

impl SyslogSink {
    fn new(
        name: String,
        connector: Connector,
        framing: Framing,
        encoder: Box<dyn Encoder>,
        max_datagram: usize,
        write_timeout: Duration,
        retry: (Duration, Duration),
    ) -> Self {
        Self {
            name,
            connector,
            framing,
            encoder,
            max_datagram,
            write_timeout,
            retry,
        }
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
        let mut delivery = Delivery::new(*self);
        health().set(&delivery.health_key, HealthState::Starting);
        loop {
            let next = tokio::select! {
                biased;
                _ = shutdown.cancelled() => None,
                next = input.recv() => next,
            };
            let Some(batch) = next else { break };
            if !delivery.deliver(batch, &shutdown).await {
                break;
            }
        }
        delivery.close().await;
        tracing::info!(sink = %delivery.sink.name, "syslog sink stopped");
        Ok(())
    }
}

/// A batch encoded and framed for the transport, kept until it is confirmed.
#[derive(Debug, Default)]
struct Outgoing {
    /// The framed messages (stream) or the datagrams back to back (UDP).
    bytes: Vec<u8>,
    /// UDP: the end offset of each datagram in `bytes`.
    datagram_ends: Vec<usize>,
    /// UDP: datagrams already sent (a retry resumes after them).
    datagrams_sent: usize,
    /// Number of logs.
    messages: usize,
}

/// The state of a running sink.
struct Delivery {
    sink: SyslogSink,
    connection: Option<Connection>,
    backoff: Backoff,
    labels: SinkLabels,
    health_key: String,
    /// Reused buffer for one encoded message.
    scratch: Vec<u8>,
    outgoing: Outgoing,
}

impl Delivery {
    fn new(sink: SyslogSink) -> Self {
        let (initial, max) = sink.retry;
        Self {
            labels: SinkLabels::new(&sink.name),
            health_key: format!("sink:{}", sink.name),
            backoff: Backoff::new(initial, max),
            connection: None,
            scratch: Vec::new(),
            outgoing: Outgoing::default(),
            sink,
        }
    }

    /// Delivers one batch, retrying until it is confirmed. Returns `false` when shutdown
    /// interrupted it (the batch is then dropped unacknowledged, which reports a failure).
    async fn deliver(&mut self, batch: SinkBatch, shutdown: &CancellationToken) -> bool {
        if batch.batch.records.is_empty() {
            batch.ack.delivered();
            return true;
        }
        self.encode(&batch.batch.records);
        loop {
            let result = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return false,
                result = self.attempt() => result,
            };
            match result {
                Ok(()) => {
                    batch.ack.delivered();
                    self.record_success();
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
                        logs = self.outgoing.messages,
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

    fn record_success(&mut self) {
        let metrics = metrics();
        metrics
            .sink_delivered_events
            .get_or_create(&self.labels)
            .inc_by(self.outgoing.messages as u64);
        metrics
            .sink_delivered_bytes
            .get_or_create(&self.labels)
            .inc_by(self.outgoing.bytes.len() as u64);
        self.backoff.reset();
        health().set(&self.health_key, HealthState::Healthy);
    }

    /// Encodes every log of the batch into `outgoing`.
    fn encode(&mut self, records: &LogRecords) {
        let outgoing = &mut self.outgoing;
        outgoing.bytes.clear();
        outgoing.datagram_ends.clear();
        outgoing.datagrams_sent = 0;
        outgoing.messages = records.len();
        let mut truncated = 0u64;
        for record in records.iter() {
            self.scratch.clear();
            self.sink.encoder.encode(&record, &mut self.scratch);
            match self.sink.connector.protocol {
                Protocol::Udp => {
                    let keep = utf8_prefix_len(&self.scratch, self.sink.max_datagram);
                    if keep < self.scratch.len() {
                        truncated += 1;
                    }
                    outgoing.bytes.extend_from_slice(&self.scratch[..keep]);
                    outgoing.datagram_ends.push(outgoing.bytes.len());
                }
                Protocol::Tcp | Protocol::Tls => {
                    self.sink.framing.frame(&self.scratch, &mut outgoing.bytes)
                }
            }
        }
        if truncated > 0 {
            metrics()
                .sink_truncated_messages
                .get_or_create(&self.labels)
                .inc_by(truncated);
            tracing::debug!(sink = %self.sink.name, truncated, max_datagram = self.sink.max_datagram, "messages cut to the datagram limit");
        }
    }

    /// One attempt to send the whole pending batch. Reuses the connection when its peer is
    /// still there, otherwise connects anew.
    async fn attempt(&mut self) -> Result<(), String> {
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
        let outgoing = &mut self.outgoing;
        let protocol = self.sink.connector.protocol;
        let write = async {
            if protocol != Protocol::Udp {
                return connection.send(&outgoing.bytes).await;
            }
            while outgoing.datagrams_sent < outgoing.datagram_ends.len() {
                let index = outgoing.datagrams_sent;
                let start = index
                    .checked_sub(1)
                    .map_or(0, |previous| outgoing.datagram_ends[previous]);
                let end = outgoing.datagram_ends[index];
                connection.send(&outgoing.bytes[start..end]).await?;
                outgoing.datagrams_sent += 1;
            }
            Ok(())
        };
        match tokio::time::timeout(self.sink.write_timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(format!(
                "sending to {} failed: {error}",
                self.sink.connector.address
            )),
            Err(_) => Err(format!(
                "sending to {} timed out after {:?}",
                self.sink.connector.address, self.sink.write_timeout
            )),
        }
    }

    async fn close(&mut self) {
        if let Some(connection) = self.connection.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), connection.close()).await;
        }
    }
}

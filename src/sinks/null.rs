//! The `null` sink: acknowledges every batch at once and keeps nothing, like Fluent Bit's
//! `null` output or Vector's `blackhole` sink. It measures the pipeline's ceiling (pull,
//! decode, transform) and, with a `format`, an encoder's cost without any I/O; it also lets a
//! group skip a backlog on purpose. Every log it takes is gone, and its checkpoint moves past.

use async_trait::async_trait;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{next_batch, Sink, SinkBatch, SinkError};
use crate::encoding::config::{EncodingConfig, Format};
use crate::encoding::Encoder;
use crate::telemetry::metrics::{metrics, SinkLabels};

/// Settings of the `null` sink.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NullSinkConfig {
    /// Sink name for logs and metrics, 1 to 64 characters without control characters, unique
    /// among the sinks. Default `null-N`.
    #[serde(default)]
    pub name: Option<String>,
    /// When set, every log is encoded in this format, with the syslog sink's default header
    /// settings, before it is dropped: `rfc5424`, `rfc3164`, `cef`, `leef` or `json`. The
    /// delivered-bytes counter then counts the encoded bytes; without it, the raw bytes of
    /// the batches.
    #[serde(default)]
    pub format: Option<Format>,
}

impl NullSinkConfig {
    /// Builds the sink.
    ///
    /// # Errors
    ///
    /// [`SinkError::Config`] when the format cannot be built.
    pub fn build(&self, name: &str) -> Result<NullSink, SinkError> {
        let encoder = self
            .format
            .map(|format| EncodingConfig::for_format(format).encoder())
            .transpose()
            .map_err(|error| SinkError::Config(error.to_string()))?;
        Ok(NullSink {
            name: self.name.clone().unwrap_or_else(|| name.to_owned()),
            encoder,
        })
    }
}

/// Drops every log, optionally after encoding it.
pub struct NullSink {
    name: String,
    encoder: Option<Box<dyn Encoder>>,
}

#[async_trait]
impl Sink for NullSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn run(
        self: Box<Self>,
        mut input: mpsc::Receiver<SinkBatch>,
        shutdown: CancellationToken,
    ) -> Result<(), SinkError> {
        tracing::warn!(sink = %self.name, "the null sink drops every log it is given; checkpoints move past them");
        let labels = SinkLabels::new(&self.name);
        let mut message = Vec::new();
        while let Some(SinkBatch { batch, ack }) = next_batch(&mut input, &shutdown).await {
            let bytes = match &self.encoder {
                None => batch.records.buffer_len(),
                Some(encoder) => batch
                    .records
                    .iter()
                    .map(|record| {
                        message.clear();
                        encoder.encode(&record, &mut message);
                        message.len()
                    })
                    .sum(),
            };
            metrics().count_delivered(&labels, batch.records.len(), bytes);
            ack.delivered();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ack::DeliveryStatus;
    use crate::model::RecordsBuilder;

    fn delivered(name: &str) -> (u64, u64) {
        let labels = SinkLabels::new(name);
        let metrics = metrics();
        (
            metrics.sink_delivered_events.get_or_create(&labels).get(),
            metrics.sink_delivered_bytes.get_or_create(&labels).get(),
        )
    }

    async fn run_one_batch(config: NullSinkConfig) -> DeliveryStatus {
        let sink = Box::new(config.build("unused").unwrap());
        let (input, receiver) = mpsc::channel(1);
        let running = tokio::spawn(sink.run(receiver, CancellationToken::new()));
        let records = RecordsBuilder::new()
            .log(1_700_000_000, None, &[("user", "alice")])
            .log(1_700_000_001, None, &[("user", "bob")])
            .build();
        let (batch, ack) = SinkBatch::new("audit", 0, 0, records);
        input.send(batch).await.unwrap();
        drop(input);
        running.await.unwrap().unwrap();
        ack.await
    }

    #[tokio::test]
    async fn has_nothing_to_check_at_start() {
        let sink = NullSinkConfig::default().build("null-health").unwrap();
        assert!(sink.healthcheck().await.is_ok());
    }

    #[tokio::test]
    async fn acknowledges_and_counts_raw_bytes_without_a_format() {
        let status = run_one_batch(NullSinkConfig {
            name: Some("null-raw".into()),
            format: None,
        })
        .await;
        assert_eq!(status, DeliveryStatus::Delivered);
        let (events, bytes) = delivered("null-raw");
        assert_eq!(events, 2);
        assert_eq!(bytes, "alicebobuseruser".len() as u64);
    }

    #[tokio::test]
    async fn counts_the_encoded_bytes_with_a_format() {
        let status = run_one_batch(NullSinkConfig {
            name: Some("null-json".into()),
            format: Some(Format::Json),
        })
        .await;
        assert_eq!(status, DeliveryStatus::Delivered);
        let expected = [
            r#"{"__time__":1700000000,"__topic__":"","__source__":"","user":"alice"}"#,
            r#"{"__time__":1700000001,"__topic__":"","__source__":"","user":"bob"}"#,
        ];
        assert_eq!(
            delivered("null-json"),
            (2, expected.iter().map(|line| line.len() as u64).sum())
        );
    }
}

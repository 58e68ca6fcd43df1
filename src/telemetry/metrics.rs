//! The Prometheus metrics of the process. Labels stay low-cardinality: logstore, shard, sink.

use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of per-shard series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ShardLabels {
    /// Logstore name.
    pub logstore: String,
    /// Shard id.
    pub shard: String,
}

/// Labels of per-logstore series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct LogstoreLabels {
    /// Logstore name.
    pub logstore: String,
}

/// Labels of per-component health series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ComponentLabels {
    /// The component, as `/readyz` names it (`sink:NAME`, `consumer:LOGSTORE`).
    pub component: String,
}

/// Labels of per-sink series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct SinkLabels {
    /// The sink's name (from config, or `TYPE-INDEX`).
    pub sink: String,
}

/// Labels of per-sink series split by one more dimension (`reason`, `format`, `class`,
/// `kind`), each a short fixed word.
macro_rules! sink_labels_with {
    ($(#[$doc:meta])* $name:ident, $field:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
        pub struct $name {
            /// The sink's name.
            pub sink: String,
            /// The dimension's value.
            pub $field: &'static str,
        }

        impl $name {
            /// Labels for the sink called `sink` and `value`.
            pub fn new(sink: &str, value: &'static str) -> Self {
                Self {
                    sink: sink.to_owned(),
                    $field: value,
                }
            }
        }
    };
}

sink_labels_with!(
    /// Labels of an archive's seals: why a file was sealed.
    SealLabels,
    reason
);
sink_labels_with!(
    /// Labels of an archive's objects: their format.
    FormatLabels,
    format
);
sink_labels_with!(
    /// Labels of an archive's failed uploads: `transient` or `permanent`.
    FailureLabels,
    class
);
sink_labels_with!(
    /// Labels of an archive's buffered bytes: `memory`.
    BufferLabels,
    kind
);

/// Labels of an archive's per-column series: the column's name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ColumnLabels {
    /// The sink's name.
    pub sink: String,
    /// The column's name, as configured.
    pub column: String,
}

impl SinkLabels {
    /// Labels for the sink called `name`.
    pub fn new(name: &str) -> Self {
        Self {
            sink: name.to_owned(),
        }
    }
}

impl ShardLabels {
    /// Labels for `logstore`/`shard`.
    pub fn new(logstore: &str, shard: u32) -> Self {
        Self {
            logstore: logstore.to_owned(),
            shard: shard.to_string(),
        }
    }
}

/// Every metric the forwarder exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Logs pulled from the log service.
    pub pulled_logs: Family<ShardLabels, Counter>,
    /// Raw (uncompressed) bytes pulled from the log service.
    pub pulled_bytes: Family<ShardLabels, Counter>,
    /// Failed pull attempts (network, server or decode errors).
    pub pull_errors: Family<ShardLabels, Counter>,
    /// Checkpoints written to the log service.
    pub checkpoints_committed: Family<ShardLabels, Counter>,
    /// Seconds between now and the receive time of the last delivered log, per shard.
    pub checkpoint_lag_seconds: Family<ShardLabels, Gauge<f64, AtomicU64>>,
    /// Shards this process currently holds.
    pub held_shards: Family<LogstoreLabels, Gauge>,
    /// Raw bytes pulled but not yet delivered by every sink.
    pub inflight_bytes: Gauge,
    /// Logs a sink delivered (confirmed by the destination).
    pub sink_delivered_events: Family<SinkLabels, Counter>,
    /// Bytes a sink wrote to its destination (after encoding, before compression).
    pub sink_delivered_bytes: Family<SinkLabels, Counter>,
    /// Send attempts that failed (and will be retried).
    pub sink_failed_requests: Family<SinkLabels, Counter>,
    /// Retries of a send.
    pub sink_retries: Family<SinkLabels, Counter>,
    /// Logs the destination rejected permanently and that were written to the dead-letter file.
    pub sink_dead_lettered_events: Family<SinkLabels, Counter>,
    /// Messages cut to fit a size limit (e.g. the UDP datagram maximum).
    pub sink_truncated_messages: Family<SinkLabels, Counter>,
    /// Bytes of encoded requests a sink holds from encoding until the destination confirms
    /// them (the compressed size when requests are compressed).
    pub sink_request_bytes: Family<SinkLabels, Gauge>,
    /// Share of a catching-up shard's starting lag worked off, 0 to 100 (100 once caught up).
    pub catch_up_percent: Family<ShardLabels, Gauge<f64, AtomicU64>>,
    /// Logs per second a catching-up shard delivers.
    pub catch_up_logs_per_second: Family<ShardLabels, Gauge<f64, AtomicU64>>,
    /// Estimated seconds until a catching-up shard has caught up (absent while it does not
    /// gain on the clock).
    pub catch_up_eta_seconds: Family<ShardLabels, Gauge<f64, AtomicU64>>,
    /// Time (Unix seconds) of the newest log every sink delivered, per shard: `time() - it`
    /// is the lag, and keeps growing while nothing is delivered.
    pub delivered_log_timestamp_seconds: Family<ShardLabels, Gauge>,
    /// 1 while a component (sink, consumer) is unhealthy, else 0.
    pub component_unhealthy: Family<ComponentLabels, Gauge>,
    /// Objects an archive stored.
    pub archive_objects: Family<FormatLabels, Counter>,
    /// Encoded bytes before compression of the objects an archive stored.
    pub archive_uncompressed_bytes: Family<SinkLabels, Counter>,
    /// Files an archive sealed, by reason.
    pub archive_seals: Family<SealLabels, Counter>,
    /// Files an archive holds open.
    pub archive_open_files: Family<SinkLabels, Gauge>,
    /// Bytes an archive holds (open files and objects not yet stored).
    pub archive_buffered_bytes: Family<BufferLabels, Gauge>,
    /// Failed upload attempts of an archive, by class.
    pub archive_upload_failures: Family<FailureLabels, Counter>,
    /// Seconds since the oldest file an archive has not stored yet was opened (0 when it
    /// holds none): alert on it before the logstore's TTL.
    pub archive_oldest_unuploaded_seconds: Family<SinkLabels, Gauge<f64, AtomicU64>>,
    /// Values an archive wrote as null because they did not convert to their column's type.
    pub archive_conversion_nulls: Family<ColumnLabels, Counter>,
}

impl Metrics {
    /// Counts `events` logs of `bytes` bytes as delivered by the sink of `labels`.
    pub fn count_delivered(&self, labels: &SinkLabels, events: usize, bytes: usize) {
        self.sink_delivered_events
            .get_or_create(labels)
            .inc_by(events as u64);
        self.sink_delivered_bytes
            .get_or_create(labels)
            .inc_by(bytes as u64);
    }

    fn new() -> Self {
        let mut registry = Registry::with_prefix("siem_forwarder");
        let metrics = Self {
            pulled_logs: Family::default(),
            pulled_bytes: Family::default(),
            pull_errors: Family::default(),
            checkpoints_committed: Family::default(),
            checkpoint_lag_seconds: Family::default(),
            held_shards: Family::default(),
            inflight_bytes: Gauge::default(),
            sink_delivered_events: Family::default(),
            sink_delivered_bytes: Family::default(),
            sink_failed_requests: Family::default(),
            sink_retries: Family::default(),
            sink_dead_lettered_events: Family::default(),
            sink_truncated_messages: Family::default(),
            sink_request_bytes: Family::default(),
            catch_up_percent: Family::default(),
            catch_up_logs_per_second: Family::default(),
            catch_up_eta_seconds: Family::default(),
            delivered_log_timestamp_seconds: Family::default(),
            component_unhealthy: Family::default(),
            archive_objects: Family::default(),
            archive_uncompressed_bytes: Family::default(),
            archive_seals: Family::default(),
            archive_open_files: Family::default(),
            archive_buffered_bytes: Family::default(),
            archive_upload_failures: Family::default(),
            archive_oldest_unuploaded_seconds: Family::default(),
            archive_conversion_nulls: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "pulled_logs",
            "Logs pulled from the log service",
            metrics.pulled_logs.clone(),
        );
        registry.register(
            "pulled_bytes",
            "Raw bytes pulled from the log service",
            metrics.pulled_bytes.clone(),
        );
        registry.register(
            "pull_errors",
            "Failed pull attempts",
            metrics.pull_errors.clone(),
        );
        registry.register(
            "checkpoints_committed",
            "Checkpoints written to the log service",
            metrics.checkpoints_committed.clone(),
        );
        registry.register(
            "checkpoint_lag_seconds",
            "Age of the newest delivered log per shard",
            metrics.checkpoint_lag_seconds.clone(),
        );
        registry.register(
            "held_shards",
            "Shards held by this process",
            metrics.held_shards.clone(),
        );
        registry.register(
            "inflight_bytes",
            "Raw bytes pulled and not yet delivered",
            metrics.inflight_bytes.clone(),
        );
        registry.register(
            "sink_delivered_events",
            "Logs confirmed by the destination",
            metrics.sink_delivered_events.clone(),
        );
        registry.register(
            "sink_delivered_bytes",
            "Encoded bytes sent to the destination",
            metrics.sink_delivered_bytes.clone(),
        );
        registry.register(
            "sink_failed_requests",
            "Failed send attempts",
            metrics.sink_failed_requests.clone(),
        );
        registry.register(
            "sink_retries",
            "Retried sends",
            metrics.sink_retries.clone(),
        );
        registry.register(
            "sink_dead_lettered_events",
            "Logs rejected by the destination and dead-lettered",
            metrics.sink_dead_lettered_events.clone(),
        );
        registry.register(
            "sink_truncated_messages",
            "Messages truncated to fit a size limit",
            metrics.sink_truncated_messages.clone(),
        );
        registry.register(
            "sink_request_bytes",
            "Bytes of encoded requests held until the destination confirms them",
            metrics.sink_request_bytes.clone(),
        );
        registry.register(
            "catch_up_percent",
            "Share of a catching-up shard's starting lag worked off (100 once caught up)",
            metrics.catch_up_percent.clone(),
        );
        registry.register(
            "catch_up_logs_per_second",
            "Logs per second a catching-up shard delivers",
            metrics.catch_up_logs_per_second.clone(),
        );
        registry.register(
            "catch_up_eta_seconds",
            "Estimated seconds until a catching-up shard has caught up",
            metrics.catch_up_eta_seconds.clone(),
        );
        registry.register(
            "delivered_log_timestamp_seconds",
            "Time of the newest log delivered by every sink, per shard",
            metrics.delivered_log_timestamp_seconds.clone(),
        );
        registry.register(
            "component_unhealthy",
            "1 while a component (sink, consumer) is unhealthy",
            metrics.component_unhealthy.clone(),
        );
        registry.register(
            "archive_objects",
            "Objects an archive sink stored",
            metrics.archive_objects.clone(),
        );
        registry.register(
            "archive_uncompressed_bytes",
            "Encoded bytes before compression of the objects an archive sink stored",
            metrics.archive_uncompressed_bytes.clone(),
        );
        registry.register(
            "archive_seals",
            "Files an archive sink sealed, by reason",
            metrics.archive_seals.clone(),
        );
        registry.register(
            "archive_open_files",
            "Files an archive sink holds open",
            metrics.archive_open_files.clone(),
        );
        registry.register(
            "archive_buffered_bytes",
            "Bytes an archive sink holds in open files and objects not yet stored",
            metrics.archive_buffered_bytes.clone(),
        );
        registry.register(
            "archive_upload_failures",
            "Failed upload attempts of an archive sink, by class",
            metrics.archive_upload_failures.clone(),
        );
        registry.register(
            "archive_oldest_unuploaded_seconds",
            "Age of the oldest file an archive sink has not stored yet",
            metrics.archive_oldest_unuploaded_seconds.clone(),
        );
        registry.register(
            "archive_conversion_nulls",
            "Values an archive sink wrote as null because they did not convert to their column's type",
            metrics.archive_conversion_nulls.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_show_up_in_the_text_format() {
        let metrics = metrics();
        metrics
            .sink_delivered_events
            .get_or_create(&SinkLabels::new("unit-test-sink"))
            .inc_by(3);
        let text = metrics.render();
        assert!(
            text.contains("siem_forwarder_sink_delivered_events_total{sink=\"unit-test-sink\"} 3"),
            "{text}"
        );
    }
}

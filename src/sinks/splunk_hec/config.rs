//! Configuration of the Splunk HEC sink: the TOML keys with their defaults, a pure
//! [`SplunkHecSinkConfig::validate`], and [`SplunkHecSinkConfig::build`], which does the IO
//! (TLS files) so that a bad path fails at start rather than at the first request.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::concurrency::ConcurrencyLimiter;
use super::dead_letter::DeadLetterFile;
use super::request::{HecEndpoint, RequestBuilder, RequestLimits};
use super::sender::{DeliveryPolicy, Shared};
use super::service::{ClientSettings, HecClient};
use super::sink::SplunkHecSink;
use crate::common::host::is_loopback_host;
use crate::common::tls::TlsConfig;
use crate::common::units::{ByteSize, HumanDuration};
use crate::common::Secret;
use crate::encoding::field::{renamed_setting, renamed_value, InvalidSetting};
use crate::encoding::hec::{HecEncoder, HecEventFormat, HecMetadata, MetaSource};
use crate::sinks::SinkError;

/// A Splunk HTTP Event Collector destination.
///
/// ```toml
/// url = "https://splunk.example.com:8088"
/// token = "${SPLUNK_HEC_TOKEN}"
/// index = "alicloud"
/// sourcetype = "alicloud:actiontrail"
/// batch = { max_events = 1000, max_bytes = "1MiB", timeout = "1s" }
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplunkHecSinkConfig {
    /// Name of the sink in logs, metrics and health (`sink:NAME`). Default: given by the
    /// caller of [`SplunkHecSinkConfig::build`]. Example: `"splunk"`.
    #[serde(default)]
    pub name: Option<String>,
    /// Base URL of the collector: scheme, host and port. A pasted
    /// `https://host:8088/services/collector` (or `.../event`, `.../raw`) is accepted too.
    /// Example: `"https://splunk.example.com:8088"`.
    pub url: String,
    /// The HEC token, sent as `Authorization: Splunk <token>`; never logged.
    /// Example: `"${SPLUNK_HEC_TOKEN}"`.
    pub token: Secret,
    /// Which collector endpoint receives the logs: `event` (JSON envelope per log, default)
    /// or `raw` (one flattened JSON line per log; metadata as static query parameters only).
    #[serde(default)]
    pub endpoint: HecEndpoint,
    /// Static `index`, or the fallback of `index_field`. Default: the token's default index.
    /// Example: `"alicloud"`.
    #[serde(default)]
    pub index: Option<String>,
    /// Flattened field (`__topic__`, `__tag__:NAME`, a content key) whose non-empty value is
    /// the `index`. Default: none. Example: `"__tag__:splunk_index"`.
    #[serde(default)]
    pub index_field: Option<String>,
    /// Static `sourcetype`, or the fallback of `sourcetype_field`. Default: the token's
    /// default. Example: `"alicloud:actiontrail"`.
    #[serde(default)]
    pub sourcetype: Option<String>,
    /// Field whose non-empty value is the `sourcetype`. Default: none.
    #[serde(default)]
    pub sourcetype_field: Option<String>,
    /// Static `source`, or the fallback of `source_field`. Default: none.
    /// Example: `"alicloud-sls"`.
    #[serde(default)]
    pub source: Option<String>,
    /// Field whose non-empty value is the `source`. Default: none. Example: `"__topic__"`.
    #[serde(default)]
    pub source_field: Option<String>,
    /// Static `host`, or the fallback of `host_field`. Default: none.
    #[serde(default)]
    pub host: Option<String>,
    /// Field whose non-empty value is the `host`. Default: `"__source__"` (the producer's
    /// address); set to `""` to send no host from the logs. The raw endpoint uses the static
    /// `host` only.
    #[serde(default = "default_host_field")]
    pub host_field: String,
    /// Flattened fields sent as index-time `fields` (event endpoint only). Default: none.
    /// Example: `["__topic__", "__tag__:region"]`.
    #[serde(default)]
    pub indexed_fields: Vec<String>,
    /// How the log goes into `event`: `object` (the flattened log as a JSON object, default)
    /// or `string` (its JSON text as a string).
    #[serde(default)]
    pub event_format: EventFormat,
    /// Per topic, fields whose value is JSON text to embed in `event` as JSON (objects and
    /// arrays; invalid JSON stays a string). Default: none.
    /// Example: `{ actiontrail_audit_event = ["event"] }`.
    #[serde(default)]
    pub embed_json: BTreeMap<String, Vec<String>>,
    /// The old name of `embed_json`, still accepted with a deprecation warning; setting both
    /// is an error.
    #[serde(default, deserialize_with = "old_embed_json")]
    pub expand_json: Option<BTreeMap<String, Vec<String>>>,
    /// Request body compression: `gzip` (default) or `none`.
    #[serde(default)]
    pub compression: HecCompression,
    /// Wait for Splunk's indexer acknowledgement before confirming a batch (the token must
    /// have "indexer acknowledgement" on). Default: `false`; acknowledgement is still used
    /// when Splunk answers with an `ackId`.
    #[serde(default)]
    pub ack: bool,
    /// How often pending acknowledgements are queried; must be shorter than `ack_timeout`.
    /// A failed query (anything but an answer or HEC code 14 "ACK is disabled") confirms
    /// nothing: the sink reports unhealthy and queries again after a backoff up to
    /// `retry_max_backoff`. At most 1 hour. Default: `"1s"`.
    #[serde(default = "default_ack_poll_interval")]
    pub ack_poll_interval: HumanDuration,
    /// How long to wait for an acknowledgement before sending the request again (which may
    /// index it twice). At most 24 hours. Default: `"300s"`.
    #[serde(default = "default_ack_timeout")]
    pub ack_timeout: HumanDuration,
    /// Requests sent and awaiting their acknowledgement at most; more wait (back-pressure).
    /// Each keeps its body as sent (gzipped when compression is on) for a resend, so memory
    /// stays near `max_pending_acks` x compressed request size. Throughput with
    /// acknowledgement is about `max_pending_acks` x request size / acknowledgement latency.
    /// 1 to 1,000,000 (Splunk's limit per channel). Default: `64`.
    #[serde(default = "default_max_pending_acks")]
    pub max_pending_acks: usize,
    /// Limits of one request. Default: `{ max_events = 1000, max_bytes = "1MiB", timeout = "1s" }`.
    #[serde(default)]
    pub batch: BatchConfig,
    /// Largest encoded event sent; a larger one is written to the dead-letter file instead
    /// (Splunk's `maxEventSize` defaults to 5 MiB). At most 800 MiB. Default: `"5MiB"`.
    #[serde(default = "default_max_event_bytes")]
    pub max_event_bytes: ByteSize,
    /// HTTP requests in flight at most (several keep-alive connections): the ceiling of the
    /// adaptive `request.concurrency`. 1 to 1024. Default: `32`.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// How requests are sent. Default: `{ concurrency = "adaptive" }`.
    #[serde(default)]
    pub request: RequestConfig,
    /// Time limit of one HTTP request, at most 1 hour. Default: `"30s"`.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: HumanDuration,
    /// First delay before retrying a busy or failed request; later delays double, with
    /// jitter. At most 1 hour. Default: `"1s"`.
    #[serde(default = "default_retry_initial")]
    pub retry_initial_backoff: HumanDuration,
    /// Longest delay between retries (a larger `Retry-After` is capped to it).
    /// At most 24 hours. Default: `"30s"`.
    #[serde(default = "default_retry_max")]
    pub retry_max_backoff: HumanDuration,
    /// Delay between attempts while the sink is paused by a token or configuration error
    /// (codes 1-4, 7, 10, 11, 16), or by a 4xx answer without a HEC code (from a proxy or
    /// load balancer in between). Nothing is dropped while paused. At most 24 hours.
    /// Default: `"60s"`.
    #[serde(default = "default_pause_retry")]
    pub pause_retry_interval: HumanDuration,
    /// JSON-lines file receiving events Splunk rejected as bad data (codes 5, 6, 12, 13, 15, or
    /// 413 for a single event). Default: `"<name>-dead-letter.jsonl"` in the working directory.
    #[serde(default)]
    pub dead_letter_path: Option<PathBuf>,
    /// Accept an `http://` `url` whose host is not the loopback interface. Plain HTTP sends
    /// the token and every log unencrypted over the network; without this key such a URL is a
    /// configuration error. `http://localhost`, `http://127.0.0.1` and `http://[::1]` are
    /// always accepted. Default: `false`.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// TLS settings for `https` URLs. Default: system roots, verification on.
    /// Example: `{ ca_file = "ca.pem", verify = true }`.
    #[serde(default)]
    pub tls: TlsConfig,
}

/// How the log goes into `event`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventFormat {
    /// The flattened log as a JSON object.
    #[default]
    Object,
    /// The flattened log's JSON text as a string.
    String,
}

/// Request body compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HecCompression {
    /// `Content-Encoding: gzip`, fastest level.
    #[default]
    Gzip,
    /// Uncompressed bodies.
    None,
}

/// How requests are sent.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestConfig {
    /// Requests in flight at once: `"adaptive"` (default) starts at 4 and adapts to the
    /// collector: more while its round-trip time holds (a distant collector needs many
    /// requests in flight), half as many after a busy answer (503, 429), a timeout or a rise
    /// in round-trip time; between 1 and `max_in_flight`. A number (1 to 1024) keeps exactly
    /// that many in flight at most, and `max_in_flight` is then not used.
    #[serde(default)]
    pub concurrency: RequestConcurrency,
}

/// `request.concurrency`: `"adaptive"` or a fixed number of requests in flight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RequestConcurrency {
    /// Adapt to the collector's answers, up to `max_in_flight`.
    #[default]
    Adaptive,
    /// At most this many requests at once.
    Fixed(usize),
}

impl<'de> Deserialize<'de> for RequestConcurrency {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RequestConcurrency;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(r#""adaptive" or a number of requests"#)
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Self::Value, E> {
                match value {
                    "adaptive" => Ok(RequestConcurrency::Adaptive),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(value), &self)),
                }
            }
            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Self::Value, E> {
                usize::try_from(value)
                    .map(RequestConcurrency::Fixed)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(value), &self))
            }
            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Self::Value, E> {
                usize::try_from(value)
                    .map(RequestConcurrency::Fixed)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(value), &self))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// When a request is sent: whichever limit is reached first.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Events per request at most, 1 to 1,000,000. Default: `1000`.
    #[serde(default = "default_max_events")]
    pub max_events: usize,
    /// Uncompressed body bytes per request at most (a single larger event is sent alone).
    /// At most 800 MiB (Splunk's largest request body). Default: `"1MiB"`.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: ByteSize,
    /// Longest wait for a request to fill up, at most 1 hour. Default: `"1s"`.
    #[serde(default = "default_batch_timeout")]
    pub timeout: HumanDuration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_events: default_max_events(),
            max_bytes: default_max_bytes(),
            timeout: default_batch_timeout(),
        }
    }
}

fn old_embed_json<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<BTreeMap<String, Vec<String>>>, D::Error> {
    renamed_setting(
        deserializer,
        "expand_json (splunk_hec sink)",
        "embed_json (splunk_hec sink)",
    )
    .map(Some)
}

fn default_host_field() -> String {
    "__source__".to_owned()
}
fn default_ack_poll_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(1))
}
fn default_ack_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(300))
}
fn default_max_pending_acks() -> usize {
    64
}
fn default_max_event_bytes() -> ByteSize {
    ByteSize(5 << 20)
}
fn default_max_in_flight() -> usize {
    32
}
fn default_request_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
fn default_retry_initial() -> HumanDuration {
    HumanDuration(Duration::from_secs(1))
}
fn default_retry_max() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
fn default_pause_retry() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}
fn default_max_events() -> usize {
    1000
}
fn default_max_bytes() -> ByteSize {
    ByteSize(1 << 20)
}
fn default_batch_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(1))
}

/// Largest `batch.max_events`.
const MAX_EVENTS: usize = 1_000_000;
/// Largest `max_in_flight`.
const MAX_IN_FLIGHT: usize = 1024;
/// Largest `max_pending_acks`: Splunk's default limit of pending ids per channel.
const MAX_PENDING_ACKS: usize = 1_000_000;
/// Largest `batch.max_bytes` and `max_event_bytes`: Splunk's `max_content_length` ceiling.
const MAX_REQUEST_BYTES: ByteSize = ByteSize(800 << 20);
/// Longest timeouts and intervals that are meant in seconds or minutes.
const HOUR: Duration = Duration::from_secs(3600);
/// Longest timeouts and delays that may reasonably take hours.
const DAY: Duration = Duration::from_secs(24 * 3600);

impl SplunkHecSinkConfig {
    /// Checks the configuration without touching files or the network.
    ///
    /// # Errors
    ///
    /// Returns the first invalid setting, naming its key.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let url = self.base_url()?;
        if url.scheme() == "http"
            && !self.allow_plaintext
            && !is_loopback_host(url.host_str().unwrap_or_default())
        {
            return Err(InvalidSetting::new(
                "url",
                "http:// to a host other than the loopback interface sends the token and the logs unencrypted; use https:// or set `allow_plaintext = true`",
            ));
        }
        renamed_value(
            self.embed_json.clone(),
            self.expand_json.clone(),
            "expand_json",
            "embed_json",
        )?;
        if self.token.expose().trim().is_empty() {
            return Err(InvalidSetting::new("token", "must not be empty"));
        }
        let counts = [
            ("batch.max_events", self.batch.max_events, MAX_EVENTS),
            ("max_in_flight", self.max_in_flight, MAX_IN_FLIGHT),
            (
                "request.concurrency",
                self.fixed_concurrency(),
                MAX_IN_FLIGHT,
            ),
            ("max_pending_acks", self.max_pending_acks, MAX_PENDING_ACKS),
        ];
        for (key, value, max) in counts {
            if !(1..=max).contains(&value) {
                return Err(InvalidSetting::new(
                    key,
                    format!("must be between 1 and {max}"),
                ));
            }
        }
        let sizes = [
            ("batch.max_bytes", self.batch.max_bytes),
            ("max_event_bytes", self.max_event_bytes),
        ];
        for (key, value) in sizes {
            if !(1..=MAX_REQUEST_BYTES.0).contains(&value.0) {
                return Err(InvalidSetting::new(
                    key,
                    "must be between 1 byte and 800MiB (Splunk's largest request body)",
                ));
            }
        }
        let durations = [
            ("batch.timeout", self.batch.timeout, HOUR),
            ("ack_poll_interval", self.ack_poll_interval, HOUR),
            ("ack_timeout", self.ack_timeout, DAY),
            ("request_timeout", self.request_timeout, HOUR),
            ("retry_initial_backoff", self.retry_initial_backoff, HOUR),
            ("retry_max_backoff", self.retry_max_backoff, DAY),
            ("pause_retry_interval", self.pause_retry_interval, DAY),
        ];
        for (key, value, max) in durations {
            if value.0.is_zero() || value.0 > max {
                return Err(InvalidSetting::new(
                    key,
                    format!(
                        "must be longer than zero and at most {}",
                        HumanDuration(max)
                    ),
                ));
            }
        }
        if self.retry_max_backoff < self.retry_initial_backoff {
            return Err(InvalidSetting::new(
                "retry_max_backoff",
                "must not be shorter than retry_initial_backoff",
            ));
        }
        if self.ack_poll_interval >= self.ack_timeout {
            return Err(InvalidSetting::new(
                "ack_poll_interval",
                "must be shorter than ack_timeout (acknowledgements would never be queried in time, and every request sent again)",
            ));
        }
        if self.endpoint == HecEndpoint::Raw {
            let per_event = [
                ("index_field", self.index_field.is_some()),
                ("sourcetype_field", self.sourcetype_field.is_some()),
                ("source_field", self.source_field.is_some()),
                ("indexed_fields", !self.indexed_fields.is_empty()),
                ("event_format", self.event_format != EventFormat::Object),
            ];
            if let Some((key, _)) = per_event.iter().find(|(_, set)| *set) {
                return Err(InvalidSetting::new(
                    *key,
                    "not supported with endpoint = \"raw\" (raw requests carry static metadata only)",
                ));
            }
        }
        Ok(())
    }

    /// Validates, loads the TLS files and creates the sink. `name` is used when the config
    /// has no `name`.
    ///
    /// # Errors
    ///
    /// Returns [`SinkError::Config`] for an invalid key or an unreadable TLS file.
    pub fn build(&self, name: &str) -> Result<SplunkHecSink, SinkError> {
        let config_error = |error: InvalidSetting| SinkError::Config(error.to_string());
        self.validate().map_err(config_error)?;
        let name = self.name.as_deref().unwrap_or(name);
        let tls = self
            .tls
            .client_config()
            .map_err(|error| SinkError::Config(format!("`tls`: {error}")))?;
        let gzip = self.compression == HecCompression::Gzip;
        let data_query = match self.endpoint {
            HecEndpoint::Event => Vec::new(),
            HecEndpoint::Raw => self.raw_query(),
        };
        let client = HecClient::new(
            ClientSettings {
                base: self.base_url().map_err(config_error)?,
                token: self.token.expose(),
                data_path: self.endpoint.path(),
                data_query,
                gzip,
                max_idle: self.concurrency_ceiling(),
                timeout: self.request_timeout.0,
                server_name: self.tls.server_name.clone(),
            },
            tls,
        )?;
        let dead_letter_path = self
            .dead_letter_path
            .clone()
            .unwrap_or_else(|| format!("{name}-dead-letter.jsonl").into());
        let max_event_bytes = usize::try_from(self.max_event_bytes.0).unwrap_or(usize::MAX);
        let policy = DeliveryPolicy {
            max_event_bytes,
            retry_initial: self.retry_initial_backoff.0,
            retry_max: self.retry_max_backoff.0,
            pause_retry: self.pause_retry_interval.0,
            ack_timeout: self.ack_timeout.0,
        };
        let shared = Shared::new(
            name,
            client,
            DeadLetterFile::new(dead_letter_path),
            match self.request.concurrency {
                RequestConcurrency::Adaptive => ConcurrencyLimiter::adaptive(self.max_in_flight),
                RequestConcurrency::Fixed(limit) => ConcurrencyLimiter::fixed(limit),
            },
            policy,
            gzip,
            self.ack,
        );
        let limits = RequestLimits {
            max_events: self.batch.max_events,
            max_bytes: usize::try_from(self.batch.max_bytes.0).unwrap_or(usize::MAX),
            max_event_bytes,
        };
        Ok(SplunkHecSink::new(
            shared,
            RequestBuilder::new(self.encoder(), self.endpoint, limits),
            self.batch.timeout.0,
            self.max_pending_acks.max(self.concurrency_ceiling()),
            self.ack_poll_interval.0,
        ))
    }

    /// The most requests in flight at once.
    fn concurrency_ceiling(&self) -> usize {
        match self.request.concurrency {
            RequestConcurrency::Adaptive => self.max_in_flight,
            RequestConcurrency::Fixed(limit) => limit,
        }
    }

    /// The fixed `request.concurrency` for validation (1, valid, when adaptive).
    fn fixed_concurrency(&self) -> usize {
        match self.request.concurrency {
            RequestConcurrency::Adaptive => 1,
            RequestConcurrency::Fixed(limit) => limit,
        }
    }

    /// Query parameters of `/raw` requests: the static metadata.
    fn raw_query(&self) -> Vec<(&'static str, String)> {
        [
            ("host", &self.host),
            ("source", &self.source),
            ("sourcetype", &self.sourcetype),
            ("index", &self.index),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.clone().map(|value| (key, value)))
        .collect()
    }

    /// The collector's base URL (`scheme://host:port[/prefix]`), without the
    /// `/services/collector...` part a user may have pasted.
    ///
    /// # Errors
    ///
    /// Fails when `url` is not an `http` or `https` URL with a host.
    pub fn base_url(&self) -> Result<reqwest::Url, InvalidSetting> {
        let mut url = reqwest::Url::parse(self.url.trim())
            .map_err(|error| InvalidSetting::new("url", format!("not a valid URL: {error}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(InvalidSetting::new(
                "url",
                "must be an http:// or https:// URL with a host",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(InvalidSetting::new(
                "url",
                "must not carry a query or fragment",
            ));
        }
        let mut path = url.path().trim_end_matches('/').to_owned();
        for suffix in ["/1.0", "/event", "/raw", "/services/collector"] {
            if let Some(stripped) = path.strip_suffix(suffix) {
                path = stripped.to_owned();
            }
        }
        url.set_path(&format!("{path}/"));
        Ok(url)
    }

    /// The envelope encoder described by this configuration.
    fn encoder(&self) -> HecEncoder {
        let meta = |field: &Option<String>, fallback: &Option<String>| MetaSource {
            field: field.clone().filter(|name| !name.is_empty()),
            fallback: fallback.clone(),
        };
        HecEncoder {
            metadata: HecMetadata {
                host: meta(&Some(self.host_field.clone()), &self.host),
                source: meta(&self.source_field, &self.source),
                sourcetype: meta(&self.sourcetype_field, &self.sourcetype),
                index: meta(&self.index_field, &self.index),
            },
            indexed_fields: self.indexed_fields.clone(),
            event_format: match self.event_format {
                EventFormat::Object => HecEventFormat::Object,
                EventFormat::String => HecEventFormat::Text,
            },
            embed_json: self
                .embed_json
                .iter()
                .chain(self.expand_json.iter().flatten())
                .map(|(topic, fields)| (topic.clone(), fields.clone()))
                .collect::<HashMap<_, _>>(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCUMENTED: &str = r#"
        name = "splunk"
        url = "https://splunk.example.com:8088"
        token = "00000000-0000-0000-0000-000000000000"
        index = "alicloud"
        sourcetype = "alicloud:actiontrail"
        compression = "gzip"
        ack = false
        batch = { max_events = 1000, max_bytes = "1MiB", timeout = "1s" }
        tls = { ca_file = "ca.pem", verify = true }
    "#;

    fn parse(text: &str) -> SplunkHecSinkConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn documented_example_parses_with_defaults() {
        let config = parse(DOCUMENTED);
        config.validate().unwrap();
        assert_eq!(config.batch.max_bytes, ByteSize(1 << 20));
        assert_eq!(config.compression, HecCompression::Gzip);
        assert_eq!(config.host_field, "__source__");
        assert_eq!(config.max_in_flight, 32);
        assert_eq!(config.request.concurrency, RequestConcurrency::Adaptive);
        assert_eq!(config.endpoint, HecEndpoint::Event);
        assert!(!format!("{config:?}").contains("00000000-0000"));
    }

    #[test]
    fn request_concurrency_is_adaptive_or_a_number() {
        let fixed = parse(&format!("{DOCUMENTED}\nrequest = {{ concurrency = 8 }}"));
        assert_eq!(fixed.request.concurrency, RequestConcurrency::Fixed(8));
        assert_eq!(fixed.concurrency_ceiling(), 8);
        let adaptive = parse(&format!(
            "{DOCUMENTED}\nmax_in_flight = 16\nrequest = {{ concurrency = \"adaptive\" }}"
        ));
        assert_eq!(adaptive.request.concurrency, RequestConcurrency::Adaptive);
        assert_eq!(adaptive.concurrency_ceiling(), 16);
        let error = toml::from_str::<SplunkHecSinkConfig>(&format!(
            "{DOCUMENTED}\nrequest = {{ concurrency = \"fast\" }}"
        ))
        .unwrap_err();
        assert!(
            error.to_string().contains("\"adaptive\" or a number"),
            "{error}"
        );
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let error = toml::from_str::<SplunkHecSinkConfig>(&format!("{DOCUMENTED}\nindx = \"x\""))
            .unwrap_err();
        assert!(error.to_string().contains("indx"), "{error}");
    }

    #[test]
    fn pasted_collector_paths_are_reduced_to_the_base() {
        for pasted in [
            "https://h:8088",
            "https://h:8088/",
            "https://h:8088/services/collector",
            "https://h:8088/services/collector/",
            "https://h:8088/services/collector/event",
            "https://h:8088/services/collector/event/1.0",
            "https://h:8088/services/collector/raw",
        ] {
            let mut config = parse(DOCUMENTED);
            config.url = pasted.into();
            assert_eq!(
                config.base_url().unwrap().as_str(),
                "https://h:8088/",
                "{pasted}"
            );
        }
        let mut config = parse(DOCUMENTED);
        config.url = "https://h/splunk/services/collector".into();
        assert_eq!(config.base_url().unwrap().as_str(), "https://h/splunk/");
    }

    #[test]
    fn the_old_name_of_embed_json_still_embeds() {
        let old = parse(&format!("{DOCUMENTED}\nexpand_json = {{ t = [\"a\"] }}"));
        let new = parse(&format!("{DOCUMENTED}\nembed_json = {{ t = [\"a\"] }}"));
        assert_eq!(old.validate(), Ok(()));
        assert_eq!(old.encoder().embed_json, new.encoder().embed_json);
        assert_eq!(old.encoder().embed_json["t"], ["a"]);
    }

    #[test]
    fn validation_names_the_key() {
        let cases: [(&str, &str); 21] = [
            ("url = \"ftp://h\"", "url"),
            ("token = \" \"", "token"),
            ("batch = { max_events = 0 }", "batch.max_events"),
            ("batch = { max_events = 1000001 }", "batch.max_events"),
            ("batch = { max_bytes = 0 }", "batch.max_bytes"),
            ("batch = { max_bytes = \"801MiB\" }", "batch.max_bytes"),
            ("batch = { timeout = \"2h\" }", "batch.timeout"),
            ("max_event_bytes = \"1GiB\"", "max_event_bytes"),
            ("max_in_flight = 0", "max_in_flight"),
            ("max_in_flight = 5000", "max_in_flight"),
            ("request = { concurrency = 0 }", "request.concurrency"),
            ("request = { concurrency = 2000 }", "request.concurrency"),
            ("max_pending_acks = 2000000", "max_pending_acks"),
            ("ack_timeout = \"0s\"", "ack_timeout"),
            ("ack_timeout = \"25h\"", "ack_timeout"),
            ("ack_poll_interval = \"301s\"", "ack_poll_interval"),
            ("request_timeout = \"61m\"", "request_timeout"),
            ("retry_max_backoff = \"25h\"", "retry_max_backoff"),
            ("pause_retry_interval = \"100000h\"", "pause_retry_interval"),
            (
                "endpoint = \"raw\"\nindexed_fields = [\"a\"]",
                "indexed_fields",
            ),
            (
                "embed_json = { t = [\"a\"] }\nexpand_json = { t = [\"b\"] }",
                "expand_json",
            ),
        ];
        for (line, key) in cases {
            let base: String = DOCUMENTED
                .lines()
                .filter(|existing| {
                    let name = line.split([' ', '=']).next().unwrap_or_default();
                    !existing.trim_start().starts_with(&format!("{name} "))
                })
                .collect::<Vec<_>>()
                .join("\n");
            let error = parse(&format!("{base}\n{line}")).validate().unwrap_err();
            assert_eq!(error.key, key, "{line}");
        }
    }

    #[test]
    fn plain_http_needs_allow_plaintext_unless_the_host_is_loopback() {
        let with = |url: &str, extra: &str| {
            let mut config = parse(&format!("{DOCUMENTED}\n{extra}"));
            config.url = url.into();
            config.validate()
        };
        let error = with("http://splunk.example.com:8088", "").unwrap_err();
        assert_eq!(error.key, "url");
        assert!(
            error.to_string().contains("allow_plaintext = true"),
            "{error}"
        );
        assert!(with("http://10.0.0.5:8088", "").is_err());
        with("http://splunk.example.com:8088", "allow_plaintext = true").unwrap();
        for loopback in [
            "http://localhost:8088",
            "http://127.0.0.1:8088",
            "http://127.3.2.1:8088",
            "http://[::1]:8088",
        ] {
            with(loopback, "").unwrap_or_else(|error| panic!("{loopback}: {error}"));
        }
        with("https://splunk.example.com:8088", "").unwrap();
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let mut config = parse(DOCUMENTED);
        config.tls.ca_file = None;
        let sink = config.build("splunk").unwrap();
        let debug = format!("{config:?} {sink:?}");
        assert!(debug.contains("Sensitive") || debug.contains("redacted"));
        assert!(!debug.contains("00000000-0000"), "{debug}");
    }

    #[test]
    fn missing_tls_file_fails_the_build() {
        let mut config = parse(DOCUMENTED);
        config.tls.ca_file = Some("/nonexistent/ca.pem".into());
        let error = config.build("splunk").err().unwrap();
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    }
}

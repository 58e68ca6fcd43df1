//! # siem-forwarder
//!
//! Moves logs from Alibaba Cloud Log Service (SLS) consumer groups into on-premises SIEMs:
//! Splunk HTTP Event Collector and syslog receivers (QRadar, ArcSight, rsyslog).
//!
//! # Layout
//!
//! Modules may use only modules listed above them; `consumer` and `sinks` never import each
//! other.
//!
//! - [`common`]: shutdown, backoff, secrets, TLS setup, the Unix clock,
//!   duration and size units.
//! - [`telemetry`]: tracing, metrics, health and the status endpoint.
//! - [`model`]: log records viewed over the pulled buffer, batches, delivery acks.
//! - [`encoding`]: pure encoders (RFC 5424, RFC 3164, CEF, LEEF, JSON, key=value, HEC).
//! - [`transform`]: the `[transform]` section (drop, JSON to dotted keys, include/exclude,
//!   rename).
//! - [`source`]: the log-service wire protocol and client, one file per API operation in
//!   `source::api`.
//! - [`producer`]: log groups to write: the synthetic audit-log generator and the JSON-lines
//!   input of `put` (also used by the quickstart, the benchmark and the tests).
//! - [`local_server`]: the embedded SLS-compatible server, mirroring the client: `routes`
//!   (request reading, authentication, the dispatch table), `api/*` (one file per API
//!   operation, as in `source::api`), `state/*` (the project and logstore registry, a
//!   logstore's shards, its consumer groups), `store` (shard files), `assignment`, `sts`,
//!   `deny` and `throttle`.
//! - [`consumer`]: the consumer-group runtime (heartbeat, shard tasks, checkpoints).
//! - [`sinks`]: the [`sinks::Sink`] trait and the destinations.
//! - [`pipeline`]: fan-out of each batch to every sink, acknowledged when all delivered.
//! - [`config`]: the configuration file.
//! - [`app`]: wiring and shutdown order of `run`.
//! - [`group_status`]: the consumer group as the log service sees it (`status --config`).
//! - [`top`]: the live terminal view (`top`).
//! - [`cli`]: the command line.
//!
//! A sink is cut the same way in each of its folders: `mod.rs` lists the parts, `config.rs`
//! holds the TOML keys, validates them and builds the sink, and the runtime files (`sink.rs`
//! with the run loop, the transport or HTTP client, ...) never import `config.rs`. Encoders
//! are chosen in [`encoding::config`], not in the sinks.
//!
//! # Where does X happen
//!
//! - **Retry classification**: log-service calls in [`source::ClientError::is_retryable`]
//!   (and [`source::error::ApiError::is_retryable`]); Splunk HEC answers by HEC code in
//!   `sinks::splunk_hec::response` (`classify` returns a `Verdict`: accepted, retry, pause,
//!   dead-letter or split); the syslog sink retries every failure on a new connection
//!   (`sinks::syslog::sink`).
//! - **Health keys** (`/status`, [`telemetry::health`](mod@telemetry::health)):
//!   `consumer:LOGSTORE` by the heartbeat ([`consumer::heartbeat`]); `sink:NAME` by [`app`]
//!   (start-up health check) and by the sinks themselves (`sinks::syslog::sink`,
//!   `sinks::splunk_hec::health`).
//! - **Queue sizes**: batches between the consumer and the fan-out, `CONSUMER_QUEUE` in
//!   [`app`]; batches per sink, [`pipeline::SINK_QUEUE`]; unacknowledged batches per shard,
//!   `consumer.max_inflight_batches` (4, or 1024 with an archive sink).
//! - **Memory bound**: pulled bytes still in memory, `consumer.max_inflight_bytes`: a pull
//!   is decoded only once the budget has room for it (`consumer::shard`), and a batch's share
//!   ([`model::Batch::budget`]) is released when the last sink drops it, not at its ack. Every
//!   sink drops a batch once it has encoded or written it: Splunk HEC once its logs are in
//!   requests (which hold their compressed copy until confirmed, bounded by `max_in_flight`
//!   and `max_pending_acks`), syslog once written, file, console and null sinks as they write,
//!   the archive once encoded into its files, which its own `buffer.max_memory` bounds (it
//!   stops taking batches over it), so files can grow past the consumer's budget.
//! - **Drain**: the shutdown order in [`app`]; each shard's drain (no more pulls, in-flight
//!   batches until `consumer.drain_timeout`, then a final checkpoint) in [`consumer::shard`].
//!   Sinks that hold batches on purpose learn of it through [`sinks::SinkContext`]: its
//!   `drain` token fires when shutdown starts, and `releases` names each shard that starts
//!   draining.
//! - **Checkpoint rule**: a shard's checkpoint moves only past a contiguous run of batches
//!   that every sink delivered, oldest first ([`consumer::checkpoint`]); a sink acknowledges a
//!   batch only once its destination confirmed every log of it ([`sinks::Sink::run`]), and
//!   [`pipeline::fan_out`] settles the consumer's ack when all sinks did.

pub mod common;
pub mod telemetry;

pub mod model;

pub mod encoding;
pub mod transform;

pub mod source;

pub mod producer;

pub mod local_server;

pub mod consumer;
pub mod sinks;

pub mod pipeline;

pub mod config;

pub mod app;

pub mod group_status;
pub mod top;

pub mod cli;

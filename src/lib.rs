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
//! - [`common`]: allocator settings, shutdown, backoff, secrets, TLS setup, duration and size
//!   units.
//! - [`telemetry`]: tracing, metrics, health and the status endpoint.
//! - [`model`]: log records viewed over the pulled buffer, batches, delivery acks.
//! - [`encoding`]: pure encoders (RFC 5424, RFC 3164, CEF, LEEF, JSON, key=value, HEC).
//! - [`transform`]: the `[transform]` section (drop, JSON expansion, include/exclude, rename).
//! - [`source`]: the log-service wire protocol and client.
//! - [`local_server`]: the embedded SLS-compatible server.
//! - [`consumer`]: the consumer-group runtime (heartbeat, shard tasks, checkpoints).
//! - [`sinks`]: the [`sinks::Sink`] trait and the destinations.
//! - [`pipeline`]: fan-out of each batch to every sink, acknowledged when all delivered.
//! - [`config`]: the configuration file.
//! - [`app`]: wiring and shutdown order of `run`.
//! - [`group_status`]: the consumer group as the log service sees it (`status --config`).
//! - [`top`]: the live terminal view (`top`).
//! - [`cli`]: the command line.

pub mod common;
pub mod telemetry;

pub mod model;

pub mod encoding;
pub mod transform;

pub mod source;

pub mod local_server;

pub mod consumer;
pub mod sinks;

pub mod pipeline;

pub mod config;

pub mod app;

pub mod group_status;
pub mod top;

pub mod cli;

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
//! - [`common`]: shutdown, backoff, secrets, TLS setup, duration and size units.
//! - [`telemetry`]: tracing, metrics, health and the status endpoint.
//! - [`model`]: log records viewed over the pulled buffer, batches, delivery acks.
//! - [`encoding`]: pure encoders (RFC 5424, RFC 3164, CEF, LEEF, JSON, key=value, HEC).
//! - [`source`]: the log-service wire protocol and client.
//! - [`local_server`]: the embedded SLS-compatible server.
//! - [`sinks`]: the [`sinks::Sink`] trait and the destinations.

pub mod common;
pub mod consumer;
pub mod encoding;
pub mod local_server;
pub mod model;
pub mod sinks;
pub mod source;
pub mod telemetry;

pub mod pipeline;

pub mod config;

pub mod app;
pub mod cli;

//! Splunk HTTP Event Collector sink.
//!
//! Logs of incoming batches are encoded into requests (back-to-back JSON envelopes, or raw
//! lines) that are cut by event count, bytes or time. A request is encoded, and compressed,
//! only once the previous one got its delivery slot, so a slow collector holds back encoding,
//! requests waiting for a slot or an answer hold only their compressed payload, and memory
//! stays near the in-flight and pending limits (gauge `sink_request_bytes`). Several requests are in flight at once on
//! keep-alive connections, gzipped by default, each with the token and the sink's channel GUID.
//! A batch's ack is settled `delivered()` only when every event of it was accepted (and
//! acknowledged by the indexers when Splunk hands out `ackId`s) or dead-lettered as bad data.
//! On shutdown, unconfirmed batches are dropped unacknowledged.
//!
//! Delivery is at-least-once: a retry after a timeout or a missing acknowledgement may index
//! an event twice. With acknowledgement on, events accepted before an `invalid-event-number`
//! are taken as indexed without an acknowledgement (Splunk gives none for that request).
//!
//! - [`config`]: the TOML keys, validation and `build` (the only file that reads the config).
//! - `sink`: [`SplunkHecSink`], the run loop that encodes and dispatches requests.
//! - `request`: request bodies and per-event bookkeeping; `delivery`: per-batch acks.
//! - `response`: answer classification by HEC code; `service`: the HTTP client.
//! - `sender`: one request's delivery with retries, pauses and splits; `concurrency`: how many
//!   requests are in flight (fixed, or adaptive to the collector's round-trip time).
//! - `acks`: indexer-acknowledgement polling; `health`: health and pause reporting.
//! - `dead_letter`: the file of rejected events.

mod acks;
mod concurrency;
pub mod config;
mod dead_letter;
mod delivery;
mod health;
mod request;
mod response;
mod sender;
mod service;
mod sink;

pub use config::SplunkHecSinkConfig;
pub use request::HecEndpoint;
pub use sink::SplunkHecSink;

//! The syslog sink: encodes each batch (RFC 5424, RFC 3164, CEF, LEEF or JSON), frames it for
//! the transport, and delivers it over UDP, TCP or TLS.
//!
//! Delivery is at-least-once on TCP and TLS: a batch is acknowledged only after all its bytes
//! were written and flushed to a connection whose peer had not closed it. On any failure the
//! connection is dropped and the whole batch is sent again on a new one, after a capped,
//! jittered backoff, until it succeeds or the process shuts down. UDP is best effort: a batch
//! is acknowledged once every datagram was handed to the kernel.
//!
//! - [`config`]: the TOML keys, validation and `build` (the only file that reads the config).
//! - [`connection`]: the transport (UDP, TCP, TLS): connecting, peer checks, writes.
//! - `sink`: [`SyslogSink`], the delivery loop with its retries.

pub mod config;
pub mod connection;
mod sink;

pub use self::config::SyslogSinkConfig;
pub use self::connection::Protocol;
pub use self::sink::SyslogSink;

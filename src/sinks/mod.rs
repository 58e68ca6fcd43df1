//! Destinations. Every sink implements [`Sink`]: it owns its loop, takes [`SinkBatch`]es from
//! a bounded channel (so a slow destination slows the pull), and settles each batch's ack only
//! after the destination confirmed every log of it.
//!
//! A sink with more than one file is a folder cut one way, as [`syslog`] and [`splunk_hec`]
//! are: `mod.rs` documents the sink and lists its parts; `config.rs` holds the TOML keys,
//! validates them (returning [`crate::encoding::field::InvalidSetting`]) and builds the sink;
//! `sink.rs` holds the [`Sink`] implementation and its run loop; further runtime files (the
//! transport, the HTTP client, request building) never import `config.rs`. A sink that
//! formats logs describes its encoding with [`crate::encoding::config::EncodingConfig`].

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use crate::model::batch::SinkBatch;

pub mod console;
pub mod file;
pub mod lines;
pub mod null;
pub mod splunk_hec;
pub mod syslog;

/// Why a sink stopped or failed its health check.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The sink's configuration cannot work (bad TLS file, bad URL, ...).
    #[error("invalid sink configuration: {0}")]
    Config(String),
    /// The destination permanently refused data; the sink stopped rather than drop logs.
    #[error("destination rejected data permanently: {0}")]
    Rejected(String),
    /// The destination could not be reached or answered with an error.
    #[error("destination unavailable: {0}")]
    Unavailable(String),
    /// A local I/O error (e.g. the file sink's disk).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// The next batch of `input`, or `None` once `input` closed or `shutdown` fired (checked
/// first: batches still queued then stay unacknowledged, so their shards keep their
/// checkpoints before them).
pub async fn next_batch(
    input: &mut mpsc::Receiver<SinkBatch>,
    shutdown: &CancellationToken,
) -> Option<SinkBatch> {
    tokio::select! {
        biased;
        () = shutdown.cancelled() => None,
        next = input.recv() => next,
    }
}

/// A destination for log batches. `Sync` because `healthcheck` borrows the sink across an
/// `await` in a `Send` future (every sink already met this through its own `healthcheck`).
#[async_trait]
pub trait Sink: Send + Sync {
    /// The sink's name, used in logs, metrics and health.
    fn name(&self) -> &str;

    /// Checks that the destination is reachable and accepts our credentials, without sending
    /// logs. Called at start-up; failures are reported but do not stop the process. The
    /// default passes: for sinks with nothing to check (console, null).
    async fn healthcheck(&self) -> Result<(), SinkError> {
        Ok(())
    }

    /// Delivers batches until `input` closes (every batch handed over) or `shutdown` fires.
    /// Settles each batch's ack with `delivered()` only after the destination confirmed it.
    /// On shutdown, batches not yet confirmed are dropped unacknowledged, so their shards keep
    /// their checkpoints before them.
    async fn run(
        self: Box<Self>,
        input: mpsc::Receiver<SinkBatch>,
        shutdown: CancellationToken,
    ) -> Result<(), SinkError>;
}

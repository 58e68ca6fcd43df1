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
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

pub use crate::model::batch::SinkBatch;
use crate::model::ShardKey;

pub mod console;
pub mod file;
pub mod lines;
pub mod null;
pub mod object_storage;
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

/// What a sink learns at build time about the consumer feeding it. Sinks that deliver each
/// batch as it comes (HEC, syslog, file) ignore it; a sink that holds batches on purpose (the
/// archive's open files) uses it to deliver them before the consumer gives up on them.
#[derive(Debug, Clone)]
pub struct SinkContext {
    /// The log-service project.
    pub project: String,
    /// The logstores consumed.
    pub logstores: Vec<String>,
    /// The consumer group.
    pub consumer_group: String,
    /// The consumer's effective unacknowledged batches per shard: a shard pulls no more while
    /// this many of its batches wait for the sinks.
    pub max_inflight_batches: usize,
    /// Fires when shutdown starts, before the consumer's drain deadline: held batches must be
    /// delivered now.
    pub drain: CancellationToken,
    /// Announces each shard that starts draining (handed to another consumer, or shutdown):
    /// its held batches must be delivered now.
    pub releases: broadcast::Sender<ShardKey>,
}

impl SinkContext {
    /// A context for a sink not fed by a consumer (checks, tests, custom sources): no project
    /// or group, no per-shard limit, and a drain that fires only when cancelled.
    pub fn standalone() -> Self {
        Self {
            project: String::new(),
            logstores: Vec::new(),
            consumer_group: String::new(),
            max_inflight_batches: usize::MAX,
            drain: CancellationToken::new(),
            releases: broadcast::channel(RELEASES_QUEUE).0,
        }
    }
}

/// Shard releases queued per listening sink; a sink that falls further behind misses some
/// and seals those shards on their other limits.
pub const RELEASES_QUEUE: usize = 256;

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

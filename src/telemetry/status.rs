//! The live state of every shard this process holds, for `/status` and
//! `siem-forwarder status`. Shard tasks publish into a process-wide board.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use serde::Serialize;

/// Where a shard task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardPhase {
    /// Looking up the checkpoint or start position.
    Initializing,
    /// Pulling and delivering.
    Consuming,
    /// Taken away or shutting down: finishing in-flight batches.
    Draining,
}

/// One shard as `/status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ShardStatus {
    /// Logstore.
    pub logstore: String,
    /// Shard id.
    pub shard: u32,
    /// The consumer (this process) holding it.
    pub consumer: String,
    /// Life-cycle phase.
    pub phase: ShardPhase,
    /// Last checkpoint written to the log service.
    pub checkpoint: String,
    /// Logs delivered by every sink since the shard was taken.
    pub delivered_logs: u64,
    /// Seconds between now and the newest delivered log's time.
    pub lag_seconds: Option<f64>,
    /// Delivered logs per second since the shard was taken.
    pub logs_per_second: f64,
    #[serde(skip)]
    since: Option<Instant>,
}

impl ShardStatus {
    /// A shard that was just taken.
    pub fn new(logstore: &str, shard: u32, consumer: &str) -> Self {
        Self {
            logstore: logstore.to_owned(),
            shard,
            consumer: consumer.to_owned(),
            phase: ShardPhase::Initializing,
            checkpoint: String::new(),
            delivered_logs: 0,
            lag_seconds: None,
            logs_per_second: 0.0,
            since: Some(Instant::now()),
        }
    }
}

/// Every held shard, keyed by `(logstore, shard)`.
#[derive(Debug, Default)]
pub struct StatusBoard {
    shards: Mutex<BTreeMap<(String, u32), ShardStatus>>,
}

impl StatusBoard {
    /// Adds or replaces a shard.
    pub fn insert(&self, status: ShardStatus) {
        let key = (status.logstore.clone(), status.shard);
        self.shards.lock().expect("status lock").insert(key, status);
    }

    /// Changes a held shard's entry.
    pub fn update(&self, logstore: &str, shard: u32, change: impl FnOnce(&mut ShardStatus)) {
        let mut shards = self.shards.lock().expect("status lock");
        if let Some(status) = shards.get_mut(&(logstore.to_owned(), shard)) {
            change(status);
            if let Some(since) = status.since {
                let seconds = since.elapsed().as_secs_f64().max(0.001);
                status.logs_per_second = status.delivered_logs as f64 / seconds;
            }
        }
    }

    /// Forgets a released shard.
    pub fn remove(&self, logstore: &str, shard: u32) {
        self.shards
            .lock()
            .expect("status lock")
            .remove(&(logstore.to_owned(), shard));
    }

    /// Every held shard, ordered by logstore and shard.
    pub fn snapshot(&self) -> Vec<ShardStatus> {
        self.shards
            .lock()
            .expect("status lock")
            .values()
            .cloned()
            .collect()
    }
}

/// The process-wide status board.
pub fn status_board() -> &'static StatusBoard {
    static BOARD: OnceLock<StatusBoard> = OnceLock::new();
    BOARD.get_or_init(StatusBoard::default)
}

/// What sinks publish about themselves for `/status` (`sinks.NAME`), as JSON each sink shapes.
#[derive(Debug, Default)]
pub struct SinkBoard {
    sinks: Mutex<BTreeMap<String, serde_json::Value>>,
}

impl SinkBoard {
    /// Replaces what the sink called `name` shows.
    pub fn set(&self, name: &str, value: serde_json::Value) {
        self.sinks
            .lock()
            .expect("sink board lock")
            .insert(name.to_owned(), value);
    }

    /// Every sink's entry, by name.
    pub fn snapshot(&self) -> BTreeMap<String, serde_json::Value> {
        self.sinks.lock().expect("sink board lock").clone()
    }
}

/// The process-wide board of sink states.
pub fn sink_board() -> &'static SinkBoard {
    static BOARD: OnceLock<SinkBoard> = OnceLock::new();
    BOARD.get_or_init(SinkBoard::default)
}

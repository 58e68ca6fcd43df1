//! The group-wide view behind `siem-forwarder status --config`: every shard of every
//! configured logstore, who holds it, how far its checkpoint trails the newest data, read
//! from the log service itself (so shards of stopped processes and of other consumer
//! libraries in the same group show up too).
//!
//! - [`gather`]: the log-service calls (ListShards, ListConsumerGroup, GetCheckPoint,
//!   GetCursor, GetCursorTime) and the lag arithmetic.
//! - [`render`]: the table `status` prints.
//!
//! The JSON form of [`GroupStatus`] is a stable document: fields are only ever added.

pub mod gather;
pub mod render;

use serde::Serialize;

pub use gather::{gather, GatherError, GatherOptions};
pub use render::render;

use crate::config::ForwarderConfig;
use crate::source::config::LOCAL_ENDPOINT;
use crate::source::Client;

/// Reads the group of a forwarder configuration, with the credentials `run` uses.
#[derive(Debug)]
pub struct GroupView {
    client: Client,
    project: String,
    logstores: Vec<String>,
    options: GatherOptions,
}

impl GroupView {
    /// The view of `config`'s consumer group over its logstores.
    ///
    /// # Errors
    ///
    /// Unusable source settings, and `endpoint = "local"`: the embedded service lives inside
    /// a running `run` process, whose `/status` answers instead.
    pub fn from_config(config: &ForwarderConfig) -> anyhow::Result<Self> {
        let source = config
            .source
            .resolve(|name| std::env::var(name).ok())
            .map_err(anyhow::Error::msg)?;
        if source.endpoint == LOCAL_ENDPOINT {
            anyhow::bail!(
                "the configuration uses the embedded log service (endpoint = \"{LOCAL_ENDPOINT}\"), \
                 which runs inside the forwarder: ask the running process with `status --url`"
            );
        }
        Ok(Self {
            client: crate::app::source_client(&source, &source.endpoint)?,
            options: GatherOptions {
                group: config.consumer.group.clone(),
                start: config.consumer.start,
                count_log_groups: GatherOptions::endpoint_counts_log_groups(&source.endpoint),
            },
            project: source.project,
            logstores: source.logstores,
        })
    }

    /// Reads the group now.
    ///
    /// # Errors
    ///
    /// [`GatherError`] naming the logstore and the call that failed.
    pub async fn read(&self) -> Result<GroupStatus, GatherError> {
        let now = chrono::Utc::now().timestamp();
        gather(
            &self.client,
            &self.project,
            &self.logstores,
            &self.options,
            now,
        )
        .await
    }
}

/// The whole group, as one `status` run saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupStatus {
    /// Project.
    pub project: String,
    /// Consumer group.
    pub group: String,
    /// When the view was taken, Unix seconds.
    pub observed_at: i64,
    /// One entry per configured logstore, in configuration order.
    pub logstores: Vec<LogstoreStatus>,
}

/// One logstore of the group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogstoreStatus {
    /// Logstore name.
    pub logstore: String,
    /// False when the consumer group does not exist on this logstore (yet): nothing was
    /// ever consumed, every shard reads from the configured start position.
    pub group_exists: bool,
    /// The group's heartbeat timeout in seconds, when the group exists.
    pub group_timeout_seconds: Option<u32>,
    /// Totals over the shards.
    pub summary: Summary,
    /// Every shard, by id.
    pub shards: Vec<ShardRow>,
}

/// The summary line of a logstore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Number of shards (readwrite and readonly).
    pub shards: usize,
    /// Distinct consumers named by the shards' checkpoints.
    pub consumers: usize,
    /// Shards no consumer ever checkpointed.
    pub unowned_shards: usize,
    /// The largest lag in seconds over the shards (`None` when no shard's lag is known).
    pub worst_lag_seconds: Option<i64>,
    /// Log groups not yet consumed, over all shards (`None` when the service's cursors do
    /// not count log groups, as on the real log service).
    pub backlog_log_groups: Option<u64>,
}

/// One shard of a logstore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShardRow {
    /// Shard id.
    pub shard: u32,
    /// `readwrite` or `readonly`.
    pub state: String,
    /// The consumer that wrote the shard's checkpoint last (the log service records it with
    /// the checkpoint); `None` when no consumer ever did.
    pub consumer: Option<String>,
    /// The stored checkpoint cursor; `None` when there is none.
    pub checkpoint: Option<String>,
    /// When the checkpoint was written, Unix seconds.
    pub checkpoint_updated_at: Option<i64>,
    /// Receive time of the last log group before the checkpoint (the newest consumed data),
    /// Unix seconds.
    pub checkpoint_data_time: Option<i64>,
    /// Receive time of the shard's newest log group, Unix seconds (`None` for an empty
    /// shard).
    pub newest_data_time: Option<i64>,
    /// How much older than the newest data the oldest unconsumed log group is, in seconds;
    /// 0 when everything is consumed.
    pub lag_seconds: Option<i64>,
    /// Log groups between the consume position and the end of the shard (`None` where the
    /// service's cursors do not count log groups).
    pub lag_log_groups: Option<u64>,
}

impl Summary {
    /// The totals of `shards`.
    pub fn of(shards: &[ShardRow]) -> Self {
        let consumers: std::collections::BTreeSet<&str> = shards
            .iter()
            .filter_map(|shard| shard.consumer.as_deref())
            .collect();
        let backlog = shards
            .iter()
            .map(|shard| shard.lag_log_groups)
            .try_fold(0u64, |total, lag| Some(total + lag?));
        Self {
            shards: shards.len(),
            consumers: consumers.len(),
            unowned_shards: shards
                .iter()
                .filter(|shard| shard.consumer.is_none())
                .count(),
            worst_lag_seconds: shards.iter().filter_map(|shard| shard.lag_seconds).max(),
            backlog_log_groups: if shards.is_empty() { Some(0) } else { backlog },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(shard: u32, consumer: Option<&str>, lag: Option<i64>, groups: Option<u64>) -> ShardRow {
        ShardRow {
            shard,
            state: "readwrite".into(),
            consumer: consumer.map(str::to_owned),
            checkpoint: None,
            checkpoint_updated_at: None,
            checkpoint_data_time: None,
            newest_data_time: None,
            lag_seconds: lag,
            lag_log_groups: groups,
        }
    }

    #[test]
    fn the_summary_counts_distinct_consumers_and_unknown_backlog_stays_unknown() {
        let shards = [
            row(0, Some("a"), Some(3), Some(10)),
            row(1, Some("a"), Some(9), Some(5)),
            row(2, Some("py"), None, Some(0)),
            row(3, None, Some(1), Some(1)),
        ];
        let summary = Summary::of(&shards);
        assert_eq!(summary.shards, 4);
        assert_eq!(summary.consumers, 2);
        assert_eq!(summary.unowned_shards, 1);
        assert_eq!(summary.worst_lag_seconds, Some(9));
        assert_eq!(summary.backlog_log_groups, Some(16));
        let real_service = [row(0, Some("a"), Some(3), None)];
        assert_eq!(Summary::of(&real_service).backlog_log_groups, None);
    }
}

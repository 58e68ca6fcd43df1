//! The `[consumer]` section: consumer group, start position, intervals and memory budget.

use std::time::Duration;

use serde::Deserialize;

use crate::common::units::{ByteSize, HumanDuration};

/// Where a shard without a checkpoint starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPosition {
    /// The oldest retained log.
    Begin,
    /// Only logs written from now on.
    End,
    /// The first log received at or after this Unix time (seconds).
    Time(i64),
}

impl<'de> Deserialize<'de> for StartPosition {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.as_str() {
            "begin" => Ok(Self::Begin),
            "end" => Ok(Self::End),
            other => chrono::DateTime::parse_from_rfc3339(other)
                .map(|time| Self::Time(time.timestamp()))
                .map_err(|_| {
                    serde::de::Error::custom(format!(
                        "invalid start `{other}`: expected begin, end or an RFC 3339 time such as 2024-05-01T00:00:00Z"
                    ))
                }),
        }
    }
}

/// How this process takes part in the consumer group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerConfig {
    /// Consumer group name, shared by every forwarder process that splits the shards.
    pub group: String,
    /// This consumer's name, unique in the group. Default `{group}-{hostname}-{pid}`.
    #[serde(default)]
    pub name: Option<String>,
    /// Where shards without a checkpoint start: `begin`, `end` or an RFC 3339 time.
    /// Checkpoints always win. Default `begin`.
    #[serde(default = "default_start")]
    pub start: StartPosition,
    /// Time between heartbeats. Default `20s`; tests use `1s`.
    #[serde(default = "default_heartbeat_interval")]
    pub heartbeat_interval: HumanDuration,
    /// Heartbeat silence after which the server gives a consumer's shards to others; set on
    /// the group when this process creates or updates it. Default 3 × `heartbeat_interval`.
    #[serde(default)]
    pub group_timeout: Option<HumanDuration>,
    /// Wait before pulling again from a shard that had no new logs. Default `1s`.
    #[serde(default = "default_fetch_interval")]
    pub fetch_interval: HumanDuration,
    /// Largest number of log groups per pull (1 to 1000). Default 1000.
    #[serde(default = "default_max_fetch_groups")]
    pub max_fetch_groups: u32,
    /// How often delivered positions are written to the server as checkpoints; they are
    /// also written when a shard is released and on shutdown. Default `5s`.
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval: HumanDuration,
    /// Raw bytes pulled but not yet delivered, across all shards of the process; pulling
    /// waits while the budget is used up. Default `64MiB`.
    #[serde(default = "default_inflight_budget")]
    pub max_inflight_bytes: ByteSize,
    /// Batches in flight per shard. Default 4.
    #[serde(default = "default_max_inflight_batches")]
    pub max_inflight_batches: usize,
    /// On shutdown or when a shard is taken away: how long to wait for in-flight batches to
    /// be delivered before giving up on them (they are then redelivered by the next owner).
    /// Default `20s`.
    #[serde(default = "default_drain_timeout")]
    pub drain_timeout: HumanDuration,
    /// Consume split and merged shards in order (parents before children). Default false.
    #[serde(default)]
    pub ordered: bool,
}

fn default_start() -> StartPosition {
    StartPosition::Begin
}
fn default_heartbeat_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(20))
}
fn default_fetch_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(1))
}
fn default_max_fetch_groups() -> u32 {
    1000
}
fn default_checkpoint_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(5))
}
fn default_inflight_budget() -> ByteSize {
    ByteSize(64 << 20)
}
fn default_max_inflight_batches() -> usize {
    4
}
fn default_drain_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(20))
}

impl ConsumerConfig {
    /// A configuration with every default, for `group`.
    pub fn new(group: &str) -> Self {
        Self {
            group: group.to_owned(),
            name: None,
            start: default_start(),
            heartbeat_interval: default_heartbeat_interval(),
            group_timeout: None,
            fetch_interval: default_fetch_interval(),
            max_fetch_groups: default_max_fetch_groups(),
            checkpoint_interval: default_checkpoint_interval(),
            max_inflight_bytes: default_inflight_budget(),
            max_inflight_batches: default_max_inflight_batches(),
            drain_timeout: default_drain_timeout(),
            ordered: false,
        }
    }

    /// Checks values without connecting.
    ///
    /// # Errors
    ///
    /// A message naming the offending key.
    pub fn validate(&self) -> Result<(), String> {
        if self.group.is_empty() {
            return Err("consumer.group must not be empty".into());
        }
        if !(1..=1000).contains(&self.max_fetch_groups) {
            return Err("consumer.max_fetch_groups must be between 1 and 1000".into());
        }
        if self.heartbeat_interval.0 < Duration::from_millis(100) {
            return Err("consumer.heartbeat_interval must be at least 100ms".into());
        }
        if self.group_timeout().as_secs() < 1 || self.group_timeout() <= self.heartbeat_interval.0 {
            return Err(
                "consumer.group_timeout must be at least 1s and longer than heartbeat_interval"
                    .into(),
            );
        }
        if self.max_inflight_bytes.0 < 1 << 20 {
            return Err("consumer.max_inflight_bytes must be at least 1MiB".into());
        }
        if self.max_inflight_batches == 0 {
            return Err("consumer.max_inflight_batches must be at least 1".into());
        }
        Ok(())
    }

    /// The group timeout: configured, or 3 × the heartbeat interval (at least one second).
    pub fn group_timeout(&self) -> Duration {
        self.group_timeout
            .map(|timeout| timeout.0)
            .unwrap_or(self.heartbeat_interval.0 * 3)
            .max(Duration::from_secs(1))
    }

    /// The consumer name: configured, or `{group}-{hostname}-{pid}`.
    pub fn consumer_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|name| name.trim().to_owned())
                .filter(|name| !name.is_empty())
                .or_else(|| std::env::var("HOSTNAME").ok())
                .unwrap_or_else(|| "localhost".to_owned());
            format!("{}-{}-{}", self.group, host, std::process::id())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_defaults_and_start_positions() {
        let config: ConsumerConfig =
            toml::from_str("group = \"g\"\nstart = \"2024-05-01T00:00:00Z\"").unwrap();
        assert_eq!(config.start, StartPosition::Time(1_714_521_600));
        assert_eq!(config.group_timeout(), Duration::from_secs(60));
        assert!(config.validate().is_ok());
        assert!(config.consumer_name().starts_with("g-"));
        let error =
            toml::from_str::<ConsumerConfig>("group = \"g\"\nstart = \"yesterday\"").unwrap_err();
        assert!(
            error.to_string().contains("invalid start `yesterday`"),
            "{error}"
        );
        let error = toml::from_str::<ConsumerConfig>("group = \"g\"\ncolour = 1").unwrap_err();
        assert!(error.to_string().contains("colour"), "{error}");
    }
}

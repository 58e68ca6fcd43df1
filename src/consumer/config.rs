//! The `[consumer]` section: consumer group, start position, intervals and memory budget.

use std::time::Duration;

use serde::Deserialize;

use crate::common::units::{check_within, ByteSize, HumanDuration};
use crate::encoding::field::InvalidSetting;

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
    /// Consumer group name, shared by every forwarder process that splits the shards: 1 to
    /// 128 ASCII letters, digits, `-` and `_`.
    pub group: String,
    /// This consumer's name, unique in the group and stable across restarts: 1 to 128
    /// printable ASCII characters without spaces. Default `{group}-{hostname}-{slot}` (see
    /// [`super::name`]).
    #[serde(default)]
    pub name: Option<String>,
    /// Where shards without a checkpoint start: `begin`, `end` or an RFC 3339 time (not
    /// before 1970). Checkpoints always win. Default `begin`.
    #[serde(default = "default_start")]
    pub start: StartPosition,
    /// Time between heartbeats, `100ms` to `5m`. Default `20s`; tests use `1s`.
    #[serde(default = "default_heartbeat_interval")]
    pub heartbeat_interval: HumanDuration,
    /// Heartbeat silence after which the server gives a consumer's shards to others; set on
    /// the group when this process creates or updates it. `1s` to `1h`, counted in whole
    /// seconds, and at least 2 × `heartbeat_interval`. Default 3 × `heartbeat_interval` (at
    /// least `1s`).
    #[serde(default)]
    pub group_timeout: Option<HumanDuration>,
    /// Wait before pulling again from a shard that had no new logs, `100ms` to `5m`.
    /// Default `1s`.
    #[serde(default = "default_fetch_interval")]
    pub fetch_interval: HumanDuration,
    /// Largest number of log groups per pull, 1 to 1000. Default 1000.
    #[serde(default = "default_max_fetch_groups")]
    pub max_fetch_groups: u32,
    /// How often delivered positions are written to the server as checkpoints; they are
    /// also written when a shard is released and on shutdown. `100ms` to `10m`. Default `5s`.
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval: HumanDuration,
    /// Raw (decompressed) bytes of pulled logs in memory, across all shards of the process:
    /// a pulled batch is decoded only once the budget has room for it, and its bytes return
    /// when every sink has encoded or written it (Splunk HEC into requests, which then hold
    /// only their compressed copy until confirmed; syslog onto the connection; the archive
    /// into its files); pulling waits while the budget is used up. Raise it when the log
    /// service is far away (a pull holds its share during its round trip). `1MiB` to `4GiB`.
    /// Default `16MiB`.
    #[serde(default = "default_inflight_budget")]
    pub max_inflight_bytes: ByteSize,
    /// Unacknowledged batches per shard, 1 to 1024. Default 4, or 1024 when an
    /// `object_storage` sink is configured (its open files hold batches for up to `max_age`;
    /// see [`ConsumerConfig::with_archive_default`]).
    #[serde(default)]
    pub max_inflight_batches: Option<usize>,
    /// On shutdown or when a shard is taken away: the time within which the drain ends. In-flight
    /// batches get until three quarters of it (at most 5 s kept back), then the final commit and
    /// the release heartbeat; batches not delivered by then are redelivered by the next owner.
    /// `1s` to `30m`. Default `20s`.
    #[serde(default = "default_drain_timeout")]
    pub drain_timeout: HumanDuration,
    /// Consume split and merged shards in order (parents before children). Default false.
    #[serde(default)]
    pub ordered: bool,
}

/// Longest consumer group and consumer name.
const MAX_NAME: usize = 128;
/// Bounds of the timers, sizes and counts (see the field docs).
const HEARTBEAT_INTERVAL: (HumanDuration, HumanDuration) =
    (HumanDuration::millis(100), HumanDuration::secs(300));
const GROUP_TIMEOUT: (HumanDuration, HumanDuration) =
    (HumanDuration::secs(1), HumanDuration::secs(3600));
const FETCH_INTERVAL: (HumanDuration, HumanDuration) =
    (HumanDuration::millis(100), HumanDuration::secs(300));
const CHECKPOINT_INTERVAL: (HumanDuration, HumanDuration) =
    (HumanDuration::millis(100), HumanDuration::secs(600));
const DRAIN_TIMEOUT: (HumanDuration, HumanDuration) =
    (HumanDuration::secs(1), HumanDuration::secs(1800));
const MAX_FETCH_GROUPS: (u32, u32) = (1, 1000);
const MAX_INFLIGHT_BYTES: (ByteSize, ByteSize) = (ByteSize::mib(1), ByteSize::mib(4096));
const MAX_INFLIGHT_BATCHES: (usize, usize) = (1, 1024);
/// Unacknowledged batches per shard by default.
pub const DEFAULT_INFLIGHT_BATCHES: usize = 4;
/// Unacknowledged batches per shard by default when an archive sink is configured: each costs
/// a checkpoint entry and a small future, under 1 KB.
pub const ARCHIVE_INFLIGHT_BATCHES: usize = 1024;

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
    ByteSize(16 << 20)
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
            max_inflight_batches: None,
            drain_timeout: default_drain_timeout(),
            ordered: false,
        }
    }

    /// The effective unacknowledged batches per shard: the setting, else the default.
    pub fn inflight_batches(&self) -> usize {
        self.max_inflight_batches
            .unwrap_or(DEFAULT_INFLIGHT_BATCHES)
    }

    /// This configuration with `max_inflight_batches` set to its default for a process with
    /// (`archive`) or without an `object_storage` sink, unless it is set.
    #[must_use]
    pub fn with_archive_default(mut self, archive: bool) -> Self {
        if archive {
            self.max_inflight_batches
                .get_or_insert(ARCHIVE_INFLIGHT_BATCHES);
        }
        self
    }

    /// Checks every value against its bounds, without connecting.
    ///
    /// # Errors
    ///
    /// The offending key (`consumer.checkpoint_interval`, ...) and the allowed range.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let invalid =
            |key: &str, reason: String| InvalidSetting::new(format!("consumer.{key}"), reason);
        let group_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if !(1..=MAX_NAME).contains(&self.group.len()) || !self.group.chars().all(group_char) {
            return Err(invalid(
                "group",
                format!("must be 1 to {MAX_NAME} ASCII letters, digits, `-` and `_`"),
            ));
        }
        if let Some(name) = &self.name {
            if !(1..=MAX_NAME).contains(&name.len()) || !name.chars().all(|c| c.is_ascii_graphic())
            {
                return Err(invalid(
                    "name",
                    format!("must be 1 to {MAX_NAME} printable ASCII characters without spaces"),
                ));
            }
        }
        if matches!(self.start, StartPosition::Time(time) if time < 0) {
            return Err(invalid("start", "must not be before 1970".into()));
        }
        let durations = [
            (
                "heartbeat_interval",
                Some(self.heartbeat_interval),
                HEARTBEAT_INTERVAL,
            ),
            ("group_timeout", self.group_timeout, GROUP_TIMEOUT),
            ("fetch_interval", Some(self.fetch_interval), FETCH_INTERVAL),
            (
                "checkpoint_interval",
                Some(self.checkpoint_interval),
                CHECKPOINT_INTERVAL,
            ),
            ("drain_timeout", Some(self.drain_timeout), DRAIN_TIMEOUT),
        ];
        for (key, value, (min, max)) in durations {
            if let Some(value) = value {
                value
                    .check_within(min, max)
                    .map_err(|reason| invalid(key, reason))?;
            }
        }
        let (min, max) = MAX_FETCH_GROUPS;
        check_within(self.max_fetch_groups, min, max)
            .map_err(|reason| invalid("max_fetch_groups", reason))?;
        let (min, max) = MAX_INFLIGHT_BYTES;
        self.max_inflight_bytes
            .check_within(min, max)
            .map_err(|reason| invalid("max_inflight_bytes", reason))?;
        if let Some(batches) = self.max_inflight_batches {
            let (min, max) = MAX_INFLIGHT_BATCHES;
            check_within(batches, min, max)
                .map_err(|reason| invalid("max_inflight_batches", reason))?;
        }
        // The service counts whole seconds.
        let sent_timeout = Duration::from_secs(self.group_timeout().as_secs());
        if sent_timeout < self.heartbeat_interval.0 * 2 {
            return Err(invalid(
                "group_timeout",
                format!(
                    "must be at least 2 × heartbeat_interval ({}) in whole seconds, got {}",
                    HumanDuration(self.heartbeat_interval.0 * 2),
                    HumanDuration(sent_timeout)
                ),
            ));
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

    /// How long one heartbeat or checkpoint commit may take (one attempt, no retries inside
    /// the call): half the heartbeat interval, so that a lost answer still leaves time for
    /// the next heartbeat well within the group timeout.
    pub fn call_timeout(&self) -> Duration {
        self.heartbeat_interval.0 / 2
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
        let error =
            toml::from_str::<ConsumerConfig>("group = \"g\"\nstart = \"yesterday\"").unwrap_err();
        assert!(
            error.to_string().contains("invalid start `yesterday`"),
            "{error}"
        );
        let error = toml::from_str::<ConsumerConfig>("group = \"g\"\ncolour = 1").unwrap_err();
        assert!(error.to_string().contains("colour"), "{error}");
    }

    /// The key `validate` rejects `extra` (lines added to a minimal section) with.
    fn rejected_key(extra: &str) -> String {
        let config: ConsumerConfig = toml::from_str(&format!("group = \"g\"\n{extra}")).unwrap();
        config.validate().unwrap_err().key
    }

    #[test]
    fn every_value_is_bounded() {
        for (extra, key) in [
            (
                "checkpoint_interval = \"0s\"",
                "consumer.checkpoint_interval",
            ),
            (
                "checkpoint_interval = \"11m\"",
                "consumer.checkpoint_interval",
            ),
            ("fetch_interval = \"0s\"", "consumer.fetch_interval"),
            (
                "heartbeat_interval = \"50ms\"",
                "consumer.heartbeat_interval",
            ),
            ("heartbeat_interval = \"1h\"", "consumer.heartbeat_interval"),
            ("group_timeout = \"2h\"", "consumer.group_timeout"),
            (
                "heartbeat_interval = \"20s\"\ngroup_timeout = \"30s\"",
                "consumer.group_timeout",
            ),
            (
                "heartbeat_interval = \"1s\"\ngroup_timeout = \"1999ms\"",
                "consumer.group_timeout",
            ),
            ("drain_timeout = \"0s\"", "consumer.drain_timeout"),
            (
                "max_inflight_bytes = \"5GiB\"",
                "consumer.max_inflight_bytes",
            ),
            ("max_inflight_batches = 0", "consumer.max_inflight_batches"),
            (
                "max_inflight_batches = 1025",
                "consumer.max_inflight_batches",
            ),
            ("max_fetch_groups = 1001", "consumer.max_fetch_groups"),
            ("name = \"a b\"", "consumer.name"),
            ("start = \"1969-12-31T00:00:00Z\"", "consumer.start"),
        ] {
            assert_eq!(rejected_key(extra), key, "{extra}");
        }
        let config: ConsumerConfig = toml::from_str("group = \"a/b\"").unwrap();
        assert_eq!(config.validate().unwrap_err().key, "consumer.group");
    }

    #[test]
    fn boundary_values_are_accepted() {
        let config: ConsumerConfig = toml::from_str(
            "group = \"G_1-x\"\nheartbeat_interval = \"100ms\"\nfetch_interval = \"100ms\"\n\
             checkpoint_interval = \"10m\"\ndrain_timeout = \"1s\"\nmax_inflight_bytes = \"4GiB\"\n\
             max_inflight_batches = 1024\nmax_fetch_groups = 1",
        )
        .unwrap();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.group_timeout(), Duration::from_secs(1));
        let config: ConsumerConfig =
            toml::from_str("group = \"g\"\nheartbeat_interval = \"5m\"\ngroup_timeout = \"10m\"")
                .unwrap();
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn an_archive_raises_the_default_unacknowledged_batches_but_not_a_setting() {
        let default = ConsumerConfig::new("g");
        assert_eq!(default.inflight_batches(), DEFAULT_INFLIGHT_BATCHES);
        assert_eq!(
            default
                .clone()
                .with_archive_default(false)
                .inflight_batches(),
            DEFAULT_INFLIGHT_BATCHES
        );
        assert_eq!(
            default.with_archive_default(true).inflight_batches(),
            ARCHIVE_INFLIGHT_BATCHES
        );
        let mut set = ConsumerConfig::new("g");
        set.max_inflight_batches = Some(8);
        assert_eq!(set.with_archive_default(true).inflight_batches(), 8);
    }
}

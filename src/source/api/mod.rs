//! The log-service API operations, one file each, as methods on [`super::Client`].

pub mod checkpoint;
pub mod consumer_group;
pub mod cursor;
pub mod heartbeat;
pub mod pull_logs;
pub mod put_logs;
pub mod shards;

/// Percent-free path segment check: names are lowercase letters, digits, `-` and `_`.
pub(crate) fn logstore_path(logstore: &str) -> String {
    format!("/logstores/{logstore}")
}

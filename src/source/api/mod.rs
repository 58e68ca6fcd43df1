//! The log-service API operations, one file each, as methods on [`super::Client`].

pub mod checkpoint;
pub mod consumer_group;
pub mod cursor;
pub mod heartbeat;
pub mod pull_logs;
pub mod put_logs;
pub mod shards;

/// Reads a JSON `null` (or, with `#[serde(default)]`, a missing key) as the type's default,
/// as the official SDKs read the log service's answers: Go unmarshals `null` to the zero
/// value, Python and Java check for `None`/`null`.
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + serde::Deserialize<'de>,
{
    use serde::Deserialize;
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// The request path of `logstore`, formatted as is: nothing is checked or percent-encoded
/// here. Logstores of the configuration passed [`crate::source::config::check_name`]
/// (lowercase letters, digits, `-` and `_`, which need no encoding).
pub(crate) fn logstore_path(logstore: &str) -> String {
    format!("/logstores/{logstore}")
}

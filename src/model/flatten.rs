//! The flattened form of a log: the key/value pairs the official SDKs hand to processors.
//!
//! Order: `__time__`, `__time_ns_part__` (when set), `__topic__`, `__source__`,
//! `__tag__:NAME` per tag, then the contents. A content whose key equals one of the reserved
//! names replaces that reserved entry (later keys win, as in the SDKs), so every key appears
//! once unless the contents themselves repeat a key.

use std::fmt;

use super::record::LogRecord;

/// The key of the log's time in Unix seconds.
pub const TIME_KEY: &str = "__time__";
/// The key of the nanosecond part of the time.
pub const TIME_NS_KEY: &str = "__time_ns_part__";
/// The key of the log group's topic.
pub const TOPIC_KEY: &str = "__topic__";
/// The key of the log group's source.
pub const SOURCE_KEY: &str = "__source__";
/// The prefix of a tag's key.
pub const TAG_PREFIX: &str = "__tag__:";
/// Every key text the flattened form adds to the log's own keys and values.
pub const ADDED_KEY_TEXTS: [&str; 5] = [TIME_KEY, TIME_NS_KEY, TOPIC_KEY, SOURCE_KEY, TAG_PREFIX];

/// A flattened key; tags carry the `__tag__:` prefix without allocating it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlatKey<'a> {
    /// A reserved name (`__time__`, `__topic__`, ...) or a content key.
    Plain(&'a str),
    /// A tag, displayed as `__tag__:NAME`.
    Tag(&'a str),
}

impl FlatKey<'_> {
    /// Writes the key's text into `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            FlatKey::Plain(name) => out.extend_from_slice(name.as_bytes()),
            FlatKey::Tag(name) => {
                out.extend_from_slice(TAG_PREFIX.as_bytes());
                out.extend_from_slice(name.as_bytes());
            }
        }
    }

    /// True when this key is the flattened name `name`.
    pub fn is(&self, name: &str) -> bool {
        match self {
            FlatKey::Plain(plain) => *plain == name,
            FlatKey::Tag(tag) => name.strip_prefix(TAG_PREFIX) == Some(*tag),
        }
    }
}

impl fmt::Display for FlatKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlatKey::Plain(name) => f.write_str(name),
            FlatKey::Tag(name) => write!(f, "{TAG_PREFIX}{name}"),
        }
    }
}

/// A flattened value: `__time__` is an integer, everything else text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlatValue<'a> {
    /// An integer (`__time__`), a JSON number.
    Integer(u64),
    /// A number carried as text (`__time_ns_part__`), a JSON string.
    NumericText(u64),
    /// Text.
    Text(&'a str),
}

impl fmt::Display for FlatValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlatValue::Integer(value) | FlatValue::NumericText(value) => write!(f, "{value}"),
            FlatValue::Text(text) => f.write_str(text),
        }
    }
}

/// The flattened pairs of `record`, in the documented order.
pub fn flattened<'a>(
    record: &LogRecord<'a>,
) -> impl Iterator<Item = (FlatKey<'a>, FlatValue<'a>)> + 'a {
    let fields = record.fields;
    // Only a content key starting with `__` can shadow a reserved entry; skip the scan otherwise.
    let may_shadow = fields.keys().any(|key| key.starts_with("__"));
    let shadowed = move |key: &FlatKey<'_>| may_shadow && fields.keys().any(|name| key.is(name));
    let reserved = [
        Some((
            FlatKey::Plain(TIME_KEY),
            FlatValue::Integer(record.time.into()),
        )),
        record.time_ns.map(|ns| {
            (
                FlatKey::Plain(TIME_NS_KEY),
                FlatValue::NumericText(ns.into()),
            )
        }),
        Some((FlatKey::Plain(TOPIC_KEY), FlatValue::Text(record.topic))),
        Some((FlatKey::Plain(SOURCE_KEY), FlatValue::Text(record.source))),
    ];
    let tags = record
        .tags
        .iter()
        .map(|(key, value)| (FlatKey::Tag(key), FlatValue::Text(value)));
    reserved
        .into_iter()
        .flatten()
        .chain(tags)
        .filter(move |(key, _)| !shadowed(key))
        .chain(
            fields
                .iter()
                .map(|(key, value)| (FlatKey::Plain(key), FlatValue::Text(value))),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RecordsBuilder;

    fn rendered(records: &crate::model::LogRecords) -> Vec<String> {
        flattened(&records.get(0).unwrap())
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }

    #[test]
    fn order_matches_the_sdk_flattening() {
        let records = RecordsBuilder::new()
            .group("t", "10.0.0.1", &[("tk", "tv")])
            .log(1_700_000_000, Some(123), &[("k", "v")])
            .build();
        assert_eq!(
            rendered(&records),
            [
                "__time__=1700000000",
                "__time_ns_part__=123",
                "__topic__=t",
                "__source__=10.0.0.1",
                "__tag__:tk=tv",
                "k=v"
            ]
        );
    }

    #[test]
    fn contents_replace_reserved_names() {
        let records = RecordsBuilder::new()
            .group("t", "s", &[("tk", "tv")])
            .log(1, None, &[("__topic__", "mine"), ("__tag__:tk", "x")])
            .build();
        assert_eq!(
            rendered(&records),
            [
                "__time__=1",
                "__source__=s",
                "__topic__=mine",
                "__tag__:tk=x"
            ]
        );
    }
}

//! Object names: `{prefix}{partition}_{shard}_{id}{extension}`. The prefix's placeholders are
//! filled from the shard, the partition is a strftime pattern rendered in a fixed offset, and
//! the id comes from the shard's cursor range, so a name determines the logs it holds.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, FixedOffset, Utc};

use crate::model::batch::ShardKey;
use crate::source::cursor;

/// Placeholders a prefix may hold: the shard's, filled per object, and the process's
/// (`{project}`, `{consumer_group}`), filled when the sink is built.
pub const PREFIX_PLACEHOLDERS: [&str; 4] =
    ["{logstore}", "{shard}", "{project}", "{consumer_group}"];

/// How object names are built.
#[derive(Debug, Clone)]
pub struct KeyTemplate {
    /// Prefix with the shard's placeholders (`{logstore}`, `{shard}`).
    pub prefix: String,
    /// strftime pattern of the partition.
    pub partition: String,
    /// Offset the partition is rendered in.
    pub timezone: FixedOffset,
    /// Appended last (e.g. `.json.gz`).
    pub extension: String,
}

impl KeyTemplate {
    /// The partition of the moment `at`.
    pub fn partition(&self, at: DateTime<Utc>) -> String {
        at.with_timezone(&self.timezone)
            .format(&self.partition)
            .to_string()
    }

    /// The object name of `shard`'s file in `partition` with `id`.
    pub fn key(&self, shard: &ShardKey, partition: &str, id: &ObjectId) -> String {
        let prefix = self
            .prefix
            .replace("{logstore}", &shard.logstore)
            .replace("{shard}", &shard.shard.to_string());
        format!("{prefix}{partition}_{}_{id}{}", shard.shard, self.extension)
    }
}

/// The part of a name that tells files of one shard and partition apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectId {
    /// Positions of the first log group and after the last one: the same range always holds
    /// the same logs, so a redelivery rewrites identical content or writes a new name.
    Cursors {
        /// Position of the file's first log group.
        begin: i64,
        /// Position after the file's last log group.
        end: i64,
    },
    /// When a cursor cannot be read as a position: the open time and a random number.
    Random {
        /// Nanoseconds since the Unix epoch when the file was opened.
        opened_nanos: u128,
        /// Random part.
        nonce: u32,
    },
}

impl ObjectId {
    /// The id of a file holding the log groups from cursor `begin` to cursor `end`, opened
    /// at `opened`.
    pub fn from_cursors(begin: &str, end: &str, opened: SystemTime) -> Self {
        match (cursor::decode(begin), cursor::decode(end)) {
            (Ok(begin), Ok(end)) => Self::Cursors { begin, end },
            _ => Self::Random {
                opened_nanos: opened
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |since| since.as_nanos()),
                nonce: rand::random(),
            },
        }
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cursors { begin, end } => write!(f, "{begin}_{end}"),
            Self::Random {
                opened_nanos,
                nonce,
            } => write!(f, "{opened_nanos}_{nonce:08x}"),
        }
    }
}

/// Checks a strftime pattern: every `%` item known to chrono.
///
/// # Errors
///
/// The reason, naming the first bad item.
pub fn check_strftime(pattern: &str) -> Result<(), String> {
    if StrftimeItems::new(pattern).any(|item| matches!(item, Item::Error)) {
        let bad = pattern
            .match_indices('%')
            .map(|(index, _)| &pattern[index..])
            .find(|rest| {
                let end = rest
                    .char_indices()
                    .nth(2)
                    .map_or(rest.len(), |(index, _)| index);
                StrftimeItems::new(&rest[..end]).any(|item| matches!(item, Item::Error))
            })
            .map(|rest| rest.chars().take(2).collect::<String>())
            .unwrap_or_else(|| pattern.to_owned());
        return Err(format!("invalid strftime item at {bad}"));
    }
    Ok(())
}

/// Checks a part of an object name: no leading `/`, no empty, `.` or `..` segments.
///
/// # Errors
///
/// The reason.
pub fn check_path_part(text: &str) -> Result<(), String> {
    if text.starts_with('/') {
        return Err("must not start with '/'".into());
    }
    if text.contains("//") {
        return Err("must not contain '//'".into());
    }
    if text
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err("must not contain '.' or '..' segments".into());
    }
    Ok(())
}

/// Parses `UTC` or a fixed offset `±HH:MM`.
///
/// # Errors
///
/// The reason.
pub fn parse_timezone(text: &str) -> Result<FixedOffset, String> {
    if text.eq_ignore_ascii_case("utc") || text == "Z" {
        return Ok(FixedOffset::east_opt(0).expect("zero offset"));
    }
    let invalid = || format!("must be UTC or a fixed offset like +08:00 (got {text:?})");
    let (sign, rest) = match text.as_bytes().first() {
        Some(b'+') => (1, &text[1..]),
        Some(b'-') => (-1, &text[1..]),
        _ => return Err(invalid()),
    };
    let (hours, minutes) = rest.split_once(':').ok_or_else(invalid)?;
    if hours.len() != 2 || minutes.len() != 2 {
        return Err(invalid());
    }
    let hours: i32 = hours.parse().map_err(|_| invalid())?;
    let minutes: i32 = minutes.parse().map_err(|_| invalid())?;
    if hours > 23 || minutes > 59 {
        return Err(invalid());
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60)).ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn template(prefix: &str, partition: &str, timezone: &str) -> KeyTemplate {
        KeyTemplate {
            prefix: prefix.into(),
            partition: partition.into(),
            timezone: parse_timezone(timezone).unwrap(),
            extension: ".json.gz".into(),
        }
    }

    fn shard(number: u32) -> ShardKey {
        ShardKey {
            logstore: "audit".into(),
            shard: number,
        }
    }

    #[test]
    fn renders_prefix_partition_shard_range_and_extension() {
        let keys = template("archive/{logstore}/s{shard}/", "%Y/%m/%d/%H/%M", "UTC");
        let at = Utc.with_ymd_and_hms(2026, 3, 1, 23, 59, 10).unwrap();
        let partition = keys.partition(at);
        let id = ObjectId::from_cursors(
            &cursor::encode(100),
            &cursor::encode(104),
            SystemTime::now(),
        );
        assert_eq!(
            keys.key(&shard(3), &partition, &id),
            "archive/audit/s3/2026/03/01/23/59_3_100_104.json.gz"
        );
    }

    #[test]
    fn a_fixed_offset_moves_the_partition_across_midnight() {
        let at = Utc.with_ymd_and_hms(2026, 3, 1, 16, 0, 0).unwrap();
        let east = template("", "%Y%m%d", "+08:00");
        assert_eq!(east.partition(at), "20260302");
        let west = template("", "%Y%m%d", "-05:30");
        assert_eq!(west.partition(at), "20260301");
    }

    #[test]
    fn unreadable_cursors_give_a_random_id() {
        let opened = UNIX_EPOCH + std::time::Duration::from_nanos(1_700_000_000_000_000_001);
        let id = ObjectId::from_cursors("", "", opened);
        let text = id.to_string();
        assert!(text.starts_with("1700000000000000001_"), "{text}");
        assert_eq!(text.len(), "1700000000000000001_".len() + 8);
        assert_ne!(id, ObjectId::from_cursors("", "", opened), "random part");
    }

    #[test]
    fn strftime_checks_name_the_bad_item() {
        assert_eq!(check_strftime("%Y/%m/%d/%H/%M"), Ok(()));
        assert_eq!(check_strftime("year=%Y/hour=%H"), Ok(()));
        assert_eq!(
            check_strftime("%Y/%Q"),
            Err("invalid strftime item at %Q".into())
        );
    }

    #[test]
    fn timezones() {
        assert_eq!(parse_timezone("UTC").unwrap().local_minus_utc(), 0);
        assert_eq!(
            parse_timezone("+08:00").unwrap().local_minus_utc(),
            8 * 3600
        );
        assert_eq!(
            parse_timezone("-05:30").unwrap().local_minus_utc(),
            -(5 * 3600 + 1800)
        );
        for bad in ["Asia/Shanghai", "+8", "+24:00", "08:00", "+08:60", ""] {
            assert!(parse_timezone(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn path_parts() {
        assert!(check_path_part("a/b/").is_ok());
        assert!(check_path_part("").is_ok());
        assert!(check_path_part("/a").is_err());
        assert!(check_path_part("a//b").is_err());
        assert!(check_path_part("a/../b").is_err());
    }

    proptest! {
        /// Keys of checked templates are valid object paths: no leading `/`, no empty, `.`
        /// or `..` segments.
        #[test]
        fn keys_are_valid_object_paths(
            prefix in "([a-z{}]{1,8}/){0,3}",
            seconds in 0i64..4_000_000_000,
            begin in 0i64..1_000_000,
            length in 1i64..1000,
        ) {
            let prefix = prefix.replace("{}", "{logstore}");
            prop_assume!(check_path_part(&prefix).is_ok());
            let keys = template(&prefix, "%Y/%m/%d/%H/%M", "+08:00");
            let at = Utc.timestamp_opt(seconds, 0).unwrap();
            let id = ObjectId::Cursors { begin, end: begin + length };
            let key = keys.key(&shard(1), &keys.partition(at), &id);
            prop_assert!(object_store::path::Path::parse(&key).is_ok(), "{}", key);
            prop_assert!(check_path_part(&key).is_ok(), "{}", key);
        }
    }
}

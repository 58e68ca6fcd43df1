//! The Splunk HTTP Event Collector envelope: one JSON object per log for
//! `/services/collector/event` (`time`, `host`, `source`, `sourcetype`, `index`, `event`,
//! `fields`), or one line per log for `/services/collector/raw`.
//!
//! `time` is printed from the integer seconds and nanoseconds of the log with integer
//! arithmetic (`1700000000.123456`), never through a float, so no digit is lost or invented.
//! Microseconds are the finest precision a Splunk indexer keeps (it parses `time` as a double).

use std::collections::HashMap;

use serde::de::IgnoredAny;

use super::json::{write_flat_object_with, write_flat_value, write_string};
use super::Encoder;
use crate::model::flatten::FlatValue;
use crate::model::LogRecord;

/// Where one metadata key (`host`, `source`, `sourcetype`, `index`) takes its value from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaSource {
    /// A flattened field name (`__source__`, `__tag__:X`, a content key) whose non-empty value
    /// is used when present.
    pub field: Option<String>,
    /// The value used when the field is unset, missing or empty; no key is written when both
    /// are absent.
    pub fallback: Option<String>,
}

impl MetaSource {
    /// The value for `record`, if any.
    pub fn resolve<'a>(&'a self, record: &LogRecord<'a>) -> Option<&'a str> {
        self.field
            .as_deref()
            .and_then(|name| record.lookup(name))
            .filter(|value| !value.is_empty())
            .or(self.fallback.as_deref())
    }
}

/// The envelope's metadata keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HecMetadata {
    /// The `host` key.
    pub host: MetaSource,
    /// The `source` key.
    pub source: MetaSource,
    /// The `sourcetype` key.
    pub sourcetype: MetaSource,
    /// The `index` key.
    pub index: MetaSource,
}

/// How the log goes into `event`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HecEventFormat {
    /// The flattened log as a JSON object (Splunk indexes it as JSON).
    #[default]
    Object,
    /// The flattened log's JSON text as a JSON string.
    Text,
}

/// Encodes logs as HEC events.
#[derive(Debug, Clone, Default)]
pub struct HecEncoder {
    /// Metadata keys of the envelope.
    pub metadata: HecMetadata,
    /// Flattened field names sent as index-time `fields` (string values only, so Splunk never
    /// answers code 15).
    pub indexed_fields: Vec<String>,
    /// How the log goes into `event`.
    pub event_format: HecEventFormat,
    /// Per topic, the fields whose JSON text (an object or an array) is embedded as JSON
    /// rather than as a string; invalid JSON stays a string.
    pub embed_json: HashMap<String, Vec<String>>,
}

impl HecEncoder {
    /// Appends the `/event` envelope of `record` to `out`.
    pub fn encode_event(&self, record: &LogRecord<'_>, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"time\":");
        write_time(record.time, record.time_ns, out);
        let metadata = &self.metadata;
        for (key, source) in [
            ("host", &metadata.host),
            ("source", &metadata.source),
            ("sourcetype", &metadata.sourcetype),
            ("index", &metadata.index),
        ] {
            if let Some(value) = source.resolve(record) {
                out.extend_from_slice(b",\"");
                out.extend_from_slice(key.as_bytes());
                out.extend_from_slice(b"\":");
                write_string(value, out);
            }
        }
        out.extend_from_slice(b",\"event\":");
        match self.event_format {
            HecEventFormat::Object => self.write_event_object(record, out),
            HecEventFormat::Text => {
                let mut object = Vec::with_capacity(256);
                self.write_event_object(record, &mut object);
                write_string(&String::from_utf8_lossy(&object), out);
            }
        }
        self.write_indexed_fields(record, out);
        out.push(b'}');
    }

    /// Appends the `/raw` line of `record` (the flattened object, without a newline).
    pub fn encode_raw(&self, record: &LogRecord<'_>, out: &mut Vec<u8>) {
        self.write_event_object(record, out);
    }

    fn write_indexed_fields(&self, record: &LogRecord<'_>, out: &mut Vec<u8>) {
        let mut present = self
            .indexed_fields
            .iter()
            .filter_map(|name| record.lookup(name).map(|value| (name, value)))
            .peekable();
        if present.peek().is_none() {
            return;
        }
        out.extend_from_slice(b",\"fields\":{");
        for (index, (name, value)) in present.enumerate() {
            if index > 0 {
                out.push(b',');
            }
            write_string(name, out);
            out.push(b':');
            write_string(value, out);
        }
        out.push(b'}');
    }

    fn write_event_object(&self, record: &LogRecord<'_>, out: &mut Vec<u8>) {
        let embedded = self
            .embed_json
            .get(record.topic)
            .map(Vec::as_slice)
            .unwrap_or_default();
        write_flat_object_with(record, out, |key, value, out| match value {
            FlatValue::Text(text) if embedded.iter().any(|name| key.is(name)) => {
                write_json_or_string(text, out)
            }
            _ => write_flat_value(value, out),
        });
    }
}

impl Encoder for HecEncoder {
    fn encode(&self, record: &LogRecord<'_>, out: &mut Vec<u8>) {
        self.encode_event(record, out);
    }
}

/// Appends `text` verbatim when it is a valid JSON object or array, else as a JSON string.
/// Line breaks between JSON tokens are dropped, so the result stays on one line (`/raw`
/// splits events on newlines); JSON strings cannot hold raw line breaks, so none is lost.
fn write_json_or_string(text: &str, out: &mut Vec<u8>) {
    let trimmed = text.trim();
    let structured = trimmed.starts_with('{') || trimmed.starts_with('[');
    if !structured || serde_json::from_str::<IgnoredAny>(trimmed).is_err() {
        write_string(text, out);
        return;
    }
    let bytes = trimmed.as_bytes();
    if bytes.iter().any(|&byte| byte == b'\n' || byte == b'\r') {
        out.extend(bytes.iter().filter(|&&byte| byte != b'\n' && byte != b'\r'));
    } else {
        out.extend_from_slice(bytes);
    }
}

/// Appends epoch seconds with a microsecond fraction when the nanoseconds have one:
/// `1700000000`, `1700000000.000001`, `1700000000.123456`. Integer arithmetic only.
pub fn write_time(seconds: u32, nanos: Option<u32>, out: &mut Vec<u8>) {
    out.extend_from_slice(itoa::Buffer::new().format(seconds).as_bytes());
    let micros = nanos.unwrap_or(0).min(999_999_999) / 1_000;
    if micros == 0 {
        return;
    }
    out.push(b'.');
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(micros).as_bytes();
    out.resize(out.len() + 6 - digits.len(), b'0');
    out.extend_from_slice(digits);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LogRecords, RecordsBuilder};
    use proptest::prelude::*;

    fn time_text(seconds: u32, nanos: Option<u32>) -> String {
        let mut out = Vec::new();
        write_time(seconds, nanos, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn encoded(encoder: &HecEncoder, records: &LogRecords) -> serde_json::Value {
        let mut out = Vec::new();
        encoder.encode_event(&records.get(0).unwrap(), &mut out);
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn time_uses_integer_digits() {
        assert_eq!(
            time_text(1_709_622_489, Some(123_456_000)),
            "1709622489.123456"
        );
        assert_eq!(
            time_text(1_709_622_489, Some(123_456_789)),
            "1709622489.123456"
        );
        assert_eq!(time_text(1_709_622_490, None), "1709622490");
        assert_eq!(time_text(1_709_622_490, Some(999)), "1709622490");
        assert_eq!(time_text(1, Some(1_000)), "1.000001");
        assert_eq!(time_text(1, Some(500_000_000)), "1.500000");
    }

    proptest! {
        #[test]
        fn time_round_trips_to_the_microsecond(seconds: u32, nanos in 0u32..1_000_000_000) {
            let text = time_text(seconds, Some(nanos));
            let (whole, fraction) = text.split_once('.').unwrap_or((&text, "0"));
            prop_assert_eq!(whole.parse::<u32>().unwrap(), seconds);
            let fraction: u32 = format!("{fraction:0<6}").parse().unwrap();
            prop_assert_eq!(fraction, nanos / 1_000);
        }
    }

    proptest! {
        #[test]
        fn any_text_encodes_to_parseable_json_with_the_same_values(
            topic in "\\PC{0,8}",
            pairs in proptest::collection::vec(("[a-z]{1,6}", any::<String>()), 0..6),
            nanos in proptest::option::of(0u32..1_000_000_000),
            text_format: bool,
        ) {
            let fields: Vec<(&str, &str)> =
                pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let records = RecordsBuilder::new()
                .group(&topic, "host\u{1}", &[("t\"ag", "v\n")])
                .log(42, nanos, &fields)
                .build();
            let keys: Vec<String> = pairs.iter().map(|(k, _)| k.clone()).collect();
            let encoder = HecEncoder {
                event_format: if text_format { HecEventFormat::Text } else { HecEventFormat::Object },
                indexed_fields: keys.clone(),
                embed_json: HashMap::from([(topic.clone(), keys)]),
                ..HecEncoder::default()
            };
            let mut out = Vec::new();
            encoder.encode_event(&records.get(0).unwrap(), &mut out);
            let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
            let event = if text_format {
                serde_json::from_str(value["event"].as_str().unwrap()).unwrap()
            } else {
                value["event"].clone()
            };
            prop_assert_eq!(&event["__tag__:t\"ag"], "v\n");
            let record = records.get(0).unwrap();
            for (key, _) in &pairs {
                let expected = record.fields.get(key).unwrap();
                prop_assert_eq!(&value["fields"][key.as_str()], expected);
                match &event[key.as_str()] {
                    serde_json::Value::String(text) => prop_assert_eq!(text, expected),
                    expanded => prop_assert_eq!(
                        expanded,
                        &serde_json::from_str::<serde_json::Value>(expected).unwrap()
                    ),
                }
            }
        }
    }

    #[test]
    fn envelope_carries_metadata_fields_and_the_flattened_event() {
        let records = RecordsBuilder::new()
            .group("audit", "10.0.0.1", &[("region", "cn-hangzhou")])
            .log(
                1_700_000_000,
                Some(5_000),
                &[("user", "alice"), ("idx", "")],
            )
            .build();
        let encoder = HecEncoder {
            metadata: HecMetadata {
                host: MetaSource {
                    field: Some("__source__".into()),
                    fallback: Some("unused".into()),
                },
                source: MetaSource {
                    field: Some("__topic__".into()),
                    fallback: None,
                },
                sourcetype: MetaSource {
                    field: None,
                    fallback: Some("alicloud:actiontrail".into()),
                },
                index: MetaSource {
                    field: Some("idx".into()),
                    fallback: Some("main".into()),
                },
            },
            indexed_fields: vec!["__tag__:region".into(), "user".into(), "missing".into()],
            ..HecEncoder::default()
        };
        assert_eq!(
            encoded(&encoder, &records),
            serde_json::json!({
                "time": 1_700_000_000.000005,
                "host": "10.0.0.1",
                "source": "audit",
                "sourcetype": "alicloud:actiontrail",
                "index": "main",
                "event": {
                    "__time__": 1_700_000_000u32,
                    "__time_ns_part__": "5000",
                    "__topic__": "audit",
                    "__source__": "10.0.0.1",
                    "__tag__:region": "cn-hangzhou",
                    "user": "alice",
                    "idx": ""
                },
                "fields": {"__tag__:region": "cn-hangzhou", "user": "alice"}
            })
        );
    }

    #[test]
    fn json_text_is_embedded_only_for_listed_topics_and_valid_json() {
        let nested =
            "{\"eventName\":\"ConsoleSignin\",\n \"userIdentity\":{\"type\":\"ram-user\"}}";
        let records = RecordsBuilder::new()
            .group("actiontrail_audit_event", "", &[])
            .log(1, None, &[("event", nested), ("other", "{\"a\":1}")])
            .group("actiontrail_audit_event", "", &[])
            .log(1, None, &[("event", "{not json")])
            .group("elsewhere", "", &[])
            .log(1, None, &[("event", "{\"a\":1}")])
            .build();
        let encoder = HecEncoder {
            embed_json: HashMap::from([("actiontrail_audit_event".into(), vec!["event".into()])]),
            ..HecEncoder::default()
        };
        let events: Vec<serde_json::Value> = records
            .iter()
            .map(|record| {
                let mut out = Vec::new();
                encoder.encode_event(&record, &mut out);
                assert!(!out.contains(&b'\n'));
                serde_json::from_slice::<serde_json::Value>(&out).unwrap()["event"].clone()
            })
            .collect();
        assert_eq!(
            events[0]["event"],
            serde_json::json!({"eventName": "ConsoleSignin", "userIdentity": {"type": "ram-user"}})
        );
        assert_eq!(events[0]["other"], "{\"a\":1}");
        assert_eq!(events[1]["event"], "{not json");
        assert_eq!(events[2]["event"], "{\"a\":1}");
    }

    #[test]
    fn text_format_puts_the_flattened_json_in_a_string() {
        let records = RecordsBuilder::new()
            .log(7, None, &[("msg", "a \"quoted\" line")])
            .build();
        let encoder = HecEncoder {
            event_format: HecEventFormat::Text,
            ..HecEncoder::default()
        };
        let value = encoded(&encoder, &records);
        let inner: serde_json::Value =
            serde_json::from_str(value["event"].as_str().unwrap()).unwrap();
        assert_eq!(inner["msg"], "a \"quoted\" line");
        assert_eq!(value["time"], 7);
        assert!(value.get("fields").is_none() && value.get("host").is_none());
    }

    #[test]
    fn raw_line_is_the_event_object() {
        let records = RecordsBuilder::new().log(7, None, &[("k", "v")]).build();
        let mut out = Vec::new();
        HecEncoder::default().encode_raw(&records.get(0).unwrap(), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"__time__\":7,\"__topic__\":\"\",\"__source__\":\"\",\"k\":\"v\"}"
        );
    }
}

//! RFC 5424 messages: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [MSG]`,
//! with the log as a `k=v` body, a JSON body, or one structured-data element.

use serde::Deserialize;

use super::header::{HeaderFields, MessageBody};
use super::text::{write_sd_name, write_sd_name_within, write_sd_value, SD_NAME_MAX};
use super::Encoder;
use crate::model::flatten::{flattened, FlatKey, FlatValue};
use crate::model::LogRecord;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// When MSG starts with the UTF-8 byte order mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BomPolicy {
    /// Never (the default: many receivers show the BOM as garbage).
    #[default]
    Never,
    /// Always, as RFC 5424 asks for UTF-8 messages.
    Always,
    /// Only when MSG holds non-ASCII text.
    WhenNonAscii,
}

/// Where the log's data goes in an RFC 5424 message.
#[derive(Debug, Clone)]
pub enum Rfc5424Body {
    /// STRUCTURED-DATA is `-`; MSG is the body.
    Message(MessageBody),
    /// The flattened pairs are the parameters of one SD element; MSG is the value of
    /// `message_field` when set and present, otherwise left out.
    StructuredData {
        /// The SD-ID, e.g. `sls@32473` (sanitised as an SD-NAME when written).
        sd_id: String,
        /// Field whose value becomes MSG.
        message_field: Option<String>,
    },
}

/// Encodes logs as RFC 5424 messages.
#[derive(Debug, Clone)]
pub struct Rfc5424Encoder {
    /// Header fields.
    pub header: HeaderFields,
    /// Body layout.
    pub body: Rfc5424Body,
    /// BOM policy.
    pub bom: BomPolicy,
}

impl Encoder for Rfc5424Encoder {
    fn encode(&self, record: &LogRecord<'_>, out: &mut Vec<u8>) {
        self.header.write_rfc5424(record, out);
        match &self.body {
            Rfc5424Body::Message(body) => {
                out.extend_from_slice(b"- ");
                self.write_msg(out, |out| body.write(record, out));
            }
            Rfc5424Body::StructuredData {
                sd_id,
                message_field,
            } => {
                write_sd_element(sd_id, record, out);
                let message = message_field.as_deref().and_then(|f| record.lookup(f));
                if let Some(message) = message.filter(|m| !m.is_empty()) {
                    out.push(b' ');
                    self.write_msg(out, |out| out.extend_from_slice(message.as_bytes()));
                }
            }
        }
    }
}

impl Rfc5424Encoder {
    fn write_msg(&self, out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
        let start = out.len();
        match self.bom {
            BomPolicy::Never => write(out),
            BomPolicy::Always => {
                out.extend_from_slice(BOM);
                write(out);
            }
            BomPolicy::WhenNonAscii => {
                write(out);
                if !out[start..].is_ascii() {
                    out.splice(start..start, BOM.iter().copied());
                }
            }
        }
    }
}

/// Writes `[SD-ID name="value" ...]` with every flattened pair of `record`.
fn write_sd_element(sd_id: &str, record: &LogRecord<'_>, out: &mut Vec<u8>) {
    out.push(b'[');
    write_sd_name(sd_id, out);
    // `for_each` rather than a `for` loop: the chained iterator folds much faster.
    flattened(record).for_each(|(key, value)| {
        out.push(b' ');
        match key {
            FlatKey::Plain(name) => write_sd_name(name, out),
            FlatKey::Tag(name) => {
                // The prefix counts towards the 32-character SD-NAME limit.
                const PREFIX: &str = "__tag__:";
                out.extend_from_slice(PREFIX.as_bytes());
                write_sd_name_within(name, SD_NAME_MAX - PREFIX.len(), out);
            }
        }
        out.extend_from_slice(b"=\"");
        match value {
            FlatValue::Integer(number) | FlatValue::NumericText(number) => {
                out.extend_from_slice(itoa::Buffer::new().format(number).as_bytes())
            }
            FlatValue::Text(text) => write_sd_value(text, out),
        }
        out.push(b'"');
    });
    out.push(b']');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::field::ValueSource;
    use crate::encoding::kv::{self, KvFormat};
    use crate::encoding::severity::{Facility, PriSource, Severity};
    use crate::encoding::timestamp::{TimePrecision, TimeZone};
    use crate::model::{LogRecords, RecordsBuilder};
    use proptest::prelude::*;

    /// 2024-03-05T07:08:09Z.
    const MARCH_5: u32 = 1_709_622_489;

    fn header() -> HeaderFields {
        HeaderFields {
            pri: PriSource {
                facility: Facility::from_code(20).unwrap(),
                severity: Severity::from_code(5).unwrap(),
                ..PriSource::default()
            },
            hostname: ValueSource::fixed("web01.example.com"),
            app_name: ValueSource::fixed("payapi"),
            procid: ValueSource::fixed("4211"),
            msgid: ValueSource::fixed("AUDIT"),
            ..HeaderFields::default()
        }
    }

    fn encode(encoder: &Rfc5424Encoder, records: &LogRecords) -> String {
        let mut out = Vec::new();
        encoder.encode(&records.get(0).unwrap(), &mut out);
        String::from_utf8(out).unwrap()
    }

    fn sd_encoder(message_field: Option<&str>) -> Rfc5424Encoder {
        Rfc5424Encoder {
            header: header(),
            body: Rfc5424Body::StructuredData {
                sd_id: "login@32473".into(),
                message_field: message_field.map(Into::into),
            },
            bom: BomPolicy::Never,
        }
    }

    #[test]
    fn structured_data_matches_the_spec_example() {
        let records = RecordsBuilder::new()
            .log(
                MARCH_5,
                Some(123_456_000),
                &[
                    ("__time__", "x"),
                    ("__topic__", "t"),
                    ("__source__", "s"),
                    ("user", "a\"b"),
                    ("path", "C:\\tmp"),
                    ("note", "x]y"),
                    ("message", "user login ok"),
                ],
            )
            .build();
        // Contents shadow the reserved names, except `__time_ns_part__`.
        let text = encode(&sd_encoder(Some("message")), &records);
        assert_eq!(
            text,
            "<165>1 2024-03-05T07:08:09.123456Z web01.example.com payapi 4211 AUDIT \
             [login@32473 __time_ns_part__=\"123456000\" __time__=\"x\" __topic__=\"t\" __source__=\"s\" \
             user=\"a\\\"b\" path=\"C:\\\\tmp\" note=\"x\\]y\" message=\"user login ok\"] user login ok"
        );
        let parsed = syslog_rfc5424::parse_message(&text).unwrap();
        assert_eq!(
            parsed.sd.find_tuple("login@32473", "note"),
            Some(&"x]y".to_owned())
        );
        assert_eq!(parsed.msg, "user login ok");
    }

    #[test]
    fn tag_names_keep_the_prefix_within_the_sd_name_limit() {
        let long_tag = "t".repeat(40);
        let records = RecordsBuilder::new()
            .group("", "", &[(long_tag.as_str(), "v"), ("", "e")])
            .log(MARCH_5, None, &[])
            .build();
        let text = encode(&sd_encoder(None), &records);
        let expected_name = format!("__tag__:{}", "t".repeat(24));
        assert!(
            text.contains(&format!(" {expected_name}=\"v\" __tag__:_=\"e\"]")),
            "{text}"
        );
        let parsed = syslog_rfc5424::parse_message(&text).unwrap();
        assert_eq!(
            parsed.sd.find_tuple("login@32473", &expected_name),
            Some(&"v".to_owned())
        );
    }

    #[test]
    fn minimal_message_uses_nil_values() {
        let records = RecordsBuilder::new().log(MARCH_5, None, &[]).build();
        let encoder = Rfc5424Encoder {
            header: HeaderFields {
                hostname: ValueSource::fixed("host1"),
                app_name: ValueSource::fixed("app"),
                precision: TimePrecision::Seconds,
                ..HeaderFields::default()
            },
            body: Rfc5424Body::Message(MessageBody::Kv(KvFormat::default())),
            bom: BomPolicy::Never,
        };
        assert_eq!(
            encode(&encoder, &records),
            "<14>1 2024-03-05T07:08:09Z host1 app - - - __time__=1709622489||__topic__=||__source__="
        );
    }

    #[test]
    fn offsets_bom_and_json_body() {
        let records = RecordsBuilder::new()
            .log(MARCH_5, Some(123_000_000), &[("msg", "é")])
            .build();
        let mut encoder = Rfc5424Encoder {
            header: HeaderFields {
                zone: TimeZone::Fixed(8 * 3600),
                precision: TimePrecision::Millis,
                ..header()
            },
            body: Rfc5424Body::Message(MessageBody::Json),
            bom: BomPolicy::WhenNonAscii,
        };
        let text = encode(&encoder, &records);
        assert!(text.contains(" 2024-03-05T15:08:09.123+08:00 "), "{text}");
        assert!(text.ends_with("AUDIT - \u{feff}{\"__time__\":1709622489,\"__time_ns_part__\":\"123000000\",\"__topic__\":\"\",\"__source__\":\"\",\"msg\":\"é\"}"), "{text}");
        encoder.bom = BomPolicy::Never;
        assert!(!encode(&encoder, &records).contains('\u{feff}'));
    }

    #[test]
    fn long_and_non_ascii_header_fields_are_cut_and_replaced() {
        let app = "a".repeat(60);
        let records = RecordsBuilder::new()
            .log(
                MARCH_5,
                None,
                &[("app", app.as_str()), ("host", "hôst name")],
            )
            .build();
        let encoder = Rfc5424Encoder {
            header: HeaderFields {
                app_name: ValueSource {
                    field: Some("app".into()),
                    fallback: String::new(),
                },
                hostname: ValueSource {
                    field: Some("host".into()),
                    fallback: String::new(),
                },
                ..HeaderFields::default()
            },
            body: Rfc5424Body::Message(MessageBody::Json),
            bom: BomPolicy::Never,
        };
        let text = encode(&encoder, &records);
        let parsed = syslog_rfc5424::parse_message(&text).unwrap();
        assert_eq!(parsed.appname.as_deref(), Some("a".repeat(48).as_str()));
        assert_eq!(parsed.hostname.as_deref(), Some("h_st_name"));
        assert_eq!(parsed.procid, None);
    }

    fn field_strategy() -> impl Strategy<Value = Vec<(String, String)>> {
        let text = prop_oneof![
            Just(String::new()),
            "[a-z]{1,8}",
            "[\"\\\\\\]=| \n\té€😀a-z]{0,12}",
            any::<String>(),
        ];
        proptest::collection::vec((text.clone(), text), 0..6)
    }

    proptest! {
        #[test]
        fn sd_body_parses_back_to_the_same_fields(fields in field_strategy()) {
            let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let records = RecordsBuilder::new().group("t", "s", &[]).log(MARCH_5, Some(7_000), &pairs).build();
            let text = encode(&sd_encoder(None), &records);
            let parsed = syslog_rfc5424::parse_message(&text).unwrap();
            let element = parsed.sd.find_sdid("login@32473").unwrap();
            // Names are sanitised to SD-NAMEs; for a repeated name the parser keeps the last value.
            let mut expected = std::collections::BTreeMap::new();
            for (key, value) in flattened(&records.get(0).unwrap()) {
                let mut name = Vec::new();
                match key {
                    FlatKey::Plain(plain) => write_sd_name(plain, &mut name),
                    FlatKey::Tag(_) => unreachable!("no tags in this test"),
                }
                expected.insert(String::from_utf8(name).unwrap(), value.to_string());
            }
            prop_assert_eq!(element, &expected);
            prop_assert_eq!(parsed.timestamp, Some(i64::from(MARCH_5)));
            prop_assert_eq!(parsed.timestamp_nanos, Some(7_000));
            prop_assert_eq!(parsed.msg, "");
        }

        #[test]
        fn kv_body_parses_back_to_the_same_fields(fields in field_strategy()) {
            let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let records = RecordsBuilder::new().log(MARCH_5, None, &pairs).build();
            let encoder = Rfc5424Encoder {
                header: header(),
                body: Rfc5424Body::Message(MessageBody::Kv(KvFormat::default())),
                bom: BomPolicy::Never,
            };
            let text = encode(&encoder, &records);
            let parsed = syslog_rfc5424::parse_message(&text).unwrap();
            prop_assert_eq!(parsed.hostname.as_deref(), Some("web01.example.com"));
            prop_assert_eq!(parsed.msgid.as_deref(), Some("AUDIT"));
            prop_assert!(parsed.sd.is_empty());
            let expected: Vec<(String, String)> = flattened(&records.get(0).unwrap())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            prop_assert_eq!(kv::parse(&parsed.msg, kv::DEFAULT_SEPARATOR), expected);
        }
    }
}

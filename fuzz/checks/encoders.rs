//! Every encoder over logs built from fuzz bytes, with encoder settings chosen by the input
//! too, each output checked against its format:
//!
//! - RFC 5424 parses with the `syslog_rfc5424` crate, with the PRI, timestamp and MSG the log
//!   asks for;
//! - RFC 3164 starts with its PRI and respects its length cap, cutting on a character
//!   boundary;
//! - `key=value` bodies split back into exactly the flattened pairs;
//! - CEF has seven unescaped header separators, only known escapes, and exactly the expected
//!   extension keys;
//! - LEEF has its five (1.0) or six (2.0) header fields and exactly the expected attributes;
//! - JSON and HEC output parses as JSON holding the flattened pairs / the envelope;
//! - CEF, LEEF, JSON and HEC never hold a raw line break; the syslog text formats may (they
//!   carry values verbatim), and LF framing must still leave exactly one line per record.
//!
//! Input: three settings bytes, the settings' texts (kv separator, SD-ID, CEF vendor,
//! product and version, fallback event id, LEEF delimiter byte, HEC sourcetype), then one log:
//! topic, source, tags, time, nanoseconds and contents. Keys are mostly drawn from the names
//! the settings refer to, so lookups hit.

use std::collections::HashMap;

use siem_forwarder::encoding::cef::{CefEncoder, CefSettings};
use siem_forwarder::encoding::field::{MappedKey, MappedValue, ValueSource};
use siem_forwarder::encoding::framing::Framing;
use siem_forwarder::encoding::header::{HeaderFields, MessageBody, SyslogPrefix};
use siem_forwarder::encoding::hec::{HecEncoder, HecEventFormat, HecMetadata, MetaSource};
use siem_forwarder::encoding::json::FlatJsonEncoder;
use siem_forwarder::encoding::kv::{self, KvFormat};
use siem_forwarder::encoding::leef::{LeefEncoder, LeefSettings, LeefVersion};
use siem_forwarder::encoding::rfc3164::Rfc3164Encoder;
use siem_forwarder::encoding::rfc5424::{BomPolicy, Rfc5424Body, Rfc5424Encoder};
use siem_forwarder::encoding::severity::{write_pri, Facility, PriSource, Severity};
use siem_forwarder::encoding::timestamp::{TimePrecision, TimeZone};
use siem_forwarder::encoding::Encoder;
use siem_forwarder::model::flatten::{flattened, FlatValue};
use siem_forwarder::model::{LogRecord, LogRecords, RecordsBuilder};

use super::input::Input;

/// Field names the settings read; most keys of a fuzzed log are drawn from these.
const KEYS: [&str; 20] = [
    "msg",
    "level",
    "facility",
    "host",
    "app",
    "pid",
    "event",
    "src",
    "user",
    "action",
    "sev",
    "json",
    "region",
    "index",
    "__topic__",
    "__source__",
    "__time__",
    "__time_ns_part__",
    "__tag__:region",
    "__tag__:index",
];

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Runs one input; panics when a property fails.
pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let settings = Settings::read(&mut input);
    let records = read_log(&mut input);
    let record = records.get(0).expect("one log");
    settings.check(&record);
}

fn read_key(input: &mut Input<'_>) -> String {
    let choice = input.byte();
    if choice < 0xc0 {
        KEYS[usize::from(choice) % KEYS.len()].to_owned()
    } else {
        input.text()
    }
}

fn read_log(input: &mut Input<'_>) -> LogRecords {
    let topic = input.text();
    let source = input.text();
    let tags: Vec<(String, String)> = (0..input.byte() % 4)
        .map(|_| (read_key(input), input.text()))
        .collect();
    let time = input.u32();
    let nanos = input.u32();
    let time_ns = (nanos & 1 != 0).then_some(nanos >> 1);
    let fields: Vec<(String, String)> = (0..input.byte() % 8)
        .map(|_| (read_key(input), input.text()))
        .collect();
    RecordsBuilder::new()
        .group(&topic, &source, &pairs(&tags))
        .log(time, time_ns, &pairs(&fields))
        .build()
}

fn field_source(field: &str, fallback: &str) -> ValueSource {
    ValueSource {
        field: Some(field.into()),
        fallback: fallback.into(),
    }
}

fn mapped(key: &str, field: &str) -> MappedKey {
    MappedKey {
        key: key.into(),
        value: MappedValue::Field(field.into()),
    }
}

fn pairs(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect()
}

/// One set of encoders, with what the checks need to know about their settings.
struct Settings {
    rfc5424: Rfc5424Encoder,
    rfc3164: Rfc3164Encoder,
    kv: KvFormat,
    separator: String,
    /// `None` when the fuzzed settings were refused (a clean error).
    cef: Option<(CefEncoder, CefSettings)>,
    leef: Option<(LeefEncoder, LeefSettings)>,
    hec: HecEncoder,
}

impl Settings {
    fn read(input: &mut Input<'_>) -> Self {
        let [first, second, third] = [input.byte(), input.byte(), input.byte()];
        let header = HeaderFields {
            pri: PriSource {
                facility: Facility::USER,
                facility_field: Some("facility".into()),
                severity: Severity::INFO,
                severity_field: Some("level".into()),
                severity_map: vec![("SEVERE".into(), Severity::from_code(2).expect("crit"))],
            },
            zone: [
                TimeZone::Utc,
                TimeZone::Fixed(8 * 3600),
                TimeZone::Fixed(-(5 * 3600 + 30 * 60)),
                TimeZone::Fixed(14 * 3600),
            ][usize::from(first & 3)],
            precision: [
                TimePrecision::Micros,
                TimePrecision::Millis,
                TimePrecision::Seconds,
                TimePrecision::Micros,
            ][usize::from(first >> 2 & 3)],
            hostname: field_source("host", "web01"),
            app_name: field_source("app", "siem-forwarder"),
            procid: field_source("pid", ""),
            msgid: field_source("__topic__", ""),
        };
        let separator = input.text();
        let (kv, separator) = match KvFormat::new(&separator) {
            Ok(format) => (format, separator),
            Err(_) => (KvFormat::default(), kv::DEFAULT_SEPARATOR.to_owned()),
        };
        let sd_id = input.text();
        let rfc5424 = Rfc5424Encoder {
            header: header.clone(),
            body: match first >> 4 & 3 {
                0 => Rfc5424Body::Message(MessageBody::Kv(kv.clone())),
                1 => Rfc5424Body::Message(MessageBody::Json),
                2 => Rfc5424Body::StructuredData {
                    sd_id,
                    message_field: Some("msg".into()),
                },
                _ => Rfc5424Body::StructuredData {
                    sd_id,
                    message_field: None,
                },
            },
            bom: [
                BomPolicy::Never,
                BomPolicy::Always,
                BomPolicy::WhenNonAscii,
                BomPolicy::Never,
            ][usize::from(first >> 6)],
        };
        let rfc3164 = Rfc3164Encoder {
            header: header.clone(),
            body: if second & 1 == 0 {
                MessageBody::Kv(kv.clone())
            } else {
                MessageBody::Json
            },
            max_length: (second & 2 != 0).then_some(usize::from(third) * 8),
        };
        let prefix = [
            SyslogPrefix::Rfc3164,
            SyslogPrefix::Rfc5424,
            SyslogPrefix::None,
            SyslogPrefix::None,
        ][usize::from(second >> 2 & 3)];
        let (vendor, product, version) = (input.text(), input.text(), input.text());
        let event_fallback = input.text();
        let mut extensions = vec![
            mapped("src", "src"),
            mapped("suser", "user"),
            mapped("msg", "msg"),
            mapped("act", "action"),
            MappedKey {
                key: "cs1Label".into(),
                value: MappedValue::Constant(event_fallback.clone()),
            },
            mapped("cs1", "__tag__:region"),
        ];
        if second & 16 != 0 {
            extensions.insert(0, mapped("rt", "__time__"));
        }
        let cef_settings = CefSettings {
            prefix,
            header: header.clone(),
            version: (second >> 5) & 1,
            vendor: vendor.clone(),
            product: product.clone(),
            device_version: version.clone(),
            event_class_id: field_source("event", &event_fallback),
            name: field_source("msg", "log"),
            severity: field_source("sev", "5"),
            extensions,
        };
        let cef = CefEncoder::new(cef_settings.clone())
            .ok()
            .map(|encoder| (encoder, cef_settings));
        let delimiter = char::from(input.byte());
        let mut attributes = vec![
            mapped("src", "src"),
            mapped("usrName", "user"),
            mapped("sev", "sev"),
            mapped("msg", "msg"),
        ];
        if second & 64 != 0 {
            attributes.push(mapped("devTime", "__time__"));
        }
        let leef_settings = LeefSettings {
            prefix,
            header,
            version: if second & 128 == 0 {
                LeefVersion::V2
            } else {
                LeefVersion::V1
            },
            vendor,
            product,
            product_version: version,
            event_id: field_source("event", &event_fallback),
            delimiter,
            attributes,
        };
        let leef = LeefEncoder::new(leef_settings.clone())
            .ok()
            .map(|encoder| (encoder, leef_settings));
        let hec = HecEncoder {
            metadata: HecMetadata {
                host: MetaSource {
                    field: Some("host".into()),
                    fallback: Some("web01".into()),
                },
                source: MetaSource {
                    field: Some("__source__".into()),
                    fallback: None,
                },
                sourcetype: MetaSource {
                    field: None,
                    fallback: Some(input.text()),
                },
                index: MetaSource {
                    field: Some("__tag__:index".into()),
                    fallback: None,
                },
            },
            indexed_fields: vec!["__tag__:region".into(), "user".into(), "__topic__".into()],
            event_format: if third & 1 == 0 {
                HecEventFormat::Object
            } else {
                HecEventFormat::Text
            },
            embed_json: HashMap::new(),
        };
        Self {
            rfc5424,
            rfc3164,
            kv,
            separator,
            cef,
            leef,
            hec,
        }
    }

    fn check(mut self, record: &LogRecord<'_>) {
        check_rfc5424(&self.rfc5424, record);
        check_rfc3164(&self.rfc3164, record);
        check_kv(&self.kv, &self.separator, record);
        if let Some((encoder, settings)) = &self.cef {
            check_cef(encoder, settings, record);
        }
        if let Some((encoder, settings)) = &self.leef {
            check_leef(encoder, settings, record);
        }
        check_json(record);
        check_hec(&self.hec, record);
        // Fields holding JSON text go into the envelope as JSON.
        self.hec.embed_json.insert(
            record.topic.to_owned(),
            vec!["json".into(), "msg".into(), "__tag__:region".into()],
        );
        check_hec(&self.hec, record);
    }
}

fn encode(encoder: &dyn Encoder, record: &LogRecord<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    encoder.encode(record, &mut out);
    out
}

fn utf8<'a>(bytes: &'a [u8], format: &str) -> &'a str {
    std::str::from_utf8(bytes)
        .unwrap_or_else(|error| panic!("{format} output is not UTF-8: {error}"))
}

fn no_line_break(bytes: &[u8], format: &str) {
    assert!(
        !bytes.iter().any(|&byte| byte == b'\n' || byte == b'\r'),
        "raw line break in {format} output {:?}",
        String::from_utf8_lossy(bytes)
    );
}

/// A message may hold line breaks only where the framing keeps it one record.
fn one_record_when_framed(message: &[u8]) {
    let mut lf = Vec::new();
    Framing::Lf.frame(message, &mut lf);
    assert_eq!(lf.iter().filter(|&&byte| byte == b'\n').count(), 1);
    assert!(lf.ends_with(b"\n"));
    let mut counted = Vec::new();
    Framing::OctetCounting.frame(message, &mut counted);
    let expected = [message.len().to_string().as_bytes(), b" ", message].concat();
    assert_eq!(counted, expected);
}

fn check_rfc5424(encoder: &Rfc5424Encoder, record: &LogRecord<'_>) {
    let out = encode(encoder, record);
    let text = utf8(&out, "rfc5424");
    let parsed = syslog_rfc5424::parse_message(text)
        .unwrap_or_else(|error| panic!("rfc5424 output does not parse ({error}): {text:?}"));
    let prival = parsed.facility as u8 * 8 + parsed.severity as u8;
    assert_eq!(prival, encoder.header.pri.prival_of(record), "{text:?}");
    assert_eq!(parsed.timestamp, Some(i64::from(record.time)), "{text:?}");
    let message = match &encoder.body {
        Rfc5424Body::Message(body) => {
            let mut message = Vec::new();
            body.write(record, &mut message);
            message
        }
        Rfc5424Body::StructuredData { message_field, .. } => message_field
            .as_deref()
            .and_then(|field| record.lookup(field))
            .map(|message| message.as_bytes().to_vec())
            .unwrap_or_default(),
    };
    let bom = match encoder.bom {
        BomPolicy::Never => false,
        BomPolicy::Always => !message.is_empty(),
        BomPolicy::WhenNonAscii => !message.is_ascii(),
    };
    let expected = [if bom { BOM } else { b"" }, &message[..]].concat();
    assert_eq!(
        parsed.msg.as_bytes(),
        expected,
        "rfc5424 MSG differs: {text:?}"
    );
    one_record_when_framed(&out);
}

fn check_rfc3164(encoder: &Rfc3164Encoder, record: &LogRecord<'_>) {
    let out = encode(encoder, record);
    utf8(&out, "rfc3164");
    let uncapped = encode(
        &Rfc3164Encoder {
            max_length: None,
            ..encoder.clone()
        },
        record,
    );
    let mut pri = Vec::new();
    write_pri(encoder.header.pri.prival_of(record), &mut pri);
    assert!(
        uncapped.starts_with(&pri),
        "rfc3164 does not start with its PRI"
    );
    assert!(uncapped.starts_with(&out), "the cap changed the kept part");
    if let Some(max_length) = encoder.max_length {
        assert!(out.len() <= max_length, "rfc3164 over its cap");
        let cut = uncapped.len() > max_length;
        assert!(!cut || out.len() + 3 >= max_length, "rfc3164 cut too short");
        assert!(cut || out == uncapped);
    }
    one_record_when_framed(&out);
}

fn check_kv(format: &KvFormat, separator: &str, record: &LogRecord<'_>) {
    let mut body = Vec::new();
    format.write(record, &mut body);
    let text = utf8(&body, "kv");
    let expected: Vec<(String, String)> = flattened(record)
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    assert_eq!(
        kv::parse(text, separator),
        expected,
        "kv body {text:?} with separator {separator:?} does not split back"
    );
    one_record_when_framed(&body);
}

fn syslog_prefix(prefix: SyslogPrefix, header: &HeaderFields, record: &LogRecord<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    prefix.write(header, record, &mut out);
    out
}

fn check_cef(encoder: &CefEncoder, settings: &CefSettings, record: &LogRecord<'_>) {
    let out = encode(encoder, record);
    no_line_break(&out, "cef");
    let prefix = syslog_prefix(settings.prefix, &settings.header, record);
    let text = utf8(
        out.strip_prefix(&prefix[..])
            .expect("cef starts with its syslog header"),
        "cef",
    );
    assert!(
        text.starts_with(&format!("CEF:{}|", settings.version)),
        "{text:?}"
    );
    let mut separators = 0;
    let mut extension_start = None;
    let mut characters = text.char_indices();
    while let Some((index, character)) = characters.next() {
        match character {
            '\\' => assert!(
                matches!(characters.next(), Some((_, '\\' | '|'))),
                "stray backslash in the cef header {text:?}"
            ),
            '|' => {
                separators += 1;
                if separators == 7 {
                    extension_start = Some(index + 1);
                    break;
                }
            }
            _ => {}
        }
    }
    let extension =
        &text[extension_start.unwrap_or_else(|| panic!("fewer than 7 separators: {text:?}"))..];
    let mut keys = Vec::new();
    let mut characters = extension.char_indices();
    while let Some((index, character)) = characters.next() {
        match character {
            '\\' => assert!(
                matches!(characters.next(), Some((_, '\\' | '=' | 'n' | 'r'))),
                "stray backslash in the cef extension {extension:?}"
            ),
            '=' => {
                let before = &extension[..index];
                let start = before
                    .rfind(|c: char| !c.is_ascii_alphanumeric())
                    .map_or(0, |at| at + 1);
                assert!(
                    start == 0 || before[..start].ends_with(' '),
                    "cef key not after a space: {extension:?}"
                );
                keys.push(&before[start..]);
            }
            _ => {}
        }
    }
    let mut expected: Vec<&str> = Vec::new();
    if !settings.extensions.iter().any(|mapped| mapped.key == "rt") {
        expected.push("rt");
    }
    expected.extend(
        settings
            .extensions
            .iter()
            .filter(|mapped| mapped.resolve(record).is_some())
            .map(|mapped| mapped.key.as_str()),
    );
    assert_eq!(keys, expected, "cef extension keys of {extension:?}");
}

fn check_leef(encoder: &LeefEncoder, settings: &LeefSettings, record: &LogRecord<'_>) {
    let out = encode(encoder, record);
    no_line_break(&out, "leef");
    let prefix = syslog_prefix(settings.prefix, &settings.header, record);
    let text = utf8(
        out.strip_prefix(&prefix[..])
            .expect("leef starts with its syslog header"),
        "leef",
    );
    let (fields, version, delimiter) = match settings.version {
        LeefVersion::V1 => (6, "LEEF:1.0", '\t'),
        LeefVersion::V2 => (7, "LEEF:2.0", settings.delimiter),
    };
    let parts: Vec<&str> = text.splitn(fields, '|').collect();
    assert_eq!(parts.len(), fields, "leef header fields of {text:?}");
    assert_eq!(parts[0], version);
    if settings.version == LeefVersion::V2 {
        let declared = if delimiter.is_ascii_graphic() {
            delimiter.to_string()
        } else {
            format!("x{:02X}", u32::from(delimiter))
        };
        assert_eq!(parts[5], declared, "declared delimiter of {text:?}");
    }
    let attributes = parts[fields - 1];
    let mut expected: Vec<&str> = settings
        .attributes
        .iter()
        .filter(|mapped| mapped.resolve(record).is_some())
        .map(|mapped| mapped.key.as_str())
        .collect();
    if !settings
        .attributes
        .iter()
        .any(|mapped| mapped.key == "devTime")
    {
        expected.push("devTime");
    }
    let keys: Vec<&str> = if attributes.is_empty() {
        Vec::new()
    } else {
        attributes
            .split(delimiter)
            .map(|pair| {
                pair.split_once('=')
                    .unwrap_or_else(|| panic!("leef attribute without `=`: {attributes:?}"))
                    .0
            })
            .collect()
    };
    assert_eq!(keys, expected, "leef attributes of {text:?}");
}

fn flat_json(value: FlatValue<'_>) -> serde_json::Value {
    match value {
        FlatValue::Integer(number) => number.into(),
        FlatValue::NumericText(number) => number.to_string().into(),
        FlatValue::Text(text) => text.into(),
    }
}

fn parse_object(bytes: &[u8], format: &str) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::from_slice(bytes) {
        Ok(serde_json::Value::Object(object)) => object,
        other => panic!(
            "{format} output is not a JSON object ({other:?}): {:?}",
            String::from_utf8_lossy(bytes)
        ),
    }
}

fn check_json(record: &LogRecord<'_>) {
    let out = encode(&FlatJsonEncoder, record);
    no_line_break(&out, "json");
    let object = parse_object(&out, "json");
    // Later pairs win, in the output and here.
    let mut expected = HashMap::new();
    for (key, value) in flattened(record) {
        expected.insert(key.to_string(), flat_json(value));
    }
    assert_eq!(object.len(), expected.len(), "json keys");
    for (key, value) in &expected {
        assert_eq!(object.get(key), Some(value), "json value of {key:?}");
    }
}

fn check_hec(encoder: &HecEncoder, record: &LogRecord<'_>) {
    let mut out = Vec::new();
    encoder.encode_event(record, &mut out);
    no_line_break(&out, "hec event");
    let envelope = parse_object(&out, "hec event");
    let time = envelope
        .get("time")
        .and_then(serde_json::Value::as_f64)
        .expect("numeric time");
    assert_eq!(time.floor() as u64, u64::from(record.time), "hec time");
    let event = envelope.get("event").expect("event");
    match encoder.event_format {
        HecEventFormat::Object => assert!(event.is_object(), "event is not an object"),
        HecEventFormat::Text => {
            let text = event.as_str().expect("event text");
            parse_object(text.as_bytes(), "hec event text");
        }
    }
    for key in ["host", "source", "sourcetype", "index"] {
        assert!(envelope.get(key).is_none_or(serde_json::Value::is_string));
    }
    if let Some(fields) = envelope.get("fields") {
        let fields = fields.as_object().expect("fields object");
        assert!(fields.values().all(serde_json::Value::is_string));
    }
    let mut raw = Vec::new();
    encoder.encode_raw(record, &mut raw);
    no_line_break(&raw, "hec raw");
    parse_object(&raw, "hec raw");
}

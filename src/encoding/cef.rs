//! ArcSight CEF: `CEF:Version|Vendor|Product|Version|EventClassID|Name|Severity|Extension`,
//! optionally behind a syslog header. Header values escape `\` and `|`; extension values escape
//! `\`, `=` and line breaks (`\n`, `\r`); pipes stay literal in extensions.

use super::field::{check_word_key, InvalidSetting, MappedKey, ValueSource};
use super::header::{HeaderFields, SyslogPrefix};
use super::timestamp::write_epoch_millis;
use super::Encoder;
use crate::model::LogRecord;

/// Header length limits of the CEF standard, in characters.
const VENDOR_MAX: usize = 63;
const PRODUCT_MAX: usize = 63;
const VERSION_MAX: usize = 31;
const EVENT_CLASS_MAX: usize = 1023;
const NAME_MAX: usize = 512;

/// Settings of a CEF encoder.
#[derive(Debug, Clone)]
pub struct CefSettings {
    /// Syslog header before `CEF:`.
    pub prefix: SyslogPrefix,
    /// Fields of that header.
    pub header: HeaderFields,
    /// `0` (CEF 0.x) or `1` (CEF 1.x).
    pub version: u8,
    /// Device Vendor.
    pub vendor: String,
    /// Device Product.
    pub product: String,
    /// Device Version.
    pub device_version: String,
    /// Device Event Class ID.
    pub event_class_id: ValueSource,
    /// Name.
    pub name: ValueSource,
    /// Severity: `0`–`10` or `Unknown`, `Low`, `Medium`, `High`, `Very-High`. A field value
    /// that is none of these falls back to the static value.
    pub severity: ValueSource,
    /// Extension keys in output order. `rt` (event time, epoch ms) is added first unless mapped.
    pub extensions: Vec<MappedKey>,
}

/// Encodes logs as CEF events.
#[derive(Debug, Clone)]
pub struct CefEncoder {
    prefix: SyslogPrefix,
    header: HeaderFields,
    /// `CEF:V|vendor|product|version|`, escaped once at build time.
    fixed_header: Vec<u8>,
    event_class_id: ValueSource,
    name: ValueSource,
    severity: ValueSource,
    extensions: Vec<MappedKey>,
    /// Character limit of each extension's value (same order as `extensions`).
    extension_limits: Vec<usize>,
    add_receipt_time: bool,
}

/// ArcSight schema length limits of common extension keys, in characters; other keys are not
/// cut.
fn extension_limit(key: &str) -> usize {
    match key {
        "act" | "outcome" => 63,
        "app" | "proto" => 31,
        "externalId" => 40,
        "dvchost" => 100,
        "cs1" | "cs2" | "cs3" | "cs4" | "cs5" | "cs6" => 4000,
        "msg" | "request" | "cat" | "shost" | "dhost" | "suser" | "duser" | "fname"
        | "filePath" | "cs1Label" | "cs2Label" | "cs3Label" | "cs4Label" | "cs5Label"
        | "cs6Label" | "cn1Label" | "cn2Label" | "cn3Label" => 1023,
        _ => usize::MAX,
    }
}

impl CefEncoder {
    /// Checks the settings and prepares the constant part of the header.
    ///
    /// # Errors
    ///
    /// Names the setting: an unknown version, an invalid static severity, or an extension key
    /// that is not one alphanumeric word.
    pub fn new(settings: CefSettings) -> Result<Self, InvalidSetting> {
        if settings.version > 1 {
            return Err(InvalidSetting::new("cef.version", "must be 0 or 1"));
        }
        if !is_cef_severity(&settings.severity.fallback) {
            return Err(InvalidSetting::new(
                "cef.severity",
                format!(
                    "`{}` is not 0-10, Unknown, Low, Medium, High or Very-High",
                    settings.severity.fallback
                ),
            ));
        }
        for mapped in &settings.extensions {
            check_word_key("cef.extensions", &mapped.key)?;
        }
        let mut fixed_header = format!("CEF:{}|", settings.version).into_bytes();
        for (value, max) in [
            (&settings.vendor, VENDOR_MAX),
            (&settings.product, PRODUCT_MAX),
            (&settings.device_version, VERSION_MAX),
        ] {
            write_header_value(value, max, &mut fixed_header);
            fixed_header.push(b'|');
        }
        let add_receipt_time = !settings.extensions.iter().any(|m| m.key == "rt");
        let extension_limits = settings
            .extensions
            .iter()
            .map(|mapped| extension_limit(&mapped.key))
            .collect();
        Ok(Self {
            prefix: settings.prefix,
            header: settings.header,
            fixed_header,
            event_class_id: settings.event_class_id,
            name: settings.name,
            severity: settings.severity,
            extensions: settings.extensions,
            extension_limits,
            add_receipt_time,
        })
    }
}

impl Encoder for CefEncoder {
    fn encode(&self, record: &LogRecord<'_>, out: &mut Vec<u8>) {
        self.prefix.write(&self.header, record, out);
        out.extend_from_slice(&self.fixed_header);
        write_header_value(self.event_class_id.resolve(record), EVENT_CLASS_MAX, out);
        out.push(b'|');
        write_header_value(self.name.resolve(record), NAME_MAX, out);
        out.push(b'|');
        let severity = Some(self.severity.resolve(record))
            .filter(|value| is_cef_severity(value))
            .unwrap_or(&self.severity.fallback);
        out.extend_from_slice(severity.as_bytes());
        out.push(b'|');
        let mut first = true;
        if self.add_receipt_time {
            out.extend_from_slice(b"rt=");
            write_epoch_millis(record.time, record.time_ns, out);
            first = false;
        }
        for (mapped, &limit) in self.extensions.iter().zip(&self.extension_limits) {
            let Some(value) = mapped.resolve(record) else {
                continue;
            };
            let value = truncate_chars(value.trim_matches(' '), limit);
            if !first {
                out.push(b' ');
            }
            first = false;
            out.extend_from_slice(mapped.key.as_bytes());
            out.push(b'=');
            write_extension_value(value, out);
        }
    }
}

/// The first `max_chars` characters of `value`.
fn truncate_chars(value: &str, max_chars: usize) -> &str {
    if value.len() <= max_chars {
        return value;
    }
    // Mostly ASCII: then the cut lies at byte `max_chars`, which starts a character.
    if value.as_bytes()[..max_chars].is_ascii() {
        return &value[..max_chars];
    }
    value
        .char_indices()
        .nth(max_chars)
        .map_or(value, |(end, _)| &value[..end])
}

fn is_cef_severity(value: &str) -> bool {
    matches!(value, "Unknown" | "Low" | "Medium" | "High" | "Very-High")
        || value.parse::<u8>().is_ok_and(|number| number <= 10)
}

/// The four special bytes of one part of a CEF event and what each is written as.
struct Escapes {
    bytes: [u8; 4],
    replacements: [&'static [u8]; 4],
}

/// Header values: `\` and `|` escaped, CR/LF replaced by a space.
const HEADER_ESCAPES: Escapes = Escapes {
    bytes: [b'\\', b'|', b'\n', b'\r'],
    replacements: [b"\\\\", b"\\|", b" ", b" "],
};

/// Extension values: `\` and `=` escaped, CR/LF as the two characters `\r`/`\n`.
const EXTENSION_ESCAPES: Escapes = Escapes {
    bytes: [b'\\', b'=', b'\n', b'\r'],
    replacements: [b"\\\\", b"\\=", b"\\n", b"\\r"],
};

impl Escapes {
    /// Writes `value` with every special byte replaced. The clean runs between special bytes
    /// are found with SIMD searches (`memchr3` for three of the bytes, `memchr` for the
    /// fourth), each searched again only once passed, and copied whole.
    fn write(&self, value: &[u8], out: &mut Vec<u8>) {
        let [a, b, c, d] = self.bytes;
        let next_three = |from: usize| memchr::memchr3(a, b, c, &value[from..]).map(|at| at + from);
        let next_fourth = |from: usize| memchr::memchr(d, &value[from..]).map(|at| at + from);
        let (mut three, mut fourth) = (next_three(0), next_fourth(0));
        let mut clean_from = 0;
        loop {
            let at = match (three, fourth) {
                (None, None) => break,
                (Some(at), None) | (None, Some(at)) => at,
                (Some(x), Some(y)) => x.min(y),
            };
            out.extend_from_slice(&value[clean_from..at]);
            out.extend_from_slice(self.replacement(value[at]));
            clean_from = at + 1;
            if three == Some(at) {
                three = next_three(clean_from);
            } else {
                fourth = next_fourth(clean_from);
            }
        }
        out.extend_from_slice(&value[clean_from..]);
    }

    fn replacement(&self, special: u8) -> &'static [u8] {
        let index = self.bytes.iter().position(|&byte| byte == special);
        self.replacements[index.unwrap_or(0)]
    }
}

/// Writes a header value: `\` and `|` escaped, CR/LF replaced by a space, at most `max_chars`.
fn write_header_value(value: &str, max_chars: usize, out: &mut Vec<u8>) {
    HEADER_ESCAPES.write(truncate_chars(value, max_chars).as_bytes(), out);
}

/// Writes an extension value: `\` and `=` escaped, CR/LF as the two characters `\r`/`\n`.
fn write_extension_value(value: &str, out: &mut Vec<u8>) {
    EXTENSION_ESCAPES.write(value.as_bytes(), out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::field::MappedValue;
    use crate::model::RecordsBuilder;

    fn field(key: &str, name: &str) -> MappedKey {
        MappedKey {
            key: key.into(),
            value: MappedValue::Field(name.into()),
        }
    }

    fn settings() -> CefSettings {
        CefSettings {
            prefix: SyslogPrefix::None,
            header: HeaderFields::default(),
            version: 0,
            vendor: "Acme".into(),
            product: "Gate|Way".into(),
            device_version: "2.1".into(),
            event_class_id: ValueSource::fixed("4711"),
            name: ValueSource {
                field: Some("title".into()),
                fallback: "event".into(),
            },
            severity: ValueSource {
                field: Some("sev".into()),
                fallback: "5".into(),
            },
            extensions: vec![
                MappedKey {
                    key: "rt".into(),
                    value: MappedValue::Field("missing".into()),
                },
                field("src", "ip"),
                field("suser", "user"),
                field("act", "action"),
                field("msg", "message"),
                MappedKey {
                    key: "cs1Label".into(),
                    value: MappedValue::Constant("policy".into()),
                },
                field("cs1", "policy"),
            ],
        }
    }

    #[test]
    fn matches_the_spec_example() {
        let records = RecordsBuilder::new()
            .log(
                1_709_622_489,
                None,
                &[
                    ("title", "Login failed for a\\b"),
                    ("sev", "7"),
                    ("ip", "10.0.0.5"),
                    ("user", "bob"),
                    ("action", "deny"),
                    ("message", "bad a=b\nsecond line"),
                    ("policy", "default"),
                ],
            )
            .build();
        let mut out = Vec::new();
        CefEncoder::new(settings())
            .unwrap()
            .encode(&records.get(0).unwrap(), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "CEF:0|Acme|Gate\\|Way|2.1|4711|Login failed for a\\\\b|7|src=10.0.0.5 suser=bob act=deny msg=bad a\\=b\\nsecond line cs1Label=policy cs1=default"
        );
    }

    #[test]
    fn keeps_every_pipe_without_extensions_and_adds_receipt_time() {
        let mut settings = settings();
        settings.extensions.clear();
        settings.prefix = SyslogPrefix::Rfc3164;
        settings.header.hostname = ValueSource::fixed("web01");
        let records = RecordsBuilder::new()
            .log(
                1_709_622_489,
                Some(5_000_000),
                &[("sev", "loud"), ("title", "a\nb")],
            )
            .build();
        let mut out = Vec::new();
        CefEncoder::new(settings)
            .unwrap()
            .encode(&records.get(0).unwrap(), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<14>Mar  5 07:08:09 web01 CEF:0|Acme|Gate\\|Way|2.1|4711|a b|5|rt=1709622489005"
        );
    }

    #[test]
    fn known_extension_values_are_cut_to_the_schema_limit_by_characters() {
        let long_action = "é".repeat(100);
        let long_custom = "x".repeat(5000);
        let records = RecordsBuilder::new()
            .log(
                1,
                None,
                &[
                    ("action", long_action.as_str()),
                    ("policy", long_custom.as_str()),
                ],
            )
            .build();
        let mut settings = settings();
        settings.extensions = vec![field("act", "action"), field("VendorPolicyText", "policy")];
        let mut out = Vec::new();
        CefEncoder::new(settings)
            .unwrap()
            .encode(&records.get(0).unwrap(), &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(&format!(" act={} ", "é".repeat(63))),
            "{text}"
        );
        assert!(text.ends_with(&format!("VendorPolicyText={long_custom}")));
    }

    /// The character-by-character definitions the fast writers must match.
    fn reference_escape(value: &str, escape: impl Fn(char) -> Option<&'static str>) -> String {
        value
            .chars()
            .map(|character| escape(character).map_or_else(|| character.to_string(), Into::into))
            .collect()
    }

    fn reference_header_value(value: &str, max_chars: usize) -> String {
        let kept: String = value.chars().take(max_chars).collect();
        reference_escape(&kept, |character| match character {
            '\\' => Some("\\\\"),
            '|' => Some("\\|"),
            '\r' | '\n' => Some(" "),
            _ => None,
        })
    }

    fn reference_extension_value(value: &str) -> String {
        reference_escape(value, |character| match character {
            '\\' => Some("\\\\"),
            '=' => Some("\\="),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            _ => None,
        })
    }

    fn written(write: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        write(&mut out);
        String::from_utf8(out).unwrap()
    }

    proptest::proptest! {
        #[test]
        fn fast_writers_match_the_character_definitions(
            value in "[\\\\|=\r\na-zé😀 ]{0,80}|\\PC{0,80}",
            max_chars in 0usize..90,
        ) {
            proptest::prop_assert_eq!(
                written(|out| write_header_value(&value, max_chars, out)),
                reference_header_value(&value, max_chars)
            );
            proptest::prop_assert_eq!(
                written(|out| write_extension_value(&value, out)),
                reference_extension_value(&value)
            );
            let kept: String = value.chars().take(max_chars).collect();
            proptest::prop_assert_eq!(truncate_chars(&value, max_chars), kept.as_str());
        }
    }

    #[test]
    fn rejects_bad_settings() {
        let mut bad_key = settings();
        bad_key.extensions.push(field("not a key", "x"));
        assert_eq!(CefEncoder::new(bad_key).unwrap_err().key, "cef.extensions");
        let mut bad_severity = settings();
        bad_severity.severity.fallback = "11".into();
        assert_eq!(
            CefEncoder::new(bad_severity).unwrap_err().key,
            "cef.severity"
        );
    }
}

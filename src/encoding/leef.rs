//! IBM QRadar LEEF 1.0 and 2.0: `LEEF:1.0|Vendor|Product|Version|EventID|k=v<TAB>k=v` and
//! `LEEF:2.0|Vendor|Product|Version|EventID|DELIM|k=vDELIMk=v`, optionally behind a syslog
//! header. LEEF has no escaping: the sender replaces `|` and line breaks in header values,
//! and the delimiter and line breaks in attribute values, with a space.

use serde::Deserialize;

use super::field::{check_word_key, InvalidSetting, MappedKey, ValueSource};
use super::header::{HeaderFields, SyslogPrefix};
use super::timestamp::write_epoch_millis;
use super::Encoder;
use crate::model::LogRecord;

/// EventID limit, in characters.
const EVENT_ID_MAX: usize = 255;

/// The LEEF version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum LeefVersion {
    /// LEEF 1.0: attributes separated by TAB.
    #[serde(rename = "1.0")]
    V1,
    /// LEEF 2.0: the delimiter is declared in the header (the default).
    #[default]
    #[serde(rename = "2.0")]
    V2,
}

/// Settings of a LEEF encoder.
#[derive(Debug, Clone)]
pub struct LeefSettings {
    /// Syslog header before `LEEF:`.
    pub prefix: SyslogPrefix,
    /// Fields of that header.
    pub header: HeaderFields,
    /// LEEF version.
    pub version: LeefVersion,
    /// Vendor.
    pub vendor: String,
    /// Product.
    pub product: String,
    /// Product version.
    pub product_version: String,
    /// EventID (stable; QRadar maps it to QIDs).
    pub event_id: ValueSource,
    /// Attribute delimiter of LEEF 2.0 (ignored for 1.0, which always uses TAB): one ASCII
    /// character other than letters, digits, space, `|`, `=` and line breaks.
    pub delimiter: char,
    /// Attributes in output order. `devTime` (event time, epoch ms) is added last unless
    /// mapped.
    pub attributes: Vec<MappedKey>,
}

/// Encodes logs as LEEF events.
#[derive(Debug, Clone)]
pub struct LeefEncoder {
    prefix: SyslogPrefix,
    header: HeaderFields,
    /// `LEEF:V|vendor|product|version|`, sanitised once at build time.
    fixed_header: Vec<u8>,
    /// `DELIM|` for 2.0, empty for 1.0.
    delimiter_field: Vec<u8>,
    delimiter: u8,
    event_id: ValueSource,
    attributes: Vec<MappedKey>,
    add_device_time: bool,
}

impl LeefEncoder {
    /// Checks the settings and prepares the constant part of the header.
    ///
    /// # Errors
    ///
    /// Names the setting: an unusable delimiter or an attribute key that is not one
    /// alphanumeric word.
    pub fn new(settings: LeefSettings) -> Result<Self, InvalidSetting> {
        for mapped in &settings.attributes {
            check_word_key("leef.attributes", &mapped.key)?;
        }
        let (version, delimiter, delimiter_field) = match settings.version {
            LeefVersion::V1 => ("1.0", b'\t', Vec::new()),
            LeefVersion::V2 => {
                // Values have the delimiter replaced by a space, so it cannot be a space;
                // keys are letters and digits, so it cannot be one of those.
                let delimiter = u8::try_from(settings.delimiter)
                    .ok()
                    .filter(|b| {
                        b.is_ascii()
                            && !b.is_ascii_alphanumeric()
                            && !matches!(b, b' ' | b'|' | b'=' | b'\n' | b'\r' | 0)
                    })
                    .ok_or_else(|| {
                        InvalidSetting::new(
                            "leef.delimiter",
                            "must be one ASCII character other than letters, digits, space, `|`, `=` and line breaks",
                        )
                    })?;
                let mut field = if delimiter.is_ascii_graphic() {
                    vec![delimiter]
                } else {
                    // Non-printing delimiters are declared in hex, e.g. `x09`.
                    format!("x{delimiter:02X}").into_bytes()
                };
                field.push(b'|');
                ("2.0", delimiter, field)
            }
        };
        let mut fixed_header = format!("LEEF:{version}|").into_bytes();
        for value in [
            &settings.vendor,
            &settings.product,
            &settings.product_version,
        ] {
            write_header_value(value, usize::MAX, &mut fixed_header);
            fixed_header.push(b'|');
        }
        let add_device_time = !settings.attributes.iter().any(|m| m.key == "devTime");
        Ok(Self {
            prefix: settings.prefix,
            header: settings.header,
            fixed_header,
            delimiter_field,
            delimiter,
            event_id: settings.event_id,
            attributes: settings.attributes,
            add_device_time,
        })
    }
}

impl Encoder for LeefEncoder {
    fn encode(&self, record: &LogRecord<'_>, out: &mut Vec<u8>) {
        self.prefix.write(&self.header, record, out);
        out.extend_from_slice(&self.fixed_header);
        write_header_value(self.event_id.resolve(record), EVENT_ID_MAX, out);
        out.push(b'|');
        out.extend_from_slice(&self.delimiter_field);
        let mut first = true;
        for mapped in &self.attributes {
            let Some(value) = mapped.resolve(record) else {
                continue;
            };
            if !first {
                out.push(self.delimiter);
            }
            first = false;
            out.extend_from_slice(mapped.key.as_bytes());
            out.push(b'=');
            let start = out.len();
            out.extend_from_slice(value.as_bytes());
            for byte in &mut out[start..] {
                if *byte == self.delimiter || *byte == b'\n' || *byte == b'\r' {
                    *byte = b' ';
                }
            }
        }
        if self.add_device_time {
            if !first {
                out.push(self.delimiter);
            }
            out.extend_from_slice(b"devTime=");
            write_epoch_millis(record.time, record.time_ns, out);
        }
    }
}

/// Writes a header value with `|` and line breaks replaced by a space, at most `max_chars`.
fn write_header_value(value: &str, max_chars: usize, out: &mut Vec<u8>) {
    let mut buffer = [0u8; 4];
    for character in value.chars().take(max_chars) {
        let character = match character {
            '|' | '\r' | '\n' => ' ',
            other => other,
        };
        out.extend_from_slice(character.encode_utf8(&mut buffer).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::field::MappedValue;
    use crate::encoding::severity::{PriSource, Severity};
    use crate::model::RecordsBuilder;

    fn field(key: &str, name: &str) -> MappedKey {
        MappedKey {
            key: key.into(),
            value: MappedValue::Field(name.into()),
        }
    }

    fn settings(version: LeefVersion, delimiter: char) -> LeefSettings {
        LeefSettings {
            prefix: SyslogPrefix::None,
            header: HeaderFields::default(),
            version,
            vendor: "Acme".into(),
            product: "Gate".into(),
            product_version: "2.1".into(),
            event_id: ValueSource::fixed("4711"),
            delimiter,
            attributes: vec![
                field("src", "src"),
                field("dst", "dst"),
                field("sev", "sev"),
                field("usrName", "user"),
                field("missing", "nothing"),
            ],
        }
    }

    fn encode(settings: LeefSettings, fields: &[(&str, &str)]) -> String {
        let records = RecordsBuilder::new()
            .log(1_709_622_489, Some(123_000_000), fields)
            .build();
        let mut out = Vec::new();
        LeefEncoder::new(settings)
            .unwrap()
            .encode(&records.get(0).unwrap(), &mut out);
        String::from_utf8(out).unwrap()
    }

    const FIELDS: [(&str, &str); 4] = [
        ("src", "10.0.0.5"),
        ("dst", "10.0.0.9"),
        ("sev", "7"),
        ("user", "bob"),
    ];

    #[test]
    fn leef_1_matches_the_spec_example() {
        assert_eq!(
            encode(settings(LeefVersion::V1, '^'), &FIELDS),
            "LEEF:1.0|Acme|Gate|2.1|4711|src=10.0.0.5\tdst=10.0.0.9\tsev=7\tusrName=bob\tdevTime=1709622489123"
        );
    }

    #[test]
    fn leef_2_declares_the_delimiter_and_replaces_it_in_values() {
        let mut settings = settings(LeefVersion::V2, '^');
        settings.prefix = SyslogPrefix::Rfc3164;
        settings.header.pri = PriSource {
            severity: Severity::from_code(5).unwrap(),
            ..PriSource::default()
        };
        settings.header.hostname = ValueSource::fixed("web01");
        settings.vendor = "Ac|me".into();
        let mut fields = FIELDS.to_vec();
        fields[3] = ("user", "b^o\nb");
        assert_eq!(
            encode(settings, &fields),
            "<13>Mar  5 07:08:09 web01 LEEF:2.0|Ac me|Gate|2.1|4711|^|src=10.0.0.5^dst=10.0.0.9^sev=7^usrName=b o b^devTime=1709622489123"
        );
        let tab = encode(self::settings(LeefVersion::V2, '\t'), &FIELDS);
        assert!(
            tab.starts_with("LEEF:2.0|Acme|Gate|2.1|4711|x09|src=10.0.0.5\tdst="),
            "{tab}"
        );
    }

    #[test]
    fn rejects_bad_delimiters_and_keys() {
        assert_eq!(
            LeefEncoder::new(settings(LeefVersion::V2, '|'))
                .unwrap_err()
                .key,
            "leef.delimiter"
        );
        assert_eq!(
            LeefEncoder::new(settings(LeefVersion::V2, 'é'))
                .unwrap_err()
                .key,
            "leef.delimiter"
        );
        // A space cannot be replaced by a space in values, and letters or digits would split
        // keys.
        for delimiter in [' ', 'e', 'Z', '7'] {
            assert_eq!(
                LeefEncoder::new(settings(LeefVersion::V2, delimiter))
                    .unwrap_err()
                    .key,
                "leef.delimiter",
                "{delimiter:?}"
            );
        }
        let mut bad = settings(LeefVersion::V1, '^');
        bad.attributes.push(field("a-b", "x"));
        assert_eq!(LeefEncoder::new(bad).unwrap_err().key, "leef.attributes");
    }
}

//! The syslog header shared by every syslog format: PRI, timestamp, HOSTNAME, APP-NAME, PROCID
//! and MSGID chosen per log, written in RFC 5424 or RFC 3164 form, plus the message bodies
//! (`kv` or flattened JSON) that follow it.

use serde::Deserialize;

use super::field::ValueSource;
use super::json::write_flat_object;
use super::kv::KvFormat;
use super::severity::{write_pri, PriSource};
use super::text::{write_printable_ascii, NIL};
use super::timestamp::{write_rfc3164, write_rfc3339, TimePrecision, TimeZone};
use crate::model::LogRecord;

/// RFC 5424 length limits, in characters.
const HOSTNAME_MAX: usize = 255;
const APP_NAME_MAX: usize = 48;
const PROCID_MAX: usize = 128;
const MSGID_MAX: usize = 32;
/// RFC 3164 TAG limit.
const TAG_MAX: usize = 32;

/// How the header fields of each log are chosen.
#[derive(Debug, Clone, Default)]
pub struct HeaderFields {
    /// Facility and severity.
    pub pri: PriSource,
    /// Zone of the timestamp.
    pub zone: TimeZone,
    /// Fraction digits of the RFC 5424 timestamp.
    pub precision: TimePrecision,
    /// HOSTNAME.
    pub hostname: ValueSource,
    /// APP-NAME (the TAG in RFC 3164).
    pub app_name: ValueSource,
    /// PROCID.
    pub procid: ValueSource,
    /// MSGID (RFC 5424 only).
    pub msgid: ValueSource,
}

impl HeaderFields {
    /// Writes `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID ` (with the trailing space).
    pub fn write_rfc5424(&self, record: &LogRecord<'_>, out: &mut Vec<u8>) {
        write_pri(self.pri.prival_of(record), out);
        out.extend_from_slice(b"1 ");
        write_rfc3339(record.time, record.time_ns, self.precision, self.zone, out);
        out.push(b' ');
        write_printable_ascii(self.hostname.resolve(record), HOSTNAME_MAX, out);
        out.push(b' ');
        write_printable_ascii(self.app_name.resolve(record), APP_NAME_MAX, out);
        out.push(b' ');
        write_printable_ascii(self.procid.resolve(record), PROCID_MAX, out);
        out.push(b' ');
        write_printable_ascii(self.msgid.resolve(record), MSGID_MAX, out);
        out.push(b' ');
    }

    /// Writes `<PRI>Mmm dd hh:mm:ss HOSTNAME ` (with the trailing space).
    pub fn write_rfc3164(&self, record: &LogRecord<'_>, out: &mut Vec<u8>) {
        write_pri(self.pri.prival_of(record), out);
        write_rfc3164(record.time, self.zone, out);
        out.push(b' ');
        write_printable_ascii(self.hostname.resolve(record), HOSTNAME_MAX, out);
        out.push(b' ');
    }

    /// Writes the RFC 3164 `TAG[PID]: ` (or `TAG: ` without a PROCID). The TAG keeps printable
    /// ASCII except `[`, `]` and `:`, at most 32 characters.
    pub fn write_rfc3164_tag(&self, record: &LogRecord<'_>, out: &mut Vec<u8>) {
        let tag = self.app_name.resolve(record);
        if tag.is_empty() {
            out.extend_from_slice(NIL);
        } else {
            for character in tag.chars().take(TAG_MAX) {
                let byte = u8::try_from(character)
                    .ok()
                    .filter(|b| b.is_ascii_graphic() && !matches!(b, b'[' | b']' | b':'));
                out.push(byte.unwrap_or(b'_'));
            }
        }
        let procid = self.procid.resolve(record);
        if !procid.is_empty() {
            out.push(b'[');
            write_printable_ascii(procid, PROCID_MAX, out);
            out.push(b']');
        }
        out.extend_from_slice(b": ");
    }
}

/// The syslog header written before a CEF or LEEF payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyslogPrefix {
    /// `<PRI>Mmm dd hh:mm:ss HOSTNAME ` (the conventional CEF/LEEF carriage; the default).
    #[default]
    Rfc3164,
    /// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - `.
    Rfc5424,
    /// No header: the payload alone.
    None,
}

impl SyslogPrefix {
    /// Writes the prefix for `record`.
    pub fn write(self, header: &HeaderFields, record: &LogRecord<'_>, out: &mut Vec<u8>) {
        match self {
            SyslogPrefix::Rfc3164 => header.write_rfc3164(record, out),
            SyslogPrefix::Rfc5424 => {
                header.write_rfc5424(record, out);
                out.extend_from_slice(b"- ");
            }
            SyslogPrefix::None => {}
        }
    }
}

/// The free-text part of a syslog message.
#[derive(Debug, Clone)]
pub enum MessageBody {
    /// The flattened pairs as `k=v` joined by a separator.
    Kv(KvFormat),
    /// The flattened pairs as one JSON object.
    Json,
}

impl MessageBody {
    /// Appends the body of `record`.
    pub fn write(&self, record: &LogRecord<'_>, out: &mut Vec<u8>) {
        match self {
            MessageBody::Kv(format) => format.write(record, out),
            MessageBody::Json => write_flat_object(record, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::severity::{Facility, Severity};
    use crate::model::RecordsBuilder;

    #[test]
    fn rfc3164_tag_is_sanitised_and_carries_the_pid() {
        let records = RecordsBuilder::new()
            .log(
                1_709_622_489,
                None,
                &[("app", "my app:[x]"), ("pid", "4211")],
            )
            .build();
        let header = HeaderFields {
            pri: PriSource {
                facility: Facility::from_code(4).unwrap(),
                severity: Severity::from_code(2).unwrap(),
                ..PriSource::default()
            },
            hostname: ValueSource::fixed("web01"),
            app_name: ValueSource {
                field: Some("app".into()),
                fallback: String::new(),
            },
            procid: ValueSource {
                field: Some("pid".into()),
                fallback: String::new(),
            },
            ..HeaderFields::default()
        };
        let mut out = Vec::new();
        let record = records.get(0).unwrap();
        header.write_rfc3164(&record, &mut out);
        header.write_rfc3164_tag(&record, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<34>Mar  5 07:08:09 web01 my_app__x_[4211]: "
        );
    }
}

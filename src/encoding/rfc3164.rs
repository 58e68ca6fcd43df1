//! RFC 3164 ("BSD") messages: `<PRI>Mmm dd hh:mm:ss HOSTNAME TAG[PID]: CONTENT`, with an
//! optional cap on the total length (1024 bytes in the RFC).

use super::header::{HeaderFields, MessageBody};
use super::text::utf8_prefix_len;
use super::Encoder;
use crate::model::LogRecord;

/// The RFC 3164 packet limit.
pub const RFC3164_MAX_LENGTH: usize = 1024;

/// Encodes logs as RFC 3164 messages.
#[derive(Debug, Clone)]
pub struct Rfc3164Encoder {
    /// Header fields (MSGID is not used).
    pub header: HeaderFields,
    /// CONTENT layout.
    pub body: MessageBody,
    /// Cut messages longer than this many bytes (on a character boundary).
    pub max_length: Option<usize>,
}

impl Encoder for Rfc3164Encoder {
    fn encode(&self, record: &LogRecord<'_>, out: &mut Vec<u8>) {
        let start = out.len();
        self.header.write_rfc3164(record, out);
        self.header.write_rfc3164_tag(record, out);
        self.body.write(record, out);
        if let Some(max_length) = self.max_length {
            let keep = utf8_prefix_len(&out[start..], max_length);
            out.truncate(start + keep);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::field::ValueSource;
    use crate::encoding::kv::KvFormat;
    use crate::encoding::severity::{Facility, PriSource, Severity};
    use crate::model::RecordsBuilder;

    fn encoder(max_length: Option<usize>) -> Rfc3164Encoder {
        Rfc3164Encoder {
            header: HeaderFields {
                pri: PriSource {
                    facility: Facility::from_code(4).unwrap(),
                    severity: Severity::from_code(2).unwrap(),
                    ..PriSource::default()
                },
                hostname: ValueSource::fixed("web01"),
                app_name: ValueSource::fixed("sshd"),
                procid: ValueSource::fixed("4211"),
                ..HeaderFields::default()
            },
            body: MessageBody::Kv(KvFormat::new(" ").unwrap()),
            max_length,
        }
    }

    #[test]
    fn matches_the_spec_example_layout() {
        let records = RecordsBuilder::new()
            .log(1_709_622_489, None, &[("msg", "Failed password for root")])
            .build();
        let mut out = Vec::new();
        encoder(None).encode(&records.get(0).unwrap(), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<34>Mar  5 07:08:09 web01 sshd[4211]: __time__=1709622489 __topic__= __source__= msg=Failed\\ password\\ for\\ root"
        );
    }

    #[test]
    fn length_cap_cuts_on_a_character_boundary() {
        let long = "é".repeat(1000);
        let records = RecordsBuilder::new()
            .log(1_709_622_489, None, &[("msg", long.as_str())])
            .build();
        let mut out = b"previous".to_vec();
        encoder(Some(RFC3164_MAX_LENGTH)).encode(&records.get(0).unwrap(), &mut out);
        let message = std::str::from_utf8(&out[8..]).expect("still UTF-8");
        assert!(message.len() <= RFC3164_MAX_LENGTH && message.len() >= RFC3164_MAX_LENGTH - 1);
        assert!(out.starts_with(b"previous<34>"));
    }
}

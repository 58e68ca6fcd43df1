//! Choosing an encoder: the message [`Format`], where the fields go ([`BodyKind`]), and an
//! [`EncodingConfig`] that gathers every setting an encoder needs and builds it with
//! [`EncodingConfig::encoder`]. Sinks that format logs (syslog, console, null) describe their
//! encoding here instead of building encoders themselves.

use serde::Deserialize;

use super::field::{InvalidSetting, ValueSource};
use super::formats::{CefConfig, LeefConfig};
use super::header::{HeaderFields, MessageBody};
use super::json::FlatJsonEncoder;
use super::kv::{KvFormat, DEFAULT_SEPARATOR};
use super::rfc3164::Rfc3164Encoder;
use super::rfc5424::{BomPolicy, Rfc5424Body, Rfc5424Encoder};
use super::Encoder;
use crate::model::flatten::SOURCE_KEY;

/// The APP-NAME used when none is configured.
pub const DEFAULT_APP_NAME: &str = "siem-forwarder";
/// The field holding the HOSTNAME unless configured otherwise: the log's source address.
pub const DEFAULT_HOSTNAME_FIELD: &str = SOURCE_KEY;
/// The SD-ID of the `sd` body unless configured otherwise (32473 is the example enterprise
/// number of RFC 5612).
pub const DEFAULT_SD_ID: &str = "sls@32473";

/// The message format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// RFC 5424 (the default).
    #[default]
    Rfc5424,
    /// RFC 3164 (BSD syslog).
    Rfc3164,
    /// ArcSight CEF, see the `cef` table.
    Cef,
    /// QRadar LEEF, see the `leef` table.
    Leef,
    /// The flattened log as one JSON object, without a syslog header.
    Json,
}

/// Where the log's fields go in RFC 5424 / RFC 3164 messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyKind {
    /// `k=v` pairs joined by `separator` (the default).
    #[default]
    Kv,
    /// One flattened JSON object.
    Json,
    /// One RFC 5424 structured-data element `[sd_id k="v" ...]` (RFC 5424 only).
    Sd,
}

/// Everything an encoder is built from. [`EncodingConfig::default`] is the syslog sink's
/// default encoding (RFC 5424, `kv` body, HOSTNAME from `__source__`).
#[derive(Debug, Clone)]
pub struct EncodingConfig {
    /// The message format.
    pub format: Format,
    /// How PRI, timestamp, HOSTNAME, APP-NAME, PROCID and MSGID are chosen per log.
    pub header: HeaderFields,
    /// Where the fields go for RFC 5424 and RFC 3164.
    pub body: BodyKind,
    /// Separator between `k=v` pairs of the `kv` body.
    pub separator: String,
    /// SD-ID of the `sd` body's element.
    pub sd_id: String,
    /// With the `sd` body, the field whose value becomes MSG.
    pub message_field: Option<String>,
    /// RFC 5424 byte order mark before MSG.
    pub bom: BomPolicy,
    /// With RFC 3164, cut messages longer than this many bytes.
    pub rfc3164_max_length: Option<usize>,
    /// Options of the CEF format.
    pub cef: CefConfig,
    /// Options of the LEEF format.
    pub leef: LeefConfig,
}

impl Default for EncodingConfig {
    fn default() -> Self {
        Self::for_format(Format::default())
    }
}

impl EncodingConfig {
    /// `format` with every other setting at its default.
    pub fn for_format(format: Format) -> Self {
        Self {
            format,
            header: HeaderFields {
                hostname: ValueSource {
                    field: Some(DEFAULT_HOSTNAME_FIELD.to_owned()),
                    fallback: String::new(),
                },
                app_name: ValueSource::fixed(DEFAULT_APP_NAME),
                ..HeaderFields::default()
            },
            body: BodyKind::default(),
            separator: DEFAULT_SEPARATOR.to_owned(),
            sd_id: DEFAULT_SD_ID.to_owned(),
            message_field: None,
            bom: BomPolicy::default(),
            rfc3164_max_length: None,
            cef: CefConfig::default(),
            leef: LeefConfig::default(),
        }
    }

    /// The encoder these settings describe (pure: also used to validate them).
    ///
    /// # Errors
    ///
    /// An invalid setting, naming its key (`separator`, `cef.extensions`, ...).
    pub fn encoder(&self) -> Result<Box<dyn Encoder>, InvalidSetting> {
        let header = self.header.clone();
        Ok(match self.format {
            Format::Rfc5424 => {
                let body = match self.body {
                    BodyKind::Sd => Rfc5424Body::StructuredData {
                        sd_id: self.sd_id.clone(),
                        message_field: self.message_field.clone(),
                    },
                    BodyKind::Kv | BodyKind::Json => Rfc5424Body::Message(self.message_body()?),
                };
                Box::new(Rfc5424Encoder {
                    header,
                    body,
                    bom: self.bom,
                })
            }
            Format::Rfc3164 => Box::new(Rfc3164Encoder {
                header,
                body: self.message_body()?,
                max_length: self.rfc3164_max_length,
            }),
            Format::Cef => Box::new(self.cef.encoder(header)?),
            Format::Leef => Box::new(self.leef.encoder(header)?),
            Format::Json => Box::new(FlatJsonEncoder),
        })
    }

    fn message_body(&self) -> Result<MessageBody, InvalidSetting> {
        Ok(match self.body {
            BodyKind::Json => MessageBody::Json,
            BodyKind::Kv | BodyKind::Sd => MessageBody::Kv(KvFormat::new(&self.separator)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RecordsBuilder;

    fn encode(config: &EncodingConfig) -> String {
        let records = RecordsBuilder::new()
            .group("audit", "10.0.0.7", &[])
            .log(1_700_000_000, None, &[("user", "alice")])
            .build();
        let mut out = Vec::new();
        let record = records.iter().next().unwrap();
        config.encoder().unwrap().encode(&record, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_default_is_rfc5424_with_the_source_as_hostname() {
        assert_eq!(
            encode(&EncodingConfig::default()),
            "<14>1 2023-11-14T22:13:20.000000Z 10.0.0.7 siem-forwarder - - - \
             __time__=1700000000||__topic__=audit||__source__=10.0.0.7||user=alice"
        );
    }

    #[test]
    fn an_invalid_option_names_its_key() {
        let config = EncodingConfig {
            separator: "=".into(),
            ..EncodingConfig::default()
        };
        assert_eq!(config.encoder().err().unwrap().key, "separator");
    }
}

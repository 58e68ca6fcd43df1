//! Configuration of the syslog sink: transport (UDP, TCP, TLS), framing, message format and
//! the per-format options, with pure validation and the IO-free build of a [`SyslogSink`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::connection::{Connector, Protocol, TlsSetup};
use super::sink::SyslogSink;
use crate::common::tls::TlsConfig;
use crate::common::units::{check_within, ByteSize, HumanDuration};
use crate::encoding::config::{
    BodyKind, EncodingConfig, Format, DEFAULT_APP_NAME, DEFAULT_HOSTNAME_FIELD, DEFAULT_SD_ID,
};
use crate::encoding::field::{InvalidSetting, ValueSource};
use crate::encoding::formats::{CefConfig, LeefConfig};
use crate::encoding::framing::Framing;
use crate::encoding::header::HeaderFields;
use crate::encoding::kv::DEFAULT_SEPARATOR;
use crate::encoding::rfc5424::BomPolicy;
use crate::encoding::severity::{Facility, PriSource, Severity};
use crate::encoding::timestamp::{TimePrecision, TimeZone};
use crate::sinks::SinkError;

/// Largest UDP payload over IPv4 (RFC 5426).
const MAX_UDP_PAYLOAD: u64 = 65_507;
/// Smallest datagram every receiver must accept (RFC 5426).
const MIN_UDP_PAYLOAD: u64 = 480;
/// Bounds of the timers (see the field docs).
const CONNECT_TIMEOUT: (HumanDuration, HumanDuration) =
    (HumanDuration::millis(100), HumanDuration::secs(300));
const WRITE_TIMEOUT: (HumanDuration, HumanDuration) =
    (HumanDuration::secs(1), HumanDuration::secs(600));
const RETRY_INITIAL: (HumanDuration, HumanDuration) =
    (HumanDuration::millis(10), HumanDuration::secs(300));
const RETRY_MAX_LIMIT: HumanDuration = HumanDuration::secs(3600);
/// Bounds of `rfc3164_max_length`: room for the header, and at most 1 MiB.
const RFC3164_MAX_LENGTH: (usize, usize) = (64, 1 << 20);

/// The `[[sinks]] type = "syslog"` table.
///
/// ```toml
/// [[sinks]]
/// type = "syslog"
/// address = "qradar.example.com:6514"
/// protocol = "tls"
/// format = "rfc5424"
/// tls = { ca_file = "ca.pem", server_name = "qradar" }
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogSinkConfig {
    /// Sink name used in logs, metrics and health. Default: the name the caller assigns
    /// (e.g. `syslog-0`); 1 to 64 characters without control characters, unique among the
    /// sinks. Example: `"qradar"`.
    #[serde(default)]
    pub name: Option<String>,
    /// Receiver as `host:port`, resolved again at every (re)connection. Example:
    /// `"siem.example.com:6514"`, `"[::1]:514"`. Required.
    pub address: String,
    /// `"udp"`, `"tcp"` (default) or `"tls"`. Only TCP and TLS confirm a write before the
    /// batch is acknowledged; UDP is best effort.
    #[serde(default)]
    pub protocol: Protocol,
    /// Stream framing for `tcp`: `"octet-counting"` (default) or `"lf"` (embedded newlines
    /// escaped as `\n`). `tls` always uses octet counting; not allowed with `udp`.
    #[serde(default)]
    pub framing: Option<Framing>,
    /// `"rfc5424"` (default), `"rfc3164"`, `"cef"`, `"leef"` or `"json"`.
    #[serde(default)]
    pub format: Format,
    /// TLS settings for `protocol = "tls"`: `{ ca_file, cert_file, key_file, server_name,
    /// verify }`. Default: system trust store, no client certificate, verification on.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Facility name or number. Default `"user"`. Example: `"local4"` or `20`.
    #[serde(default = "default_facility")]
    pub facility: Facility,
    /// Field whose value (a facility name or number) overrides `facility`. Default: none.
    #[serde(default)]
    pub facility_field: Option<String>,
    /// Severity name or number. Default `"info"`. Example: `"notice"` or `5`.
    #[serde(default = "default_severity")]
    pub severity: Severity,
    /// Field whose value overrides `severity` when it is a severity or log level (`ERROR`
    /// becomes `err`, `WARN` `warning`, a digit 0–7 is taken as is). Example: `"level"`.
    #[serde(default)]
    pub severity_field: Option<String>,
    /// Extra `severity_field` values and their severity, matched case-insensitively before
    /// the built-in names. Example: `{ SEVERE = "crit", "40" = "err" }`. Default: none.
    #[serde(default)]
    pub severity_map: BTreeMap<String, Severity>,
    /// Static HOSTNAME, used when `hostname_field` is empty or missing. Default: `-` (nil).
    #[serde(default)]
    pub hostname: String,
    /// Field holding the HOSTNAME. Default `"__source__"` (the log's source address); `""`
    /// turns it off.
    #[serde(default = "default_hostname_field")]
    pub hostname_field: String,
    /// Static APP-NAME (RFC 3164 TAG), ≤ 48 characters. Default `"siem-forwarder"`.
    #[serde(default = "default_app_name")]
    pub app_name: String,
    /// Field holding the APP-NAME. Example: `"__topic__"`. Default: none.
    #[serde(default)]
    pub app_name_field: Option<String>,
    /// Static PROCID. Default: `-` (nil).
    #[serde(default)]
    pub procid: String,
    /// Field holding the PROCID. Default: none.
    #[serde(default)]
    pub procid_field: Option<String>,
    /// Static MSGID (RFC 5424), ≤ 32 characters. Default: `-` (nil).
    #[serde(default)]
    pub msgid: String,
    /// Field holding the MSGID. Example: `"event_type"`. Default: none.
    #[serde(default)]
    pub msgid_field: Option<String>,
    /// Zone of header timestamps: `"UTC"` (default, written with `Z`), `"local"` or a fixed
    /// offset such as `"+08:00"`.
    #[serde(default)]
    pub timezone: TimeZone,
    /// Fraction of RFC 5424 timestamps: `"seconds"`, `"millis"` or `"micros"` (default).
    #[serde(default)]
    pub time_precision: TimePrecision,
    /// Where the fields go for `rfc5424`/`rfc3164`: `"kv"` (default), `"json"` or `"sd"`
    /// (RFC 5424 structured data).
    #[serde(default)]
    pub body: BodyKind,
    /// Separator between `k=v` pairs of the `kv` body. Default `"||"`.
    #[serde(default = "default_separator")]
    pub separator: String,
    /// SD-ID of the `sd` body's element. Default `"sls@32473"` (32473 is the example
    /// enterprise number; use your own registered number in production).
    #[serde(default = "default_sd_id")]
    pub sd_id: String,
    /// With the `sd` body, the field whose value becomes MSG. Default: none (no MSG).
    #[serde(default)]
    pub message_field: Option<String>,
    /// RFC 5424 byte order mark before MSG: `"never"` (default), `"always"` or
    /// `"when_non_ascii"`.
    #[serde(default)]
    pub bom: BomPolicy,
    /// With `rfc3164`, cut messages longer than this many bytes (the RFC says 1024), 64 to
    /// 1048576. Default: no limit.
    #[serde(default)]
    pub rfc3164_max_length: Option<usize>,
    /// With `udp`, the largest datagram; longer messages are cut on a character boundary and
    /// counted in `sink_truncated_messages`. 480 B to 65507 B, default `"2KiB"`.
    #[serde(default = "default_max_datagram")]
    pub max_datagram: ByteSize,
    /// Options of `format = "cef"`.
    #[serde(default)]
    pub cef: CefConfig,
    /// Options of `format = "leef"`.
    #[serde(default)]
    pub leef: LeefConfig,
    /// Time allowed for resolving, connecting and the TLS handshake, `100ms` to `5m`. Default
    /// `"10s"`.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// Time allowed for one write (a datagram, or up to 1 MiB of a batch) to reach the
    /// socket; a receiver that reads nothing for this long is considered dead and the batch
    /// is sent again on a new connection. `1s` to `10m`. Default `"30s"`.
    #[serde(default = "default_write_timeout")]
    pub write_timeout: HumanDuration,
    /// First delay before retrying after a failure; doubles up to `retry_max`. `10ms` to `5m`.
    /// Default `"1s"`.
    #[serde(default = "default_retry_initial")]
    pub retry_initial: HumanDuration,
    /// Longest delay between retries, from `retry_initial` to `1h`. Retries go on until
    /// shutdown. Default `"30s"`.
    #[serde(default = "default_retry_max")]
    pub retry_max: HumanDuration,
}

fn default_facility() -> Facility {
    Facility::USER
}
fn default_severity() -> Severity {
    Severity::INFO
}
fn default_hostname_field() -> String {
    DEFAULT_HOSTNAME_FIELD.to_owned()
}
fn default_app_name() -> String {
    DEFAULT_APP_NAME.to_owned()
}
fn default_separator() -> String {
    DEFAULT_SEPARATOR.to_owned()
}
fn default_sd_id() -> String {
    DEFAULT_SD_ID.to_owned()
}
fn default_max_datagram() -> ByteSize {
    ByteSize(2048)
}
fn default_connect_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}
fn default_write_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
fn default_retry_initial() -> HumanDuration {
    HumanDuration(Duration::from_secs(1))
}
fn default_retry_max() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}

/// Splits `host:port` (`[v6]:port` for IPv6 literals).
///
/// # Errors
///
/// Says what is wrong with the address.
pub fn split_host_port(address: &str) -> Result<(&str, u16), String> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("`{address}` must be host:port"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|port| *port != 0)
        .ok_or_else(|| format!("`{address}` has no valid port"))?;
    let unbracketed = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    let host = unbracketed.unwrap_or(host);
    if host.is_empty() || (unbracketed.is_none() && host.contains(':')) {
        return Err(format!(
            "`{address}` must be host:port (write IPv6 addresses as [addr]:port)"
        ));
    }
    if !host
        .chars()
        .all(|c| c.is_alphanumeric() || "-._:%".contains(c))
    {
        return Err(format!("`{address}` has an invalid host name"));
    }
    Ok((host, port))
}

impl SyslogSinkConfig {
    /// Checks the settings and their combinations, without any IO.
    ///
    /// # Errors
    ///
    /// Names the offending key and why.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        split_host_port(&self.address).map_err(|reason| InvalidSetting::new("address", reason))?;
        match (self.protocol, self.framing) {
            (Protocol::Udp, Some(_)) => {
                return Err(InvalidSetting::new(
                    "framing",
                    "only applies to tcp: udp sends one message per datagram",
                ))
            }
            (Protocol::Tls, Some(Framing::Lf)) => {
                return Err(InvalidSetting::new(
                    "framing",
                    "tls always uses octet-counting (RFC 5425)",
                ))
            }
            _ => {}
        }
        if self.tls.is_some() && self.protocol != Protocol::Tls {
            return Err(InvalidSetting::new(
                "tls",
                "only used with protocol = \"tls\"",
            ));
        }
        if self.protocol == Protocol::Udp
            && !(MIN_UDP_PAYLOAD..=MAX_UDP_PAYLOAD).contains(&self.max_datagram.0)
        {
            return Err(InvalidSetting::new(
                "max_datagram",
                format!("must be between {MIN_UDP_PAYLOAD} and {MAX_UDP_PAYLOAD} bytes"),
            ));
        }
        if self.body == BodyKind::Sd && self.format != Format::Rfc5424 {
            return Err(InvalidSetting::new(
                "body",
                "\"sd\" (structured data) needs format = \"rfc5424\"",
            ));
        }
        if self.rfc3164_max_length.is_some() && self.format != Format::Rfc3164 {
            return Err(InvalidSetting::new(
                "rfc3164_max_length",
                "only applies to format = \"rfc3164\"",
            ));
        }
        if let Some(length) = self.rfc3164_max_length {
            let (min, max) = RFC3164_MAX_LENGTH;
            check_within(length, min, max)
                .map_err(|reason| InvalidSetting::new("rfc3164_max_length", reason))?;
        }
        let durations = [
            ("connect_timeout", self.connect_timeout, CONNECT_TIMEOUT),
            ("write_timeout", self.write_timeout, WRITE_TIMEOUT),
            ("retry_initial", self.retry_initial, RETRY_INITIAL),
            (
                "retry_max",
                self.retry_max,
                (self.retry_initial, RETRY_MAX_LIMIT),
            ),
        ];
        for (key, value, (min, max)) in durations {
            value
                .check_within(min, max)
                .map_err(|reason| InvalidSetting::new(key, reason))?;
        }
        if self.protocol == Protocol::Tls {
            let (host, _) = split_host_port(&self.address)
                .map_err(|reason| InvalidSetting::new("address", reason))?;
            let settings = self.tls.clone().unwrap_or_default();
            settings.server_name_for(host).map_err(|error| {
                let key = if settings.server_name.is_some() {
                    "tls.server_name"
                } else {
                    "address"
                };
                InvalidSetting::new(key, error.to_string())
            })?;
        }
        self.encoding().encoder().map(drop)
    }

    /// Builds the sink: validates, prepares the encoder, and loads the TLS files so that a bad
    /// path or key fails at start-up. Opens no connection (the sink connects lazily).
    ///
    /// `default_name` is used when the config has no `name`.
    ///
    /// # Errors
    ///
    /// [`SinkError::Config`] naming the key and reason.
    pub fn build(&self, default_name: &str) -> Result<SyslogSink, SinkError> {
        let config_error = |error: InvalidSetting| SinkError::Config(error.to_string());
        self.validate().map_err(config_error)?;
        let encoder = self.encoding().encoder().map_err(config_error)?;
        let tls = match self.protocol {
            Protocol::Tls => {
                let settings = self.tls.clone().unwrap_or_default();
                let (host, _) = split_host_port(&self.address).map_err(SinkError::Config)?;
                let client = settings
                    .client_config()
                    .map_err(|error| SinkError::Config(format!("tls: {error}")))?;
                let server_name = settings
                    .server_name_for(host)
                    .map_err(|error| SinkError::Config(format!("tls: {error}")))?;
                Some(TlsSetup {
                    client,
                    server_name,
                })
            }
            Protocol::Udp | Protocol::Tcp => None,
        };
        let connector = Connector {
            address: self.address.clone(),
            protocol: self.protocol,
            tls,
            connect_timeout: self.connect_timeout.0,
        };
        Ok(SyslogSink {
            name: self.name.clone().unwrap_or_else(|| default_name.to_owned()),
            connector,
            framing: self.framing.unwrap_or_default(),
            encoder,
            max_datagram: self.max_datagram.0 as usize,
            write_timeout: self.write_timeout.0,
            retry: (self.retry_initial.0, self.retry_max.0),
        })
    }

    fn header_fields(&self) -> HeaderFields {
        let optional_field = |field: &Option<String>| field.clone().filter(|f| !f.is_empty());
        let source = |field: &Option<String>, fallback: &str| ValueSource {
            field: optional_field(field),
            fallback: fallback.to_owned(),
        };
        HeaderFields {
            pri: PriSource {
                facility: self.facility,
                facility_field: optional_field(&self.facility_field),
                severity: self.severity,
                severity_field: optional_field(&self.severity_field),
                severity_map: self
                    .severity_map
                    .iter()
                    .map(|(value, severity)| (value.clone(), *severity))
                    .collect(),
            },
            zone: self.timezone,
            precision: self.time_precision,
            hostname: source(&Some(self.hostname_field.clone()), &self.hostname),
            app_name: source(&self.app_name_field, &self.app_name),
            procid: source(&self.procid_field, &self.procid),
            msgid: source(&self.msgid_field, &self.msgid),
        }
    }

    /// The encoding these settings describe.
    pub fn encoding(&self) -> EncodingConfig {
        EncodingConfig {
            format: self.format,
            header: self.header_fields(),
            body: self.body,
            separator: self.separator.clone(),
            sd_id: self.sd_id.clone(),
            message_field: self.message_field.clone(),
            bom: self.bom,
            rfc3164_max_length: self.rfc3164_max_length,
            cef: self.cef.clone(),
            leef: self.leef.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::leef::LeefVersion;

    fn parse(text: &str) -> SyslogSinkConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn parses_the_architecture_example_and_defaults() {
        let config = parse(
            r#"
            address = "qradar.example.com:6514"
            protocol = "tls"
            framing = "octet-counting"
            format = "rfc5424"
            tls = { ca_file = "ca.pem", cert_file = "client.pem", key_file = "client.key", server_name = "qradar", verify = true }
            "#,
        );
        assert_eq!(config.protocol, Protocol::Tls);
        assert_eq!(config.separator, "||");
        assert_eq!(config.hostname_field, "__source__");
        assert_eq!(config.max_datagram, ByteSize(2048));
        assert!(config.validate().is_ok());
    }

    #[test]
    fn parses_format_options() {
        let config = parse(
            r#"
            name = "arcsight"
            address = "127.0.0.1:514"
            protocol = "udp"
            format = "cef"
            facility = "local4"
            severity_field = "level"
            severity_map = { SEVERE = "crit", "40" = 3 }
            max_datagram = "8KiB"
            cef = { vendor = "Acme", extensions = { src = "source_ip", suser = "user" }, constants = { cs1Label = "region" } }
            leef = { version = "1.0", delimiter = "\t" }
            "#,
        );
        assert_eq!(config.facility.code(), 20);
        assert_eq!(config.severity_map["SEVERE"].code(), 2);
        assert_eq!(config.severity_map["40"].code(), 3);
        assert_eq!(config.cef.extensions.len(), 2);
        assert_eq!(config.leef.version, LeefVersion::V1);
        assert!(config.validate().is_ok());
        assert!(config.build("syslog-0").is_ok());
    }

    #[test]
    fn the_defaults_are_the_default_encoding() {
        let records = crate::model::RecordsBuilder::new()
            .group("audit", "10.0.0.7", &[("region", "eu")])
            .log(1_700_000_000, Some(5), &[("user", "alice")])
            .build();
        let record = records.get(0).unwrap();
        for format in ["rfc5424", "rfc3164", "cef", "leef", "json"] {
            let config = parse(&format!("address = \"a:1\"\nformat = \"{format}\""));
            let encode = |encoding: EncodingConfig| {
                let mut out = Vec::new();
                encoding.encoder().unwrap().encode(&record, &mut out);
                out
            };
            assert_eq!(
                encode(config.encoding()),
                encode(EncodingConfig::for_format(config.format)),
                "{format}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let error = toml::from_str::<SyslogSinkConfig>("address = \"a:1\"\nport = 5")
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown field `port`"), "{error}");
    }

    #[test]
    fn cross_field_rules_name_the_key() {
        let key = |text: &str| parse(text).validate().unwrap_err().key;
        assert_eq!(
            key("address = \"a:1\"\nprotocol = \"udp\"\nframing = \"lf\""),
            "framing"
        );
        assert_eq!(
            key("address = \"a:1\"\nprotocol = \"tls\"\nframing = \"lf\""),
            "framing"
        );
        assert_eq!(key("address = \"a:1\"\ntls = { verify = false }"), "tls");
        assert_eq!(
            key("address = \"a:1\"\nformat = \"cef\"\nbody = \"sd\""),
            "body"
        );
        assert_eq!(
            key("address = \"a:1\"\nprotocol = \"udp\"\nmax_datagram = 100000"),
            "max_datagram"
        );
        assert_eq!(key("address = \"a:1\"\nseparator = \"=\""), "separator");
        assert_eq!(key("address = \"nohost\""), "address");
        assert_eq!(key("address = \"a:0\""), "address");
        assert_eq!(
            key("address = \"a:1\"\nformat = \"leef\"\nleef = { delimiter = \"|\" }"),
            "leef.delimiter"
        );
        assert_eq!(key("address = \"a:1\"\nformat = \"cef\"\ncef = { extensions = { \"bad key\" = \"x\" } }"), "cef.extensions");
        assert_eq!(
            key("address = \"a:1\"\nrfc3164_max_length = 1024"),
            "rfc3164_max_length"
        );
    }

    #[test]
    fn timers_and_lengths_are_bounded() {
        let key = |extra: &str| {
            parse(&format!("address = \"a:1\"\n{extra}"))
                .validate()
                .unwrap_err()
                .key
        };
        for (extra, expected) in [
            ("connect_timeout = \"0s\"", "connect_timeout"),
            ("connect_timeout = \"99ms\"", "connect_timeout"),
            ("connect_timeout = \"6m\"", "connect_timeout"),
            ("write_timeout = \"0s\"", "write_timeout"),
            ("write_timeout = \"11m\"", "write_timeout"),
            ("retry_initial = \"0s\"", "retry_initial"),
            ("retry_initial = \"10s\"\nretry_max = \"5s\"", "retry_max"),
            ("retry_max = \"2h\"", "retry_max"),
            (
                "format = \"rfc3164\"\nrfc3164_max_length = 0",
                "rfc3164_max_length",
            ),
            (
                "format = \"rfc3164\"\nrfc3164_max_length = 2000000",
                "rfc3164_max_length",
            ),
            (
                "protocol = \"tls\"\ntls = { server_name = \"bad name\" }",
                "tls.server_name",
            ),
        ] {
            assert_eq!(key(extra), expected, "{extra}");
        }
        assert_eq!(key_of_address("bad host:514"), "address");
        assert_eq!(key_of_address("host\n:514"), "address");
        let boundary = parse(
            "address = \"[::1]:514\"\nconnect_timeout = \"100ms\"\nwrite_timeout = \"1s\"\n\
             retry_initial = \"10ms\"\nretry_max = \"10ms\"\nformat = \"rfc3164\"\nrfc3164_max_length = 64",
        );
        assert_eq!(boundary.validate(), Ok(()));
    }

    fn key_of_address(address: &str) -> String {
        let mut config = parse("address = \"a:1\"");
        config.address = address.to_owned();
        config.validate().unwrap_err().key
    }

    #[test]
    fn host_port_split() {
        assert_eq!(split_host_port("[::1]:514"), Ok(("::1", 514)));
        assert_eq!(split_host_port("siem.local:6514"), Ok(("siem.local", 6514)));
        assert!(split_host_port("::1:514").is_err());
    }

    #[test]
    fn build_fails_on_a_missing_tls_file() {
        let config = parse(
            "address = \"localhost:6514\"\nprotocol = \"tls\"\ntls = { ca_file = \"/nonexistent/ca.pem\" }",
        );
        let error = config.build("syslog-0").err().unwrap().to_string();
        assert!(error.contains("/nonexistent/ca.pem"), "{error}");
    }
}

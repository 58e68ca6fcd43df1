//! Syslog facility and severity (RFC 5424 §6.2.1): parsing from names or numbers, the PRI
//! value, and choosing them per log, statically or from a field such as `level = ERROR`.

use std::fmt;

use serde::{de, Deserialize, Deserializer};

use crate::model::LogRecord;

/// Facility names by code (0–23), as rsyslog and RFC 5424 spell them.
const FACILITY_NAMES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

/// Severity names (and common log-level aliases) with their code.
const SEVERITY_NAMES: [(&str, u8); 18] = [
    ("emerg", 0),
    ("emergency", 0),
    ("panic", 0),
    ("fatal", 0),
    ("alert", 1),
    ("crit", 2),
    ("critical", 2),
    ("err", 3),
    ("error", 3),
    ("warning", 4),
    ("warn", 4),
    ("notice", 5),
    ("info", 6),
    ("informational", 6),
    ("information", 6),
    ("debug", 7),
    ("trace", 7),
    ("verbose", 7),
];

/// A syslog facility, 0 (`kern`) to 23 (`local7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facility(u8);

/// A syslog severity, 0 (`emerg`) to 7 (`debug`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Severity(u8);

impl Facility {
    /// `user` (1), the usual default.
    pub const USER: Facility = Facility(1);

    /// The facility with numeric code `code`, when it is 0–23.
    pub fn from_code(code: u8) -> Option<Self> {
        (code < 24).then_some(Facility(code))
    }

    /// Parses a name (`local4`, case-insensitive) or a decimal code (`20`).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if let Some(code) = parse_small_number(text) {
            return Self::from_code(code);
        }
        FACILITY_NAMES
            .iter()
            .position(|name| name.eq_ignore_ascii_case(text))
            .map(|code| Facility(code as u8))
    }

    /// The numeric code.
    pub fn code(self) -> u8 {
        self.0
    }
}

impl Severity {
    /// `info` (6), the usual default.
    pub const INFO: Severity = Severity(6);

    /// The severity with numeric code `code`, when it is 0–7.
    pub fn from_code(code: u8) -> Option<Self> {
        (code < 8).then_some(Severity(code))
    }

    /// Parses a name or log level (`err`, `ERROR`, `warn`, `Informational`, ...) or a decimal
    /// code (`3`).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if let Some(code) = parse_small_number(text) {
            return Self::from_code(code);
        }
        SEVERITY_NAMES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(text))
            .map(|&(_, code)| Severity(code))
    }

    /// The numeric code.
    pub fn code(self) -> u8 {
        self.0
    }
}

fn parse_small_number(text: &str) -> Option<u8> {
    if text.is_empty() || text.len() > 3 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The PRI value `facility * 8 + severity` (0–191).
pub fn prival(facility: Facility, severity: Severity) -> u8 {
    facility.0 * 8 + severity.0
}

/// Writes `<PRIVAL>`.
pub fn write_pri(prival: u8, out: &mut Vec<u8>) {
    out.push(b'<');
    out.extend_from_slice(itoa::Buffer::new().format(prival).as_bytes());
    out.push(b'>');
}

fn deserialize_name_or_code<'de, D, T>(
    deserializer: D,
    what: &'static str,
    parse: fn(&str) -> Option<T>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct Visitor<T> {
        what: &'static str,
        parse: fn(&str) -> Option<T>,
    }
    impl<T> de::Visitor<'_> for Visitor<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a syslog {} name or number", self.what)
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
            (self.parse)(text)
                .ok_or_else(|| E::custom(format!("unknown syslog {} `{text}`", self.what)))
        }
        fn visit_i64<E: de::Error>(self, number: i64) -> Result<T, E> {
            self.visit_str(&number.to_string())
        }
        fn visit_u64<E: de::Error>(self, number: u64) -> Result<T, E> {
            self.visit_str(&number.to_string())
        }
    }
    deserializer.deserialize_any(Visitor { what, parse })
}

impl<'de> Deserialize<'de> for Facility {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_name_or_code(
            deserializer,
            "facility (kern..local7 or 0-23)",
            Facility::parse,
        )
    }
}

impl<'de> Deserialize<'de> for Severity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_name_or_code(
            deserializer,
            "severity (emerg..debug or 0-7)",
            Severity::parse,
        )
    }
}

/// How each log's PRI is chosen: a static facility and severity, each optionally taken from a
/// field when the field holds a recognised name or number.
#[derive(Debug, Clone)]
pub struct PriSource {
    /// Facility used when `facility_field` is unset, missing or unrecognised.
    pub facility: Facility,
    /// Field holding a facility name or number.
    pub facility_field: Option<String>,
    /// Severity used when `severity_field` is unset, missing or unrecognised.
    pub severity: Severity,
    /// Field holding a severity or log level (`ERROR` maps to `err`).
    pub severity_field: Option<String>,
    /// Field values with their severity, checked (case-insensitively) before the built-in
    /// names, e.g. `SEVERE` → `crit`.
    pub severity_map: Vec<(String, Severity)>,
}

impl Default for PriSource {
    fn default() -> Self {
        Self {
            facility: Facility::USER,
            facility_field: None,
            severity: Severity::INFO,
            severity_field: None,
            severity_map: Vec::new(),
        }
    }
}

impl PriSource {
    /// The severity of `record`.
    pub fn severity_of(&self, record: &LogRecord<'_>) -> Severity {
        let Some(value) = self
            .severity_field
            .as_deref()
            .and_then(|field| record.lookup(field))
        else {
            return self.severity;
        };
        let value = value.trim();
        self.severity_map
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(value))
            .map(|&(_, severity)| severity)
            .or_else(|| Severity::parse(value))
            .unwrap_or(self.severity)
    }

    /// The PRI value of `record`.
    pub fn prival_of(&self, record: &LogRecord<'_>) -> u8 {
        let facility = self
            .facility_field
            .as_deref()
            .and_then(|field| record.lookup(field))
            .and_then(Facility::parse)
            .unwrap_or(self.facility);
        prival(facility, self.severity_of(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RecordsBuilder;

    fn pri_text(facility: u8, severity: u8) -> String {
        let mut out = Vec::new();
        write_pri(
            prival(
                Facility::from_code(facility).unwrap(),
                Severity::from_code(severity).unwrap(),
            ),
            &mut out,
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn pri_matches_the_spec_vectors() {
        assert_eq!(pri_text(20, 5), "<165>");
        assert_eq!(pri_text(23, 7), "<191>");
        assert_eq!(pri_text(1, 6), "<14>");
        assert_eq!(pri_text(4, 2), "<34>");
        assert_eq!(pri_text(0, 0), "<0>");
        assert_eq!(Facility::from_code(24), None);
        assert_eq!(Severity::from_code(8), None);
    }

    #[test]
    fn names_and_numbers_parse() {
        assert_eq!(Facility::parse("local4"), Facility::from_code(20));
        assert_eq!(Facility::parse("LOCAL7"), Facility::from_code(23));
        assert_eq!(Facility::parse("24"), None);
        assert_eq!(Severity::parse("ERROR"), Severity::from_code(3));
        assert_eq!(Severity::parse("Warn"), Severity::from_code(4));
        assert_eq!(Severity::parse("7"), Severity::from_code(7));
        assert_eq!(Severity::parse("8"), None);
        assert_eq!(Severity::parse("loud"), None);
    }

    #[test]
    fn severity_comes_from_a_field_with_static_fallback() {
        let records = RecordsBuilder::new()
            .log(1, None, &[("level", "ERROR")])
            .log(1, None, &[("level", "chatty")])
            .log(1, None, &[])
            .build();
        let source = PriSource {
            facility: Facility::from_code(16).unwrap(),
            severity_field: Some("level".into()),
            ..PriSource::default()
        };
        let pris: Vec<u8> = records.iter().map(|r| source.prival_of(&r)).collect();
        assert_eq!(pris, [16 * 8 + 3, 16 * 8 + 6, 16 * 8 + 6]);
    }

    #[test]
    fn custom_severity_names_win_over_built_in_ones() {
        let records = RecordsBuilder::new()
            .log(1, None, &[("level", "severe")])
            .log(1, None, &[("level", "ERROR")])
            .log(1, None, &[("level", "40")])
            .build();
        let source = PriSource {
            severity_field: Some("level".into()),
            severity_map: vec![
                ("SEVERE".into(), Severity::from_code(2).unwrap()),
                ("error".into(), Severity::from_code(1).unwrap()),
                ("40".into(), Severity::from_code(4).unwrap()),
            ],
            ..PriSource::default()
        };
        let severities: Vec<u8> = records
            .iter()
            .map(|r| source.severity_of(&r).code())
            .collect();
        assert_eq!(severities, [2, 1, 4]);
    }

    #[test]
    fn deserializes_names_and_numbers() {
        #[derive(Deserialize)]
        struct Wrapper {
            facility: Facility,
            severity: Severity,
        }
        let parsed: Wrapper = toml::from_str("facility = \"local0\"\nseverity = 3").unwrap();
        assert_eq!(parsed.facility.code(), 16);
        assert_eq!(parsed.severity.code(), 3);
        let error = toml::from_str::<Wrapper>("facility = 24\nseverity = 3")
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("unknown syslog facility"), "{error}");
    }
}

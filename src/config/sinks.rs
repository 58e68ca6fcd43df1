//! The `[[sinks]]` entries: which sink each one is, its checks (pure, then those reading the
//! file system), building it, and locating a bad value inside one.

use serde::Deserialize;

use super::{locate, InvalidSetting, Problem};
use crate::common::tls::TlsError;
use crate::sinks::console::ConsoleSinkConfig;
use crate::sinks::file::FileSinkConfig;
use crate::sinks::null::NullSinkConfig;
use crate::sinks::object_storage::ObjectStorageSinkConfig;
use crate::sinks::splunk_hec::config::SplunkHecSinkConfig;
use crate::sinks::syslog::{Protocol, SyslogSinkConfig};
use crate::sinks::{Sink, SinkContext, SinkError};

/// Longest sink name.
const MAX_SINK_NAME: usize = 64;

/// One `[[sinks]]` entry, by `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SinkConfig {
    /// JSON lines in a file.
    File(FileSinkConfig),
    /// Standard output.
    Console(ConsoleSinkConfig),
    /// Drops every log (benchmarks, skipping a backlog on purpose).
    Null(NullSinkConfig),
    /// Syslog over UDP, TCP or TLS (QRadar, ArcSight, rsyslog).
    Syslog(Box<SyslogSinkConfig>),
    /// Splunk HTTP Event Collector.
    SplunkHec(Box<SplunkHecSinkConfig>),
    /// Archive objects in an S3-compatible bucket (S3, OSS, COS, JD Cloud, MinIO).
    ObjectStorage(Box<ObjectStorageSinkConfig>),
}

impl SinkConfig {
    /// The sink's type and configured name.
    fn kind_and_name(&self) -> (&'static str, Option<&str>) {
        let (kind, name) = match self {
            Self::File(config) => ("file", &config.name),
            Self::Console(config) => ("console", &config.name),
            Self::Null(config) => ("null", &config.name),
            Self::Syslog(config) => ("syslog", &config.name),
            Self::SplunkHec(config) => ("splunk_hec", &config.name),
            Self::ObjectStorage(config) => ("object_storage", &config.name),
        };
        (kind, name.as_deref())
    }

    /// The sink's name: configured, or `TYPE-INDEX`.
    pub fn name(&self, index: usize) -> String {
        match self.kind_and_name() {
            (_, Some(name)) => name.to_owned(),
            (kind, None) => format!("{kind}-{index}"),
        }
    }

    /// Checks the sink's settings without I/O.
    ///
    /// # Errors
    ///
    /// The offending key (relative to the sink) and the reason.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if let (_, Some(name)) = self.kind_and_name() {
            if !(1..=MAX_SINK_NAME).contains(&name.chars().count())
                || name.chars().any(char::is_control)
            {
                return Err(InvalidSetting::new(
                    "name",
                    format!("must be 1 to {MAX_SINK_NAME} characters without control characters"),
                ));
            }
        }
        match self {
            Self::File(config) => config.validate(),
            Self::Console(_) | Self::Null(_) => Ok(()),
            Self::Syslog(config) => config.validate(),
            Self::ObjectStorage(config) => config.validate(),
            Self::SplunkHec(config) => config.validate(),
        }
    }

    /// Checks what needs the file system: TLS files load, the file sink's directory exists.
    ///
    /// # Errors
    ///
    /// The offending key (relative to the sink) and the reason.
    pub fn check_files(&self) -> Result<(), InvalidSetting> {
        let tls = match self {
            Self::File(config) => return config.check_path(),
            Self::Syslog(config) if config.protocol == Protocol::Tls => {
                config.tls.clone().unwrap_or_default()
            }
            Self::SplunkHec(config) => config.tls.clone(),
            Self::ObjectStorage(config) => config.tls.clone(),
            Self::Syslog(_) | Self::Console(_) | Self::Null(_) => return Ok(()),
        };
        tls.client_config().map(drop).map_err(tls_setting)
    }

    /// Builds the sink, loading TLS files and the like (no connection is made); `context`
    /// describes the consumer feeding it.
    ///
    /// # Errors
    ///
    /// [`SinkError::Config`] when the settings cannot work.
    pub fn build(&self, index: usize, context: &SinkContext) -> Result<Box<dyn Sink>, SinkError> {
        let name = self.name(index);
        Ok(match self {
            Self::File(config) => Box::new(config.build(&name)),
            Self::Console(config) => Box::new(config.build(&name)?),
            Self::Null(config) => Box::new(config.build(&name)?),
            Self::Syslog(config) => Box::new(config.build(&name)?),
            Self::SplunkHec(config) => Box::new(config.build(&name)?),
            Self::ObjectStorage(config) => {
                Box::new(config.build(&name, context, |key| std::env::var(key).ok())?)
            }
        })
    }
}

/// A TLS error as the setting at fault (`tls.ca_file`, ...) and the reason.
fn tls_setting(error: TlsError) -> InvalidSetting {
    match error {
        TlsError::Read {
            key,
            what,
            path,
            source,
        } => InvalidSetting::new(
            format!("tls.{key}"),
            format!("cannot read {what} `{}`: {source}", path.display()),
        ),
        TlsError::Empty {
            key,
            what,
            path,
            expected,
        } => InvalidSetting::new(
            format!("tls.{key}"),
            format!("{what} `{}` contains no {expected}", path.display()),
        ),
        other => InvalidSetting::new("tls", other.to_string()),
    }
}

/// For errors inside `[[sinks]]` TOML reports the array, not the element: deserializes each
/// sink alone to name the one at fault, and the key and line of the bad value when it can.
pub(super) fn pinpoint_sink(text: &str) -> Option<Problem> {
    let table: toml::Table = toml::from_str(text).ok()?;
    let sinks = table.get("sinks")?.as_array()?;
    sinks.iter().enumerate().find_map(|(index, sink)| {
        let error = SinkConfig::deserialize(sink.clone()).err()?;
        let sink_key = format!("sinks[{index}]");
        let header = locate::line_of(text, &sink_key);
        let kind = sink.get("type").and_then(toml::Value::as_str);
        let line = header
            .zip(kind)
            .and_then(|(header, kind)| value_line(text, header, kind))
            .or(header);
        let key = line
            .filter(|line| Some(*line) != header)
            .and_then(|line| locate::key_at_line(text, line))
            .unwrap_or(sink_key);
        Some(Problem {
            line,
            message: format!("{key}: {}", error.message().trim_end()),
        })
    })
}

/// The line of the bad value in the sink of type `kind` whose `[[sinks]]` header is on line
/// `header`. A tagged enum loses TOML's spans, so the sink's own lines are deserialized as
/// the concrete settings (with the `type` line blanked); `None` when the error is about the
/// whole table.
fn value_line(text: &str, header: usize, kind: &str) -> Option<usize> {
    let fragment: Vec<&str> = text
        .lines()
        .skip(header)
        .take_while(|line| !line.trim_start().starts_with('['))
        .map(|line| match line.split_once('=') {
            Some((key, _)) if key.trim() == "type" => "",
            _ => line,
        })
        .collect();
    let fragment = fragment.join("\n");
    let span = match kind {
        "file" => value_span::<FileSinkConfig>(&fragment),
        "console" => value_span::<ConsoleSinkConfig>(&fragment),
        "null" => value_span::<NullSinkConfig>(&fragment),
        "syslog" => value_span::<SyslogSinkConfig>(&fragment),
        "splunk_hec" => value_span::<SplunkHecSinkConfig>(&fragment),
        "object_storage" => value_span::<ObjectStorageSinkConfig>(&fragment),
        _ => None,
    }?;
    let whole_table = span.start == 0 && span.end >= fragment.trim_end().len();
    (!whole_table).then(|| header + 1 + fragment[..span.start].matches('\n').count())
}

/// Where deserializing `fragment` as `T` fails, when TOML knows.
fn value_span<T: serde::de::DeserializeOwned>(fragment: &str) -> Option<std::ops::Range<usize>> {
    toml::from_str::<T>(fragment).err()?.span()
}

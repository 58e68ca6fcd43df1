//! The configuration file: TOML with `${VAR}` and `${VAR:-default}` expansion, unknown keys
//! rejected, every error naming the file (and the line and key where TOML knows them).
//! Component settings live beside their components; this module only aggregates them.

mod env;
pub mod locate;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::common::tls::TlsError;
use crate::consumer::ConsumerConfig;
use crate::sinks::console::ConsoleSinkConfig;
use crate::sinks::file::FileSinkConfig;
use crate::sinks::null::NullSinkConfig;
use crate::sinks::splunk_hec::config::SplunkHecSinkConfig;
use crate::sinks::syslog::config::{Protocol, SyslogSinkConfig};
use crate::sinks::{Sink, SinkError};
use crate::source::config::SourceConfig;
use crate::telemetry::server::TelemetryConfig;
use crate::transform::TransformConfig;

/// A value that cannot work, with its key: what every section's and sink's validation
/// returns. Sections name the whole key path (`consumer.fetch_interval`); sinks name the key
/// inside the sink (`connect_timeout`), which [`ForwarderConfig`] prefixes with `sinks[N].`.
pub use crate::encoding::field::InvalidSetting;

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
            Self::SplunkHec(config) => config
                .validate()
                .map_err(|error| InvalidSetting::new(error.key, error.reason)),
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
            Self::Syslog(_) | Self::Console(_) | Self::Null(_) => return Ok(()),
        };
        tls.client_config().map(drop).map_err(tls_setting)
    }

    /// Builds the sink, loading TLS files and the like (no connection is made).
    ///
    /// # Errors
    ///
    /// [`SinkError::Config`] when the settings cannot work.
    pub fn build(&self, index: usize) -> Result<Box<dyn Sink>, SinkError> {
        let name = self.name(index);
        Ok(match self {
            Self::File(config) => Box::new(config.build(&name)),
            Self::Console(config) => Box::new(config.build(&name)?),
            Self::Null(config) => Box::new(config.build(&name)?),
            Self::Syslog(config) => Box::new(config.build(&name)?),
            Self::SplunkHec(config) => Box::new(config.build(&name)?),
        })
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwarderConfig {
    /// Where logs come from.
    #[serde(default)]
    pub source: SourceConfig,
    /// The consumer group this process joins.
    pub consumer: ConsumerConfig,
    /// Where logs go; every log goes to every sink.
    #[serde(default)]
    pub sinks: Vec<SinkConfig>,
    /// Changes applied to every log before the sinks.
    #[serde(default)]
    pub transform: TransformConfig,
    /// The metrics, health and status endpoint.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{}: {}{message}", path.display(), line.map(|line| format!("line {line}: ")).unwrap_or_default())]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// The line of the offending key, when known.
    pub line: Option<usize>,
    /// What is wrong, naming the key.
    pub message: String,
}

/// A problem found in configuration text: the message and, when known, its line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", line.map(|line| format!("line {line}: ")).unwrap_or_default())]
pub struct Problem {
    /// The line of the offending key.
    pub line: Option<usize>,
    /// What is wrong, naming the key.
    pub message: String,
}

impl Problem {
    /// An invalid setting of a section, located in `text`.
    fn at_key(text: &str, error: InvalidSetting) -> Self {
        Self {
            line: locate::line_of(text, &error.key),
            message: error.to_string(),
        }
    }

    /// An invalid setting of sink `index` (named `name`), located in `text`.
    fn in_sink(text: &str, index: usize, name: &str, error: InvalidSetting) -> Self {
        let key = format!("sinks[{index}].{}", error.key);
        Self {
            line: locate::line_of(text, &key),
            message: format!("{key} ({name}): {}", error.reason),
        }
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
fn pinpoint_sink(text: &str) -> Option<Problem> {
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
        _ => None,
    }?;
    let whole_table = span.start == 0 && span.end >= fragment.trim_end().len();
    (!whole_table).then(|| header + 1 + fragment[..span.start].matches('\n').count())
}

/// Where deserializing `fragment` as `T` fails, when TOML knows.
fn value_span<T: serde::de::DeserializeOwned>(fragment: &str) -> Option<std::ops::Range<usize>> {
    toml::from_str::<T>(fragment).err()?.span()
}

impl ForwarderConfig {
    /// Reads, expands and parses `path`, then runs every check that needs no connection.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the file, and the key and line where known.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_with_text(path).map(|(config, _)| config)
    }

    /// Like [`ForwarderConfig::load`], also returning the file's text (to locate keys later).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the file, and the key and line where known.
    pub fn load_with_text(path: &Path) -> Result<(Self, String), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError {
            path: path.to_owned(),
            line: None,
            message: format!("cannot read: {error}"),
        })?;
        let config =
            Self::parse(&text, |name| std::env::var(name).ok()).map_err(|problem| ConfigError {
                path: path.to_owned(),
                line: problem.line,
                message: problem.message,
            })?;
        Ok((config, text))
    }

    /// Parses configuration text (`lookup` reads environment variables) and validates it.
    ///
    /// # Errors
    ///
    /// A [`Problem`] naming the key, with its line where known.
    pub fn parse(
        text: &str,
        lookup: impl Fn(&str) -> Option<String> + Copy,
    ) -> Result<Self, Problem> {
        let expanded = env::expand(text, lookup).map_err(|(line, message)| Problem {
            line: Some(line),
            message: match locate::key_at_line(text, line) {
                Some(key) => format!("{key}: {message}"),
                None => message,
            },
        })?;
        let config: Self = toml::from_str(&expanded).map_err(|error| {
            if let Some(problem) = pinpoint_sink(&expanded) {
                return problem;
            }
            // Expansion keeps line numbers, so TOML's line is the file's line.
            let line = error
                .span()
                .map(|span| expanded[..span.start].matches('\n').count() + 1);
            let message = error.message().trim_end();
            let message = match line.and_then(|line| locate::key_at_line(&expanded, line)) {
                Some(key) => format!("{key}: {message}"),
                None => message.to_owned(),
            };
            Problem { line, message }
        })?;
        config.validate(text, lookup)?;
        Ok(config)
    }

    /// Checks what needs the file system (TLS files, the file sink's directory) and builds
    /// every sink once (no connection), reporting the first failure with the key and line of
    /// `path`, whose content is `text`.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for the first sink that cannot be built.
    pub fn check_sinks(&self, path: &Path, text: &str) -> Result<(), ConfigError> {
        for (index, sink) in self.sinks.iter().enumerate() {
            let name = sink.name(index);
            let problem = match sink.check_files() {
                Err(error) => Problem::in_sink(text, index, &name, error),
                Ok(()) => match sink.build(index) {
                    Ok(_) => continue,
                    Err(error) => Problem {
                        line: locate::line_of(text, &format!("sinks[{index}]")),
                        message: format!("sinks[{index}] ({name}): {error}"),
                    },
                },
            };
            return Err(ConfigError {
                path: path.to_owned(),
                line: problem.line,
                message: problem.message,
            });
        }
        Ok(())
    }

    fn validate(&self, text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<(), Problem> {
        let at_key = |error| Problem::at_key(text, error);
        self.source.resolve(lookup).map_err(at_key)?;
        self.consumer.validate().map_err(at_key)?;
        self.transform.build().map_err(at_key)?;
        if self.sinks.is_empty() {
            return Err(Problem {
                line: None,
                message: "no [[sinks]]: configure at least one destination".into(),
            });
        }
        let mut names = std::collections::BTreeSet::new();
        for (index, sink) in self.sinks.iter().enumerate() {
            let name = sink.name(index);
            if !names.insert(name.clone()) {
                let error = InvalidSetting::new("name", format!("`{name}` is used twice"));
                return Err(Problem::in_sink(text, index, &name, error));
            }
            sink.validate()
                .map_err(|error| Problem::in_sink(text, index, &name, error))?;
        }
        Ok(())
    }
}

//! The configuration file: TOML with `${VAR}` and `${VAR:-default}` expansion, unknown keys
//! rejected, every error naming the file (and the line and key where TOML knows them).
//! Component settings live beside their components; this module only aggregates them.

mod env;
pub mod locate;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::consumer::ConsumerConfig;
use crate::sinks::console::ConsoleSinkConfig;
use crate::sinks::file::FileSinkConfig;
use crate::sinks::null::NullSinkConfig;
use crate::sinks::splunk_hec::config::SplunkHecSinkConfig;
use crate::sinks::syslog::config::SyslogSinkConfig;
use crate::sinks::{Sink, SinkError};
use crate::source::config::SourceConfig;
use crate::telemetry::server::TelemetryConfig;
use crate::transform::TransformConfig;

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
    /// The sink's name: configured, or `TYPE-INDEX`.
    pub fn name(&self, index: usize) -> String {
        let (kind, name) = match self {
            Self::File(config) => ("file", &config.name),
            Self::Console(config) => ("console", &config.name),
            Self::Null(config) => ("null", &config.name),
            Self::Syslog(config) => ("syslog", &config.name),
            Self::SplunkHec(config) => ("splunk_hec", &config.name),
        };
        name.clone().unwrap_or_else(|| format!("{kind}-{index}"))
    }

    /// Checks the sink's settings without I/O.
    ///
    /// # Errors
    ///
    /// The offending key (relative to the sink) and the reason.
    pub fn validate(&self) -> Result<(), (String, String)> {
        match self {
            Self::File(_) | Self::Console(_) | Self::Null(_) => Ok(()),
            Self::Syslog(config) => config.validate().map_err(|error| (error.key, error.reason)),
            Self::SplunkHec(config) => config
                .validate()
                .map_err(|error| (error.key.to_owned(), error.reason)),
        }
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
    /// A problem with the key path at the start of `message`, located in `text`.
    fn at_leading_key(text: &str, message: String) -> Self {
        let line = locate::leading_key(&message).and_then(|key| locate::line_of(text, key));
        Self { line, message }
    }
}

/// For errors inside `[[sinks]]` TOML reports the array, not the element: deserializes each
/// sink alone to name the one at fault and its line.
fn pinpoint_sink(text: &str) -> Option<Problem> {
    let table: toml::Table = toml::from_str(text).ok()?;
    let sinks = table.get("sinks")?.as_array()?;
    sinks.iter().enumerate().find_map(|(index, sink)| {
        let error = SinkConfig::deserialize(sink.clone()).err()?;
        let key = format!("sinks[{index}]");
        Some(Problem {
            line: locate::line_of(text, &key),
            message: format!("{key}: {}", error.message().trim_end()),
        })
    })
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
            let message = match error.message().trim_end() {
                // TOML gives no reason for some characters, e.g. a control character in a
                // comment.
                "" => match error
                    .span()
                    .and_then(|span| expanded.get(span.start..)?.chars().next())
                {
                    Some(character) => format!("unexpected character {character:?}"),
                    None => "invalid TOML".to_owned(),
                },
                message => message.to_owned(),
            };
            let message = match line.and_then(|line| locate::key_at_line(&expanded, line)) {
                Some(key) => format!("{key}: {message}"),
                None => message,
            };
            Problem { line, message }
        })?;
        config.validate(text, lookup)?;
        Ok(config)
    }

    /// Builds every sink once (loading TLS files, no connection), reporting the first
    /// failure with the key and line of `path`, whose content is `text`.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for the first sink that cannot be built.
    pub fn check_sinks(&self, path: &Path, text: &str) -> Result<(), ConfigError> {
        for (index, sink) in self.sinks.iter().enumerate() {
            if let Err(error) = sink.build(index) {
                let detail = match &error {
                    SinkError::Config(detail) => detail.clone(),
                    other => other.to_string(),
                };
                // The sink's message starts with its key (`tls: ...` or `` `url`: ... ``); a
                // TLS file error names the precise key itself (`tls.ca_file: ...`).
                let (setting, reason) = match detail.split_once(':') {
                    Some((setting, reason)) => (setting.trim().trim_matches('`'), reason.trim()),
                    None => ("", detail.as_str()),
                };
                let (setting, reason) = match reason.split_once(':') {
                    Some((precise, rest)) if precise.starts_with(&format!("{setting}.")) => {
                        (precise, rest.trim())
                    }
                    _ => (setting, reason),
                };
                let key = format!("sinks[{index}].{setting}");
                return Err(ConfigError {
                    path: path.to_owned(),
                    line: locate::line_of(text, &key),
                    message: format!("{key} ({}): {reason}", sink.name(index)),
                });
            }
        }
        Ok(())
    }

    fn validate(&self, text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<(), Problem> {
        let at_key = |message: String| Problem::at_leading_key(text, message);
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
                return Err(at_key(format!(
                    "sinks[{index}].name `{name}` is used twice"
                )));
            }
            sink.validate().map_err(|(key, reason)| {
                at_key(format!("sinks[{index}].{key} ({name}): {reason}"))
            })?;
        }
        Ok(())
    }
}

//! The configuration file: TOML with `${VAR}` and `${VAR:-default}` expansion, unknown keys
//! rejected, every error naming the file (and the line and key where TOML knows them).
//! Component settings live beside their components; this module only aggregates them.

mod env;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::consumer::ConsumerConfig;
use crate::sinks::console::ConsoleSinkConfig;
use crate::sinks::file::FileSinkConfig;
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
            Self::Syslog(config) => ("syslog", &config.name),
            Self::SplunkHec(config) => ("splunk_hec", &config.name),
        };
        name.clone().unwrap_or_else(|| format!("{kind}-{index}"))
    }

    /// Checks the sink's settings without I/O.
    ///
    /// # Errors
    ///
    /// A message naming the offending key.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Self::File(_) | Self::Console(_) => Ok(()),
            Self::Syslog(config) => config.validate().map_err(|error| error.to_string()),
            Self::SplunkHec(config) => config.validate().map_err(|error| error.to_string()),
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
#[error("{}: {message}", path.display())]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong, with the line and key where known.
    pub message: String,
}

impl ForwarderConfig {
    /// Reads, expands and parses `path`, then runs every check that needs no connection.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the file, and the key and line where known.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let error = |message: String| ConfigError {
            path: path.to_owned(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(format!("cannot read: {e}")))?;
        Self::parse(&text, |name| std::env::var(name).ok()).map_err(error)
    }

    /// Parses configuration text (`lookup` reads environment variables) and validates it.
    ///
    /// # Errors
    ///
    /// A message with the line and key where known.
    pub fn parse(
        text: &str,
        lookup: impl Fn(&str) -> Option<String> + Copy,
    ) -> Result<Self, String> {
        let expanded = env::expand(text, lookup)?;
        let config: Self =
            toml::from_str(&expanded).map_err(|e| e.to_string().trim_end().to_owned())?;
        config.validate(lookup)?;
        Ok(config)
    }

    fn validate(&self, lookup: impl Fn(&str) -> Option<String>) -> Result<(), String> {
        self.source.resolve(lookup)?;
        self.consumer.validate()?;
        self.transform.build()?;
        if self.sinks.is_empty() {
            return Err("no [[sinks]]: configure at least one destination".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for (index, sink) in self.sinks.iter().enumerate() {
            let name = sink.name(index);
            if !names.insert(name.clone()) {
                return Err(format!("sinks[{index}].name `{name}` is used twice"));
            }
            sink.validate()
                .map_err(|error| format!("sinks[{index}] ({name}): {error}"))?;
        }
        Ok(())
    }
}

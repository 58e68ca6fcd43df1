//! The configuration file: TOML with `${VAR}` and `${VAR:-default}` expansion, unknown keys
//! rejected, every error naming the file (and the line and key where TOML knows them).
//! Component settings live beside their components; this module only aggregates them.

mod env;
pub mod locate;
mod sinks;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::consumer::ConsumerConfig;
use crate::sinks::SinkContext;
use crate::source::config::SourceConfig;
use crate::telemetry::server::TelemetryConfig;
use crate::transform::TransformConfig;

/// A value that cannot work, with its key: what every section's and sink's validation
/// returns. Sections name the whole key path (`consumer.fetch_interval`); sinks name the key
/// inside the sink (`connect_timeout`), which [`ForwarderConfig`] prefixes with `sinks[N].`.
pub use crate::encoding::field::InvalidSetting;
pub use sinks::SinkConfig;

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

/// Below this many unacknowledged batches per shard, `validate` warns that an archive seals
/// its files every few pulls.
const MIN_ARCHIVE_INFLIGHT_BATCHES: usize = 64;

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
            if let Some(problem) = sinks::pinpoint_sink(&expanded) {
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
                Ok(()) => match sink.build(index, &SinkContext::standalone()) {
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

    /// True when an `object_storage` sink is configured.
    pub fn has_archive(&self) -> bool {
        self.sinks
            .iter()
            .any(|sink| matches!(sink, SinkConfig::ObjectStorage(_)))
    }

    /// Settings that work but are likely mistakes, one sentence each naming the key: an
    /// archive sharing its consumer group with a SIEM sink, and a per-shard batch limit that
    /// makes an archive seal its files every few pulls.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if !self.has_archive() {
            return warnings;
        }
        let siems: Vec<String> = self
            .sinks
            .iter()
            .enumerate()
            .filter(|(_, sink)| matches!(sink, SinkConfig::SplunkHec(_) | SinkConfig::Syslog(_)))
            .map(|(index, sink)| sink.name(index))
            .collect();
        for (index, sink) in self.sinks.iter().enumerate() {
            if matches!(sink, SinkConfig::ObjectStorage(_)) && !siems.is_empty() {
                warnings.push(format!(
                    "sinks[{index}] ({}): the archive shares consumer group `{}` with {}: their \
                     checkpoints then wait for the archive's files (up to max_age), a crash \
                     resends those logs to the SIEM too, and a bucket outage stalls the SIEM; \
                     give the archive its own group and process",
                    sink.name(index),
                    self.consumer.group,
                    siems.join(", ")
                ));
            }
        }
        if let Some(batches) = self
            .consumer
            .max_inflight_batches
            .filter(|batches| *batches < MIN_ARCHIVE_INFLIGHT_BATCHES)
        {
            warnings.push(format!(
                "consumer.max_inflight_batches: {batches} makes the archive seal a shard's files \
                 every {batches} pulls; leave it unset (1024 with an archive) or set at least \
                 {MIN_ARCHIVE_INFLIGHT_BATCHES}"
            ));
        }
        warnings
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
                .and_then(|()| self.check_archive_prefix(sink))
                .map_err(|error| Problem::in_sink(text, index, &name, error))?;
        }
        Ok(())
    }

    /// With several logstores, an archive's names must tell them apart: their shards share
    /// ids and cursor ranges, so one logstore's objects would overwrite another's.
    fn check_archive_prefix(&self, sink: &SinkConfig) -> Result<(), InvalidSetting> {
        let logstores = self.source.logstores.len();
        match sink {
            SinkConfig::ObjectStorage(archive)
                if logstores > 1 && !archive.prefix.contains("{logstore}") =>
            {
                Err(InvalidSetting::new(
                    "prefix",
                    format!(
                        "must contain {{logstore}} when source.logstores has {logstores} logstores"
                    ),
                ))
            }
            _ => Ok(()),
        }
    }
}

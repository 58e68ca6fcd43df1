//! The `console` sink: writes each log to standard output, for trying things out.

use async_trait::async_trait;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::lines::write_lines;
use super::{Sink, SinkBatch, SinkError};
use crate::encoding::config::{EncodingConfig, Format};
use crate::encoding::Encoder;

/// Settings of the `console` sink.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSinkConfig {
    /// Sink name for logs and metrics, 1 to 64 characters without control characters, unique
    /// among the sinks. Default `console-N`.
    #[serde(default)]
    pub name: Option<String>,
    /// Line format, with the syslog sink's default header settings: `json` (default, the
    /// flattened log), `rfc5424`, `rfc3164`, `cef` or `leef`.
    #[serde(default = "default_format")]
    pub format: Format,
}

fn default_format() -> Format {
    Format::Json
}

impl ConsoleSinkConfig {
    /// Builds the sink.
    ///
    /// # Errors
    ///
    /// [`SinkError::Config`] when the format cannot be built.
    pub fn build(&self, name: &str) -> Result<ConsoleSink, SinkError> {
        let encoder = EncodingConfig::for_format(self.format)
            .encoder()
            .map_err(|error| SinkError::Config(error.to_string()))?;
        Ok(ConsoleSink {
            name: self.name.clone().unwrap_or_else(|| name.to_owned()),
            encoder,
        })
    }
}

/// Prints one encoded log per line.
pub struct ConsoleSink {
    name: String,
    encoder: Box<dyn Encoder>,
}

#[async_trait]
impl Sink for ConsoleSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn run(
        self: Box<Self>,
        input: mpsc::Receiver<SinkBatch>,
        shutdown: CancellationToken,
    ) -> Result<(), SinkError> {
        write_lines(
            &self.name,
            self.encoder.as_ref(),
            tokio::io::stdout(),
            None,
            input,
            shutdown,
        )
        .await
    }
}

//! The `file` sink: one flattened JSON object per log, appended to a file and flushed before
//! the batch is acknowledged. For local use, debugging and tests.

use std::path::PathBuf;

use async_trait::async_trait;
use serde::Deserialize;
use tokio::fs::{File, OpenOptions};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::lines::{write_lines, Sync};
use super::{Sink, SinkBatch, SinkError};
use crate::encoding::json::FlatJsonEncoder;

/// Settings of the `file` sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// Sink name for logs and metrics. Default `file-N`.
    #[serde(default)]
    pub name: Option<String>,
    /// File to append to (created when missing).
    pub path: PathBuf,
    /// Also fsync before acknowledging, so delivered logs survive a power loss. Default false.
    #[serde(default)]
    pub fsync: bool,
}

impl FileSinkConfig {
    /// Builds the sink (the file is opened when it starts running).
    pub fn build(&self, name: &str) -> FileSink {
        FileSink {
            name: self.name.clone().unwrap_or_else(|| name.to_owned()),
            config: self.clone(),
        }
    }
}

/// Appends flattened logs to a file.
#[derive(Debug)]
pub struct FileSink {
    name: String,
    config: FileSinkConfig,
}

#[async_trait]
impl Sink for FileSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn healthcheck(&self) -> Result<(), SinkError> {
        let parent = self
            .config
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty());
        match parent {
            Some(dir) if !dir.is_dir() => Err(SinkError::Config(format!(
                "directory {} of the file sink does not exist",
                dir.display()
            ))),
            _ => Ok(()),
        }
    }

    async fn run(
        self: Box<Self>,
        input: mpsc::Receiver<SinkBatch>,
        shutdown: CancellationToken,
    ) -> Result<(), SinkError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.config.path)
            .await?;
        let sync: Option<Sync<File>> = self
            .config
            .fsync
            .then_some(|file| Box::pin(file.sync_data()));
        write_lines(&self.name, &FlatJsonEncoder, file, sync, input, shutdown).await
    }
}

//! The `file` sink: one flattened JSON object per log, appended to a file and flushed before
//! the batch is acknowledged. For local use, debugging and tests.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::Deserialize;
use tokio::fs::{File, OpenOptions};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::lines::{write_lines, Sync};
use super::{Sink, SinkBatch, SinkError};
use crate::encoding::field::InvalidSetting;
use crate::encoding::json::FlatJsonEncoder;

/// Settings of the `file` sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// Sink name for logs and metrics, 1 to 64 characters without control characters, unique
    /// among the sinks. Default `file-N`.
    #[serde(default)]
    pub name: Option<String>,
    /// File to append to (created when missing); not empty, not a directory, in an existing
    /// directory.
    pub path: PathBuf,
    /// Also fsync before acknowledging, so delivered logs survive a power loss. Default false.
    #[serde(default)]
    pub fsync: bool,
}

impl FileSinkConfig {
    /// Checks the settings without I/O.
    ///
    /// # Errors
    ///
    /// The offending key and why.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.path.as_os_str().is_empty() {
            return Err(InvalidSetting::new("path", "must not be empty"));
        }
        Ok(())
    }

    /// Checks that the file can be created where `path` says: the path is not a directory
    /// and its directory exists (reads the file system, opens nothing).
    ///
    /// # Errors
    ///
    /// `path` and why.
    pub fn check_path(&self) -> Result<(), InvalidSetting> {
        if self.path.is_dir() {
            return Err(InvalidSetting::new(
                "path",
                format!("`{}` is a directory", self.path.display()),
            ));
        }
        match missing_directory(&self.path) {
            Some(dir) => Err(InvalidSetting::new(
                "path",
                format!("directory {} does not exist", dir.display()),
            )),
            None => Ok(()),
        }
    }

    /// Builds the sink (the file is opened when it starts running).
    pub fn build(&self, name: &str) -> FileSink {
        FileSink {
            name: self.name.clone().unwrap_or_else(|| name.to_owned()),
            config: self.clone(),
        }
    }
}

/// The directory of `path` when it does not exist.
fn missing_directory(path: &Path) -> Option<&Path> {
    path.parent()
        .filter(|dir| !dir.as_os_str().is_empty() && !dir.is_dir())
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
        match missing_directory(&self.config.path) {
            Some(dir) => Err(SinkError::Config(format!(
                "directory {} of the file sink does not exist",
                dir.display()
            ))),
            None => Ok(()),
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

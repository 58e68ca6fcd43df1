//! The dead-letter file: events Splunk rejected as bad data, one JSON object per line with
//! the event as sent, the collector's code and text, the shard it came from and the time it
//! was set aside. The line is written and synced before its batch may be confirmed.

use std::path::{Path, PathBuf};

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

/// One rejected event.
#[derive(Debug, Serialize)]
pub(crate) struct DeadLetter<'a> {
    /// When the event was set aside (RFC 3339, UTC).
    pub time: String,
    /// The sink that rejected it.
    pub sink: &'a str,
    /// `logstore/shard` the log came from.
    pub shard: String,
    /// Position of its batch in the shard.
    pub sequence: u64,
    /// HEC code (or HTTP status when the answer had none).
    pub code: i64,
    /// The collector's answer.
    pub reason: &'a str,
    /// The event as sent: the JSON envelope, or the raw line as a string.
    pub event: serde_json::Value,
}

/// Appends dead letters to a file.
#[derive(Debug)]
pub(crate) struct DeadLetterFile {
    path: PathBuf,
    file: Mutex<Option<tokio::fs::File>>,
}

impl DeadLetterFile {
    /// A dead-letter file at `path`, opened on first use.
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            file: Mutex::new(None),
        }
    }

    /// Where the letters go.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `letter` as one line and syncs it to disk.
    pub async fn write(&self, letter: &DeadLetter<'_>) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(letter)?;
        line.push(b'\n');
        let mut file = self.file.lock().await;
        if file.is_none() {
            let mut options = tokio::fs::OpenOptions::new();
            options.create(true).append(true);
            // The letters are whole audit events: readable by the forwarder's user only.
            #[cfg(unix)]
            options.mode(0o600);
            let opened = options.open(&self.path).await?;
            *file = Some(opened);
        }
        let Some(open) = file.as_mut() else {
            return Err(std::io::Error::other("dead-letter file not open"));
        };
        let written = async {
            open.write_all(&line).await?;
            open.sync_data().await
        }
        .await;
        if written.is_err() {
            // Reopen next time, in case the file was rotated away or the disk recovered.
            *file = None;
        }
        written
    }
}

/// The event text as a JSON value: the envelope itself, or a string for a raw line.
pub(crate) fn event_value(text: &[u8]) -> serde_json::Value {
    serde_json::from_slice(text)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(text).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn letters_are_appended_as_json_lines() {
        let directory = tempfile::tempdir().unwrap();
        let file = DeadLetterFile::new(directory.path().join("dead.jsonl"));
        for code in [6, 12] {
            let letter = DeadLetter {
                time: "2026-01-01T00:00:00Z".into(),
                sink: "splunk",
                shard: "ls/1".into(),
                sequence: 3,
                code,
                reason: "Invalid data format",
                event: event_value(br#"{"event":{"k":"v"}}"#),
            };
            file.write(&letter).await.unwrap();
        }
        let text = std::fs::read_to_string(file.path()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["code"], 12);
        assert_eq!(lines[0]["event"]["event"]["k"], "v");
        assert_eq!(event_value(b"plain line"), "plain line");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(file.path()).unwrap().permissions().mode();
            assert_eq!(
                mode & 0o777,
                0o600,
                "dead letters are private to their owner"
            );
        }
    }
}

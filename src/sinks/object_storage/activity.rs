//! What an archive shows in `/status` beside its open files: the uploads in flight (attempts,
//! last error) and the last finished ones, the seeds' "task history".

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::time::Instant;

/// Finished uploads kept for `/status`.
const HISTORY: usize = 100;

/// An object being stored.
#[derive(Debug, Clone, Serialize)]
pub struct Upload {
    /// Object name.
    pub key: String,
    /// Body bytes.
    pub bytes: u64,
    /// Attempts so far.
    pub attempts: u32,
    /// The last attempt's error, if it failed.
    pub last_error: Option<String>,
    /// When its oldest log's file was opened.
    #[serde(skip)]
    pub opened_at: Instant,
}

/// A stored object.
#[derive(Debug, Clone, Serialize)]
pub struct Finished {
    /// Object name (it holds the shard and the cursor range).
    pub key: String,
    /// Logs in it.
    pub logs: u64,
    /// Body bytes.
    pub bytes: u64,
    /// Encoded bytes before compression.
    pub uncompressed_bytes: u64,
    /// Why its file was sealed.
    pub sealed: &'static str,
    /// Attempts it took.
    pub attempts: u32,
    /// From the first attempt to the stored answer.
    pub duration_ms: u64,
    /// When it was stored, Unix seconds.
    pub finished_at: u64,
}

/// Uploads in flight and the last finished ones of one archive.
#[derive(Debug, Default)]
pub struct Activity {
    uploading: BTreeMap<String, Upload>,
    history: VecDeque<Finished>,
}

/// An [`Activity`] shared by the run loop and the upload tasks.
pub type SharedActivity = Arc<Mutex<Activity>>;

impl Activity {
    /// An upload of `key` starts.
    pub fn started(&mut self, key: &str, bytes: u64, opened_at: Instant) {
        self.uploading.insert(
            key.to_owned(),
            Upload {
                key: key.to_owned(),
                bytes,
                attempts: 0,
                last_error: None,
                opened_at,
            },
        );
    }

    /// An attempt at `key` is made; `error` when it failed.
    pub fn attempted(&mut self, key: &str, error: Option<String>) {
        if let Some(upload) = self.uploading.get_mut(key) {
            upload.attempts += 1;
            upload.last_error = error;
        }
    }

    /// The upload of `finished.key` ended with the object stored.
    pub fn finished(&mut self, mut finished: Finished) {
        self.uploading.remove(&finished.key);
        finished.finished_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(finished);
    }

    /// The upload of `key` was abandoned (the sink stops).
    pub fn abandoned(&mut self, key: &str) {
        self.uploading.remove(key);
    }

    /// When the oldest file of the uploads in flight was opened.
    pub fn oldest(&self) -> Option<Instant> {
        self.uploading.values().map(|upload| upload.opened_at).min()
    }

    /// The uploads in flight, by name.
    pub fn uploading(&self) -> Vec<Upload> {
        self.uploading.values().cloned().collect()
    }

    /// The last finished uploads, oldest first.
    pub fn history(&self) -> Vec<Finished> {
        self.history.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(key: &str) -> Finished {
        Finished {
            key: key.into(),
            logs: 1,
            bytes: 1,
            uncompressed_bytes: 1,
            sealed: "age",
            attempts: 1,
            duration_ms: 0,
            finished_at: 0,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn uploads_move_to_a_bounded_history_once_stored() {
        let mut activity = Activity::default();
        let opened = Instant::now();
        activity.started("a", 10, opened);
        activity.attempted("a", Some("503".into()));
        activity.attempted("a", None);
        let uploading = activity.uploading();
        assert_eq!(
            (uploading[0].attempts, uploading[0].last_error.clone()),
            (2, None)
        );
        assert_eq!(activity.oldest(), Some(opened));
        activity.finished(finished("a"));
        assert!(activity.uploading().is_empty());
        assert_eq!(activity.oldest(), None);
        for index in 0..HISTORY + 5 {
            activity.finished(finished(&index.to_string()));
        }
        let history = activity.history();
        assert_eq!(history.len(), HISTORY);
        assert_eq!(history[0].key, "5", "the oldest are dropped first");
    }
}

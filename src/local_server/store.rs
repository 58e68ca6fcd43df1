//! Durable shard storage of the local server.
//!
//! Each shard keeps the `LogGroupList` entries it received, back to back, in memory and in
//! `shard-N.data`, with `shard-N.index` holding one 12-byte record per group (end offset and
//! receive time). A group's position (its cursor) is its index. PullLogs serves a slice of
//! the stored bytes as is: a run of list entries is itself a valid `LogGroupList`.
//!
//! Durability: a PutLogs is answered only after the data and index records were written and
//! fsynced. On start-up a data tail without an index record (a crash between the two writes)
//! is cut off, so every acknowledged group survives and nothing half-written is served.
//!
//! Locking: appends are serialized by the shard's file lock, which is held across the
//! writes and fsyncs; readers only take the in-memory lock, which an append holds just long
//! enough to publish a group after its fsync. So a slow disk delays other appends to the
//! same shard, never a read, a GetCursor or a heartbeat, and readers never see unsynced data.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use serde::{Deserialize, Serialize};

use crate::common::time::unix_now;
use crate::source::protobuf;
pub use crate::source::ShardInfo;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file could not be read or written.
    #[error("storage i/o on `{path}`: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A metadata file is not valid.
    #[error("corrupt metadata `{path}`: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A project or logstore name that is not a plain directory name.
    #[error("invalid {kind} name `{name}`: use 2 to 63 lowercase letters, digits, `-` or `_`")]
    InvalidName {
        /// `project` or `logstore`.
        kind: &'static str,
        /// The name as given.
        name: String,
    },
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Splits the 128-bit key space evenly into `count` shards.
pub fn even_shards(count: u32, create_time: u32) -> Vec<ShardInfo> {
    let count = u128::from(count.max(1));
    // floor(index * 2^128 / count), computed without overflowing: 2^128 = q * count + r + 1.
    let (quotient, remainder) = (u128::MAX / count, u128::MAX % count);
    let boundary = |index: u128| index * quotient + index * (remainder + 1) / count;
    (0..count)
        .map(|index| {
            let begin = boundary(index);
            let end = if index + 1 == count {
                "ffffffffffffffffffffffffffffffff".to_owned()
            } else {
                format!("{:032x}", boundary(index + 1))
            };
            ShardInfo {
                shard_id: index as u32,
                status: "readwrite".to_owned(),
                inclusive_begin_key: format!("{begin:032x}"),
                exclusive_end_key: end,
                create_time,
            }
        })
        .collect()
}

/// What a pull returns: list entries of consecutive groups and where they end.
#[derive(Debug)]
pub struct PulledRange<T> {
    /// The `LogGroupList` bytes (or what the caller made of them).
    pub payload: T,
    /// Number of groups returned.
    pub count: usize,
    /// Position after the last group returned.
    pub next: u64,
    /// Receive time of the last group returned (or of the one before the cursor).
    pub cursor_time: u32,
    /// Position one past the newest stored group.
    pub end: u64,
}

/// What readers see: only groups whose records are fsynced.
#[derive(Debug, Default)]
struct ShardData {
    /// Stored list entries back to back.
    bytes: Vec<u8>,
    /// End offset of each group's entry in `bytes`.
    ends: Vec<u64>,
    /// Receive time of each group, non-decreasing.
    receive_times: Vec<u32>,
}

/// The shard's files; their lock serializes appends.
#[derive(Debug)]
struct ShardFiles {
    data: File,
    index: File,
}

/// One shard's stored groups.
#[derive(Debug)]
pub struct Shard {
    data: RwLock<ShardData>,
    files: Mutex<ShardFiles>,
    data_path: PathBuf,
    index_path: PathBuf,
}

const INDEX_RECORD: usize = 12;

impl Shard {
    /// Opens (or creates) the shard files in `dir`, recovering from a torn last write.
    ///
    /// # Errors
    ///
    /// Fails on I/O errors.
    pub fn open(dir: &Path, shard_id: u32) -> Result<Self, StoreError> {
        let data_path = dir.join(format!("shard-{shard_id}.data"));
        let index_path = dir.join(format!("shard-{shard_id}.index"));
        let open = |path: &Path| {
            OpenOptions::new()
                .create(true)
                .read(true)
                .append(true)
                .open(path)
                .map_err(io_error(path))
        };
        let mut data_file = open(&data_path)?;
        let mut index_file = open(&index_path)?;
        let mut index = Vec::new();
        index_file
            .read_to_end(&mut index)
            .map_err(io_error(&index_path))?;
        let whole_records = index.len() / INDEX_RECORD;
        let mut ends = Vec::with_capacity(whole_records);
        let mut receive_times = Vec::with_capacity(whole_records);
        for record in index.chunks_exact(INDEX_RECORD) {
            ends.push(u64::from_le_bytes(record[..8].try_into().expect("8 bytes")));
            receive_times.push(u32::from_le_bytes(record[8..].try_into().expect("4 bytes")));
        }
        let mut bytes = Vec::new();
        data_file
            .read_to_end(&mut bytes)
            .map_err(io_error(&data_path))?;
        let indexed_len = ends.last().copied().unwrap_or(0);
        if (bytes.len() as u64) < indexed_len {
            return Err(StoreError::Corrupt {
                path: data_path,
                reason: format!(
                    "data ends at {} but the index expects {indexed_len}",
                    bytes.len()
                ),
            });
        }
        if bytes.len() as u64 > indexed_len || index.len() % INDEX_RECORD != 0 {
            tracing::warn!(path = %data_path.display(), "dropping a partially written tail");
            bytes.truncate(indexed_len as usize);
            data_file
                .set_len(indexed_len)
                .map_err(io_error(&data_path))?;
            index_file
                .set_len((whole_records * INDEX_RECORD) as u64)
                .map_err(io_error(&index_path))?;
        }
        Ok(Self {
            data: RwLock::new(ShardData {
                bytes,
                ends,
                receive_times,
            }),
            files: Mutex::new(ShardFiles {
                data: data_file,
                index: index_file,
            }),
            data_path,
            index_path,
        })
    }

    /// Appends one encoded `LogGroup` durably and returns its position. Blocks on disk I/O:
    /// call it from a blocking thread.
    ///
    /// # Errors
    ///
    /// Fails on I/O errors; the group is then not stored.
    pub fn append(&self, log_group: &[u8]) -> Result<u64, StoreError> {
        let mut entry = Vec::with_capacity(protobuf::list_entry_len(log_group.len()));
        protobuf::append_list_entry(&mut entry, log_group);
        let mut files = self.files.lock().expect("shard files lock");
        // Only appends change the published data, and they hold the file lock.
        let (data_len, groups, last_time) = {
            let data = self.data.read().expect("shard lock");
            let last_time = data.receive_times.last().copied().unwrap_or(0);
            (data.bytes.len() as u64, data.ends.len() as u64, last_time)
        };
        let receive_time = unix_now().max(last_time);
        let end = data_len + entry.len() as u64;
        let mut record = [0u8; INDEX_RECORD];
        record[..8].copy_from_slice(&end.to_le_bytes());
        record[8..].copy_from_slice(&receive_time.to_le_bytes());
        let written = write_synced(&mut files.data, &entry, &self.data_path)
            .and_then(|()| write_synced(&mut files.index, &record, &self.index_path));
        if let Err(error) = written {
            // Cut both files back so the next append lines up with the published data.
            let _ = files.data.set_len(data_len);
            let _ = files.index.set_len(groups * INDEX_RECORD as u64);
            return Err(error);
        }
        let mut data = self.data.write().expect("shard lock");
        data.bytes.extend_from_slice(&entry);
        data.ends.push(end);
        data.receive_times.push(receive_time);
        Ok(groups)
    }

    /// Number of stored groups (the end cursor's position).
    pub fn end(&self) -> u64 {
        self.data.read().expect("shard lock").ends.len() as u64
    }

    /// The position of the first group received at or after `time`, or the end.
    pub fn position_at(&self, time: u32) -> u64 {
        let data = self.data.read().expect("shard lock");
        data.receive_times
            .partition_point(|received| *received < time) as u64
    }

    /// Receive time of the group before `position` (the cursor's time), or 0.
    pub fn time_before(&self, position: u64) -> u32 {
        let data = self.data.read().expect("shard lock");
        position
            .checked_sub(1)
            .and_then(|index| data.receive_times.get(index as usize).copied())
            .unwrap_or(0)
    }

    /// Reads up to `max_groups` groups (and at most about `max_bytes`, but always at least
    /// one group) from `position`, stopping before `until` when given, and hands the raw
    /// `LogGroupList` bytes to `serve` while the shard is read-locked (no copy).
    pub fn read<T>(
        &self,
        position: u64,
        max_groups: usize,
        max_bytes: usize,
        until: Option<u64>,
        serve: impl FnOnce(&[u8]) -> T,
    ) -> PulledRange<T> {
        let data = self.data.read().expect("shard lock");
        let end = data.ends.len() as u64;
        let stop = until.unwrap_or(end).min(end).max(position);
        let start_offset = offset_before(&data.ends, position);
        let mut next = position;
        while next < stop && (next - position) < max_groups as u64 {
            let candidate_end = data.ends[next as usize];
            if next > position && (candidate_end - start_offset) as usize > max_bytes {
                break;
            }
            next += 1;
        }
        let end_offset = offset_before(&data.ends, next);
        let payload = serve(&data.bytes[start_offset as usize..end_offset as usize]);
        let cursor_time = next
            .checked_sub(1)
            .and_then(|index| data.receive_times.get(index as usize).copied())
            .unwrap_or(0);
        PulledRange {
            payload,
            count: (next - position) as usize,
            next,
            cursor_time,
            end,
        }
    }
}

fn write_synced(file: &mut File, bytes: &[u8], path: &Path) -> Result<(), StoreError> {
    file.write_all(bytes)
        .and_then(|()| file.sync_data())
        .map_err(io_error(path))
}

fn offset_before(ends: &[u64], position: u64) -> u64 {
    position
        .checked_sub(1)
        .map(|index| ends[index as usize])
        .unwrap_or(0)
}

/// Writes `value` as JSON to `path` atomically: temp file, fsync, rename, fsync the directory.
///
/// # Errors
///
/// Fails on I/O errors; the previous file is then left intact.
pub fn write_json_atomically<T: Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    write_atomically(
        path,
        &serde_json::to_vec_pretty(value).expect("metadata serializes"),
    )
}

fn write_atomically(path: &Path, text: &[u8]) -> Result<(), StoreError> {
    let temp = path.with_extension("json.tmp");
    let mut file = File::create(&temp).map_err(io_error(&temp))?;
    file.write_all(text)
        .and_then(|()| file.sync_all())
        .map_err(io_error(&temp))?;
    fs::rename(&temp, path).map_err(io_error(path))?;
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|dir| dir.sync_all())
            .map_err(io_error(dir))?;
    }
    Ok(())
}

/// A JSON file rewritten atomically from numbered snapshots. Snapshots are numbered in the
/// order they are taken (take them under the lock that guards the value), written outside
/// that lock, and a snapshot older than the one on disk is skipped: writers that finish out
/// of order never leave an older state behind.
#[derive(Debug)]
pub struct SnapshotFile {
    path: PathBuf,
    /// The number of the newest snapshot taken.
    pub(super) taken: AtomicU64,
    /// The number of the snapshot on disk; held while writing.
    pub(super) written: Mutex<u64>,
}

/// A value serialized for a [`SnapshotFile`], with its number.
#[derive(Debug)]
pub struct Snapshot {
    number: u64,
    text: Vec<u8>,
}

impl SnapshotFile {
    /// A snapshot file at `path`.
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            taken: AtomicU64::new(0),
            written: Mutex::new(0),
        }
    }

    /// Serializes `value` as the newest snapshot.
    pub fn snapshot<T: Serialize>(&self, value: &T) -> Snapshot {
        Snapshot {
            number: self.taken.fetch_add(1, Ordering::SeqCst) + 1,
            text: serde_json::to_vec_pretty(value).expect("metadata serializes"),
        }
    }

    /// Writes `snapshot` (temp file, fsync, rename, fsync the directory) unless a newer one
    /// is already on disk. Blocks on disk I/O: call it from a blocking thread.
    ///
    /// # Errors
    ///
    /// Fails on I/O errors; the previous file is then left intact.
    pub fn write(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let mut written = self.written.lock().expect("snapshot file lock");
        if snapshot.number <= *written {
            return Ok(());
        }
        write_atomically(&self.path, &snapshot.text)?;
        *written = snapshot.number;
        Ok(())
    }
}

/// Reads a JSON file, or `None` when it does not exist.
///
/// # Errors
///
/// Fails on I/O errors or invalid JSON.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, StoreError> {
    match fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|error| StoreError::Corrupt {
                    path: path.to_owned(),
                    reason: error.to_string(),
                })
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(io_error(path)(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::protobuf::{Log, LogGroup};

    fn group(text: &str) -> Vec<u8> {
        LogGroup {
            logs: vec![Log {
                time: 1,
                time_ns: None,
                contents: vec![("msg".into(), text.into())],
            }],
            ..LogGroup::default()
        }
        .to_bytes()
    }

    #[test]
    fn appended_groups_survive_reopen_and_torn_tails_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        {
            let shard = Shard::open(dir.path(), 0).unwrap();
            assert_eq!(shard.append(&group("a")).unwrap(), 0);
            assert_eq!(shard.append(&group("b")).unwrap(), 1);
        }
        // A crash after the data write but before the index write.
        let mut data = OpenOptions::new()
            .append(true)
            .open(dir.path().join("shard-0.data"))
            .unwrap();
        data.write_all(b"\x0a\x05junk").unwrap();
        let shard = Shard::open(dir.path(), 0).unwrap();
        assert_eq!(shard.end(), 2);
        let pulled = shard.read(0, 10, usize::MAX, None, |bytes| bytes.to_vec());
        assert_eq!((pulled.count, pulled.next, pulled.end), (2, 2, 2));
        let records =
            crate::source::protobuf::decode_log_group_list(pulled.payload.into()).unwrap();
        let texts: Vec<_> = records
            .iter()
            .map(|r| r.fields.get("msg").unwrap().to_owned())
            .collect();
        assert_eq!(texts, ["a", "b"]);
        assert_eq!(shard.append(&group("c")).unwrap(), 2);
    }

    #[test]
    fn reads_respect_count_bytes_and_end_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let shard = Shard::open(dir.path(), 3).unwrap();
        for index in 0..10 {
            shard.append(&group(&index.to_string())).unwrap();
        }
        assert_eq!(shard.read(2, 3, usize::MAX, None, |_| ()).next, 5);
        assert_eq!(shard.read(2, 100, usize::MAX, Some(4), |_| ()).next, 4);
        assert_eq!(
            shard.read(2, 100, 1, None, |_| ()).count,
            1,
            "at least one group"
        );
        let at_end = shard.read(10, 100, usize::MAX, None, |bytes| bytes.len());
        assert_eq!((at_end.count, at_end.next, at_end.payload), (0, 10, 0));
        assert_eq!(shard.position_at(0), 0);
        assert_eq!(shard.position_at(u32::MAX), 10);
    }

    #[test]
    fn readers_do_not_wait_for_an_append_stuck_in_its_write() {
        use std::os::fd::OwnedFd;
        use std::os::unix::net::UnixStream;
        use std::time::{Duration, Instant};

        let dir = tempfile::tempdir().unwrap();
        let shard = Shard::open(dir.path(), 0).unwrap();
        shard.append(&group("a")).unwrap();
        // The data file becomes a socket nobody reads yet: the next append blocks in its
        // write, and since a socket cannot be fsynced, it then fails.
        let (stuck, drain) = UnixStream::pair().unwrap();
        shard.files.lock().unwrap().data = File::from(OwnedFd::from(stuck));
        let big = group(&"x".repeat(4 << 20));
        let entry_len = protobuf::list_entry_len(big.len()) as u64;
        let shard = &shard;
        std::thread::scope(|scope| {
            let writer = scope.spawn(move || shard.append(&big));
            let deadline = Instant::now() + Duration::from_secs(30);
            while shard.files.try_lock().is_ok() {
                assert!(Instant::now() < deadline, "the append never started");
                std::thread::sleep(Duration::from_millis(1));
            }
            let (sender, receiver) = std::sync::mpsc::channel();
            scope.spawn(move || {
                let pulled = shard.read(0, 10, usize::MAX, None, |bytes| bytes.len());
                sender.send((shard.end(), pulled.count)).unwrap();
            });
            let read = receiver.recv_timeout(Duration::from_secs(30));
            std::io::copy(&mut (&drain).take(entry_len), &mut std::io::sink()).unwrap();
            assert!(writer.join().unwrap().is_err(), "a socket cannot be synced");
            assert_eq!(
                read.expect("reads do not wait for an append in its write"),
                (1, 1),
                "nothing is published before it is synced"
            );
        });
        assert_eq!(shard.end(), 1, "a failed append publishes nothing");
    }

    #[test]
    fn an_older_snapshot_never_overwrites_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("groups.json");
        let file = SnapshotFile::new(path.clone());
        let older = file.snapshot(&"first");
        let newer = file.snapshot(&"second");
        file.write(&newer).unwrap();
        file.write(&older).unwrap();
        assert_eq!(read_json::<String>(&path).unwrap().unwrap(), "second");
        let newest = file.snapshot(&"third");
        file.write(&newest).unwrap();
        assert_eq!(read_json::<String>(&path).unwrap().unwrap(), "third");
    }

    #[test]
    fn even_shards_cover_the_key_space() {
        let shards = even_shards(4, 0);
        assert_eq!(shards[0].inclusive_begin_key, "0".repeat(32));
        assert_eq!(shards[1].inclusive_begin_key, shards[0].exclusive_end_key);
        assert_eq!(shards[3].exclusive_end_key, "f".repeat(32));
        assert_eq!(
            even_shards(2, 0)[1].inclusive_begin_key,
            format!("8{}", "0".repeat(31))
        );
    }
}

//! A logstore's shards: the metadata file (`meta.json`: shards and the parents of split or
//! merged ones), lookup, the shard a write goes to, and split and merge. Its consumer groups
//! are in [`super::groups`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use super::groups::{self, Group};
use super::Failure;
use crate::common::time::unix_now;
use crate::local_server::store::{
    self, read_json, write_json_atomically, Shard, ShardInfo, SnapshotFile, StoreError,
};
use crate::source::ApiErrorCode;

/// A logstore: its shards and consumer groups.
#[derive(Debug)]
pub struct Logstore {
    pub(super) dir: PathBuf,
    pub(super) shards: RwLock<Vec<(ShardInfo, Arc<Shard>)>>,
    /// Shards created by a split or merge → the shards they came from.
    pub(super) parents: RwLock<BTreeMap<u32, Vec<u32>>>,
    pub(super) groups: Mutex<BTreeMap<String, Group>>,
    /// `consumer-groups.json`, written outside the `groups` lock.
    pub(super) groups_file: Arc<SnapshotFile>,
    next_shard: AtomicUsize,
}

#[derive(Debug, Serialize, Deserialize)]
struct LogstoreMeta {
    shards: Vec<ShardInfo>,
    #[serde(default)]
    parents: BTreeMap<u32, Vec<u32>>,
}

impl Logstore {
    fn meta_path(dir: &Path) -> PathBuf {
        dir.join("meta.json")
    }

    /// Opens a logstore directory, creating it with `shard_count` shards when new.
    pub(super) fn open(dir: PathBuf, shard_count: u32) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&dir).map_err(store::io_error(&dir))?;
        let meta_path = Self::meta_path(&dir);
        let meta = match read_json::<LogstoreMeta>(&meta_path)? {
            Some(meta) => meta,
            None => {
                let meta = LogstoreMeta {
                    shards: store::even_shards(shard_count, unix_now()),
                    parents: BTreeMap::new(),
                };
                write_json_atomically(&meta_path, &meta)?;
                meta
            }
        };
        let parents = meta.parents;
        let shards = meta
            .shards
            .into_iter()
            .map(|info| {
                let shard = Shard::open(&dir, info.shard_id)?;
                Ok((info, Arc::new(shard)))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let (groups, groups_file) = groups::open(&dir)?;
        Ok(Self {
            dir,
            shards: RwLock::new(shards),
            parents: RwLock::new(parents),
            groups: Mutex::new(groups),
            groups_file: Arc::new(groups_file),
            next_shard: AtomicUsize::new(0),
        })
    }

    /// Shard metadata, for ListShards.
    pub fn shard_infos(&self) -> Vec<ShardInfo> {
        let shards = self.shards.read().expect("shards lock");
        shards.iter().map(|(info, _)| info.clone()).collect()
    }

    /// The shard with id `shard_id`, when it accepts writes.
    ///
    /// # Errors
    ///
    /// `ShardNotExist`, or `ShardReadOnly` for a split or merged shard.
    pub fn writable_shard(&self, shard_id: u32) -> Result<Arc<Shard>, Failure> {
        let readonly = self
            .shard_infos()
            .iter()
            .any(|info| info.shard_id == shard_id && !info.is_readwrite());
        if readonly {
            return Err(Failure::new(
                ApiErrorCode::Other("ShardReadOnly".into()),
                format!("shard {shard_id} is readonly"),
            ));
        }
        self.shard(shard_id)
    }

    /// Splits readwrite shard `shard_id` at the 32-hex-digit `key`: the shard becomes
    /// readonly and two new shards cover `[begin, key)` and `[key, end)`. Returns the three.
    ///
    /// # Errors
    ///
    /// `ShardNotExist`, `ParameterInvalid` (key outside the range, shard readonly), storage.
    pub fn split(&self, shard_id: u32, key: &str) -> Result<Vec<ShardInfo>, Failure> {
        let key = key.to_ascii_lowercase();
        self.reshape(|shards| {
            let parent = shards
                .iter()
                .position(|(info, _)| info.shard_id == shard_id)
                .ok_or_else(|| {
                    Failure::new(
                        ApiErrorCode::ShardNotExist,
                        format!("shard {shard_id} does not exist"),
                    )
                })?;
            let info = shards[parent].0.clone();
            if !info.is_readwrite()
                || key.len() != 32
                || key <= info.inclusive_begin_key
                || key >= info.exclusive_end_key
            {
                return Err(Failure::new(
                    ApiErrorCode::ParameterInvalid,
                    "split needs a readwrite shard and a key strictly inside its range",
                ));
            }
            Ok((
                vec![parent],
                vec![
                    (info.inclusive_begin_key.clone(), key.clone()),
                    (key.clone(), info.exclusive_end_key),
                ],
            ))
        })
    }

    /// Merges readwrite shard `shard_id` with its right-hand readwrite neighbour: both become
    /// readonly and a new shard covers their union. Returns the three.
    ///
    /// # Errors
    ///
    /// `ShardNotExist`, `ParameterInvalid` (no neighbour), storage.
    pub fn merge(&self, shard_id: u32) -> Result<Vec<ShardInfo>, Failure> {
        self.reshape(|shards| {
            let left = shards
                .iter()
                .position(|(info, _)| info.shard_id == shard_id && info.is_readwrite())
                .ok_or_else(|| {
                    Failure::new(
                        ApiErrorCode::ShardNotExist,
                        format!("no readwrite shard {shard_id}"),
                    )
                })?;
            let end = shards[left].0.exclusive_end_key.clone();
            let right = shards
                .iter()
                .position(|(info, _)| info.is_readwrite() && info.inclusive_begin_key == end)
                .ok_or_else(|| {
                    Failure::new(
                        ApiErrorCode::ParameterInvalid,
                        "the shard has no readwrite right-hand neighbour",
                    )
                })?;
            let range = (
                shards[left].0.inclusive_begin_key.clone(),
                shards[right].0.exclusive_end_key.clone(),
            );
            Ok((vec![left, right], vec![range]))
        })
    }

    /// Marks the shards `plan` picks readonly and adds new shards for the ranges it returns,
    /// recording their parents; persists the result.
    fn reshape(
        &self,
        plan: impl FnOnce(
            &[(ShardInfo, Arc<Shard>)],
        ) -> Result<(Vec<usize>, Vec<(String, String)>), Failure>,
    ) -> Result<Vec<ShardInfo>, Failure> {
        let mut shards = self.shards.write().expect("shards lock");
        let mut parents = self.parents.write().expect("parents lock");
        let (retired, ranges) = plan(&shards)?;
        let retired_ids: Vec<u32> = retired
            .iter()
            .map(|&index| shards[index].0.shard_id)
            .collect();
        let mut next_id = shards
            .iter()
            .map(|(info, _)| info.shard_id)
            .max()
            .unwrap_or(0)
            + 1;
        let mut changed: Vec<ShardInfo> = Vec::new();
        for index in retired {
            shards[index].0.status = "readonly".to_owned();
            changed.push(shards[index].0.clone());
        }
        for (begin, end) in ranges {
            let info = ShardInfo {
                shard_id: next_id,
                status: "readwrite".to_owned(),
                inclusive_begin_key: begin,
                exclusive_end_key: end,
                create_time: unix_now(),
            };
            let shard = Shard::open(&self.dir, next_id)?;
            shards.push((info.clone(), Arc::new(shard)));
            parents.insert(next_id, retired_ids.clone());
            changed.push(info);
            next_id += 1;
        }
        let meta = LogstoreMeta {
            shards: shards.iter().map(|(info, _)| info.clone()).collect(),
            parents: parents.clone(),
        };
        write_json_atomically(&Self::meta_path(&self.dir), &meta)?;
        Ok(changed)
    }

    /// The shard with id `shard_id`.
    ///
    /// # Errors
    ///
    /// `ShardNotExist` when there is none.
    pub fn shard(&self, shard_id: u32) -> Result<Arc<Shard>, Failure> {
        let shards = self.shards.read().expect("shards lock");
        shards
            .iter()
            .find(|(info, _)| info.shard_id == shard_id)
            .map(|(_, shard)| shard.clone())
            .ok_or_else(|| {
                Failure::new(
                    ApiErrorCode::ShardNotExist,
                    format!("shard {shard_id} does not exist"),
                )
            })
    }

    /// A writable shard for a load-balanced write (round robin), or the one whose hash range
    /// holds `hash_key` (32 hex digits).
    ///
    /// # Errors
    ///
    /// `ParameterInvalid` for a malformed key, `LogStoreWithoutShard` with no writable shard.
    pub fn shard_for_write(&self, hash_key: Option<&str>) -> Result<Arc<Shard>, Failure> {
        let shards = self.shards.read().expect("shards lock");
        let writable: Vec<&(ShardInfo, Arc<Shard>)> = shards
            .iter()
            .filter(|(info, _)| info.is_readwrite())
            .collect();
        if writable.is_empty() {
            return Err(Failure::new(
                ApiErrorCode::LogStoreWithoutShard,
                "no writable shard",
            ));
        }
        let chosen = match hash_key {
            None => writable[self.next_shard.fetch_add(1, Ordering::Relaxed) % writable.len()],
            Some(key) => {
                let key = key.to_ascii_lowercase();
                if key.len() != 32 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(Failure::new(
                        ApiErrorCode::ParameterInvalid,
                        "hash key must be 32 hex digits",
                    ));
                }
                writable
                    .iter()
                    .find(|(info, _)| {
                        info.inclusive_begin_key <= key
                            && (key < info.exclusive_end_key
                                || info.exclusive_end_key == "ffffffffffffffffffffffffffffffff")
                    })
                    .copied()
                    .ok_or_else(|| {
                        Failure::new(ApiErrorCode::ShardNotExist, "no shard holds the key")
                    })?
            }
        };
        Ok(chosen.1.clone())
    }
}

//! The server's object tree: projects hold logstores; a logstore holds shards and consumer
//! groups. Every operation returns a [`Failure`] carrying the SLS error code to answer with.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::assignment::Assignment;
use super::store::{
    self, read_json, write_json_atomically, Shard, ShardInfo, Snapshot, SnapshotFile, StoreError,
};
use crate::source::ApiErrorCode;

/// An operation failed with an SLS error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The error code (its HTTP status comes with it).
    pub code: ApiErrorCode,
    /// The message for `errorMessage`.
    pub message: String,
}

impl Failure {
    /// A failure with `code`.
    pub fn new(code: ApiErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        if let StoreError::InvalidName { .. } = error {
            return Failure::new(ApiErrorCode::ParameterInvalid, error.to_string());
        }
        tracing::error!(%error, "local server storage failure");
        Failure::new(ApiErrorCode::InternalServerError, error.to_string())
    }
}

/// Runs `work` (disk I/O, or CPU-heavy work) on a blocking thread, so it never stalls the
/// runtime threads that serve other requests.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| Failure::new(ApiErrorCode::InternalServerError, error.to_string()))?
}

/// A consumer-group checkpoint as stored and as GetCheckPoint reports it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Checkpoint {
    /// The cursor to resume from.
    pub checkpoint: String,
    /// When it was written, in microseconds since the epoch.
    #[serde(rename = "updateTime")]
    pub update_time: u64,
    /// Who wrote it.
    pub consumer: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct GroupRecord {
    timeout: u32,
    order: bool,
    #[serde(default)]
    checkpoints: BTreeMap<u32, Checkpoint>,
}

#[derive(Debug)]
struct Group {
    record: GroupRecord,
    assignment: Assignment,
}

/// A logstore: its shards and consumer groups.
#[derive(Debug)]
pub struct Logstore {
    dir: PathBuf,
    shards: RwLock<Vec<(ShardInfo, Arc<Shard>)>>,
    /// Shards created by a split or merge → the shards they came from.
    parents: RwLock<BTreeMap<u32, Vec<u32>>>,
    groups: Mutex<BTreeMap<String, Group>>,
    /// `consumer-groups.json`, written outside the `groups` lock.
    groups_file: Arc<SnapshotFile>,
    next_shard: AtomicUsize,
}

#[derive(Debug, Serialize, Deserialize)]
struct LogstoreMeta {
    shards: Vec<ShardInfo>,
    #[serde(default)]
    parents: BTreeMap<u32, Vec<u32>>,
}

fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_micros() as u64)
        .unwrap_or(0)
}

impl Logstore {
    fn meta_path(dir: &Path) -> PathBuf {
        dir.join("meta.json")
    }

    fn groups_path(dir: &Path) -> PathBuf {
        dir.join("consumer-groups.json")
    }

    /// Opens a logstore directory, creating it with `shard_count` shards when new.
    fn open(dir: PathBuf, shard_count: u32) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&dir).map_err(store::io_error(&dir))?;
        let meta_path = Self::meta_path(&dir);
        let meta = match read_json::<LogstoreMeta>(&meta_path)? {
            Some(meta) => meta,
            None => {
                let meta = LogstoreMeta {
                    shards: store::even_shards(shard_count, store::unix_now()),
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
        let groups_path = Self::groups_path(&dir);
        let records: BTreeMap<String, GroupRecord> = read_json(&groups_path)?.unwrap_or_default();
        let groups = records
            .into_iter()
            .map(|(name, record)| {
                (
                    name,
                    Group {
                        record,
                        assignment: Assignment::default(),
                    },
                )
            })
            .collect();
        Ok(Self {
            dir,
            shards: RwLock::new(shards),
            parents: RwLock::new(parents),
            groups: Mutex::new(groups),
            groups_file: Arc::new(SnapshotFile::new(groups_path)),
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
                create_time: store::unix_now(),
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

    /// Shards a group may be assigned now: readwrite shards and readonly shards it has not
    /// finished, and when the group is ordered, none whose parent it has not finished.
    fn eligible_shards(&self, group: &GroupRecord) -> BTreeSet<u32> {
        let shards = self.shards.read().expect("shards lock");
        let parents = self.parents.read().expect("parents lock");
        let finished = |shard_id: u32| {
            shards
                .iter()
                .find(|(info, _)| info.shard_id == shard_id)
                .is_none_or(|(info, shard)| {
                    let end = shard.end();
                    !info.is_readwrite()
                        && (end == 0
                            || group.checkpoints.get(&shard_id).is_some_and(|checkpoint| {
                                checkpoint.checkpoint == crate::source::cursor::encode(end as i64)
                            }))
                })
        };
        shards
            .iter()
            .map(|(info, _)| info.shard_id)
            .filter(|&id| !finished(id))
            .filter(|id| {
                !group.order
                    || parents
                        .get(id)
                        .is_none_or(|ancestors| ancestors.iter().all(|&parent| finished(parent)))
            })
            .collect()
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

    /// Snapshots the groups; call it while holding the `groups` lock, then [`Self::persist`]
    /// the snapshot after releasing it.
    fn snapshot_groups(&self, groups: &BTreeMap<String, Group>) -> Snapshot {
        let records: BTreeMap<&String, &GroupRecord> = groups
            .iter()
            .map(|(name, group)| (name, &group.record))
            .collect();
        self.groups_file.snapshot(&records)
    }

    /// Writes a groups snapshot on a blocking thread, so neither a runtime thread nor the
    /// `groups` lock (which heartbeats need) waits for the fsyncs.
    async fn persist(&self, snapshot: Snapshot) -> Result<(), Failure> {
        let file = self.groups_file.clone();
        blocking(move || Ok(file.write(&snapshot)?)).await
    }

    /// Lists consumer groups as `(name, timeout, order)`.
    pub fn list_groups(&self) -> Vec<(String, u32, bool)> {
        let groups = self.groups.lock().expect("groups lock");
        groups
            .iter()
            .map(|(name, group)| (name.clone(), group.record.timeout, group.record.order))
            .collect()
    }

    /// Creates a consumer group.
    ///
    /// # Errors
    ///
    /// `ConsumerGroupAlreadyExist`, or a storage failure.
    pub async fn create_group(&self, name: &str, timeout: u32, order: bool) -> Result<(), Failure> {
        let snapshot = {
            let mut groups = self.groups.lock().expect("groups lock");
            if groups.contains_key(name) {
                return Err(Failure::new(
                    ApiErrorCode::ConsumerGroupAlreadyExist,
                    format!("consumer group {name} already exists"),
                ));
            }
            groups.insert(
                name.to_owned(),
                Group {
                    record: GroupRecord {
                        timeout,
                        order,
                        checkpoints: BTreeMap::new(),
                    },
                    assignment: Assignment::default(),
                },
            );
            self.snapshot_groups(&groups)
        };
        self.persist(snapshot).await
    }

    /// Updates a group's timeout and/or order.
    ///
    /// # Errors
    ///
    /// `ConsumerGroupNotExist`, or a storage failure.
    pub async fn update_group(
        &self,
        name: &str,
        timeout: Option<u32>,
        order: Option<bool>,
    ) -> Result<(), Failure> {
        let snapshot = {
            let mut groups = self.groups.lock().expect("groups lock");
            let group = groups.get_mut(name).ok_or_else(|| group_missing(name))?;
            if let Some(timeout) = timeout {
                group.record.timeout = timeout;
            }
            if let Some(order) = order {
                group.record.order = order;
            }
            self.snapshot_groups(&groups)
        };
        self.persist(snapshot).await
    }

    /// Deletes a group and its checkpoints.
    ///
    /// # Errors
    ///
    /// `ConsumerGroupNotExist`, or a storage failure.
    pub async fn delete_group(&self, name: &str) -> Result<(), Failure> {
        let snapshot = {
            let mut groups = self.groups.lock().expect("groups lock");
            groups.remove(name).ok_or_else(|| group_missing(name))?;
            self.snapshot_groups(&groups)
        };
        self.persist(snapshot).await
    }

    /// A heartbeat: returns the shards `consumer` should hold now.
    ///
    /// # Errors
    ///
    /// `ConsumerGroupNotExist`.
    pub fn heartbeat(
        &self,
        group_name: &str,
        consumer: &str,
        reported: &[u32],
    ) -> Result<Vec<u32>, Failure> {
        let mut groups = self.groups.lock().expect("groups lock");
        let group = groups
            .get_mut(group_name)
            .ok_or_else(|| group_missing(group_name))?;
        let eligible = self.eligible_shards(&group.record);
        let timeout = Duration::from_secs(group.record.timeout.into());
        let now = Instant::now();
        if !group.assignment.admits(consumer, reported, timeout, now) {
            tracing::info!(
                group = group_name,
                consumer,
                ?reported,
                "heartbeat with shards from a consumer that is not in the group"
            );
            return Err(Failure::new(
                ApiErrorCode::NotExistConsumerWithBody,
                format!(
                    "consumer {consumer} is not in group {group_name} (timed out or never joined) \
                     but reports shards; heartbeat an empty list to join"
                ),
            ));
        }
        let assigned = group
            .assignment
            .heartbeat(consumer, reported, &eligible, timeout, now);
        tracing::debug!(
            group = group_name,
            consumer,
            ?reported,
            ?assigned,
            "heartbeat"
        );
        Ok(assigned)
    }

    /// Checkpoints of one shard (when `shard` is given) or of every shard; shards never
    /// checkpointed are listed with an empty checkpoint.
    ///
    /// # Errors
    ///
    /// `ConsumerGroupNotExist`.
    pub fn checkpoints(
        &self,
        group_name: &str,
        shard: Option<u32>,
    ) -> Result<Vec<(u32, Checkpoint)>, Failure> {
        let shard_ids: Vec<u32> = self
            .shard_infos()
            .iter()
            .map(|info| info.shard_id)
            .filter(|id| shard.is_none_or(|wanted| wanted == *id))
            .collect();
        let groups = self.groups.lock().expect("groups lock");
        let group = groups
            .get(group_name)
            .ok_or_else(|| group_missing(group_name))?;
        Ok(shard_ids
            .into_iter()
            .map(|id| {
                let checkpoint = group
                    .record
                    .checkpoints
                    .get(&id)
                    .cloned()
                    .unwrap_or(Checkpoint {
                        checkpoint: String::new(),
                        update_time: 0,
                        consumer: String::new(),
                    });
                (id, checkpoint)
            })
            .collect())
    }

    /// Stores a checkpoint, as UpdateCheckPoint documents it: with `forceSuccess=true` the
    /// update is forced, without any ownership check (the documentation: "If you do not
    /// specify a consumer, you must set forceSuccess to true"); without it, the consumer
    /// must be a live member (`ConsumerNotExist`) that owns the shard now
    /// (`ConsumerNotMatch`), which a consumer still draining a shard that moved on does not.
    ///
    /// # Errors
    ///
    /// `ConsumerGroupNotExist`, `ShardNotExist`, `ConsumerNotExist`, `ConsumerNotMatch`,
    /// or a storage failure.
    pub async fn update_checkpoint(
        &self,
        group_name: &str,
        consumer: &str,
        shard: u32,
        checkpoint: String,
        force: bool,
    ) -> Result<(), Failure> {
        self.shard(shard)?;
        let snapshot = self.record_checkpoint(group_name, consumer, shard, checkpoint, force)?;
        self.persist(snapshot).await
    }

    fn record_checkpoint(
        &self,
        group_name: &str,
        consumer: &str,
        shard: u32,
        checkpoint: String,
        force: bool,
    ) -> Result<Snapshot, Failure> {
        let mut groups = self.groups.lock().expect("groups lock");
        let group = groups
            .get_mut(group_name)
            .ok_or_else(|| group_missing(group_name))?;
        if !force {
            let timeout = Duration::from_secs(group.record.timeout.into());
            group.assignment.expire(timeout, Instant::now());
            if !group.assignment.is_member(consumer) {
                return Err(Failure::new(
                    ApiErrorCode::ConsumerNotExist,
                    format!("consumer {consumer} is not a member of the group"),
                ));
            }
            if !group.assignment.owns(consumer, shard) {
                return Err(Failure::new(
                    ApiErrorCode::ConsumerNotMatch,
                    format!("shard {shard} is not held by consumer {consumer}"),
                ));
            }
        }
        group.record.checkpoints.insert(
            shard,
            Checkpoint {
                checkpoint,
                update_time: now_micros(),
                consumer: consumer.to_owned(),
            },
        );
        Ok(self.snapshot_groups(&groups))
    }
}

fn group_missing(name: &str) -> Failure {
    Failure::new(
        ApiErrorCode::ConsumerGroupNotExist,
        format!("consumer group {name} does not exist"),
    )
}

/// A project and its logstores.
#[derive(Debug)]
pub struct Project {
    dir: PathBuf,
    logstores: RwLock<BTreeMap<String, Arc<Logstore>>>,
}

impl Project {
    /// The logstore called `name`.
    ///
    /// # Errors
    ///
    /// `LogStoreNotExist`.
    pub fn logstore(&self, name: &str) -> Result<Arc<Logstore>, Failure> {
        self.logstores
            .read()
            .expect("logstores lock")
            .get(name)
            .cloned()
            .ok_or_else(|| {
                Failure::new(
                    ApiErrorCode::LogStoreNotExist,
                    format!("logstore {name} does not exist"),
                )
            })
    }

    /// Creates a logstore with `shards` shards; an existing one is kept as it is.
    ///
    /// # Errors
    ///
    /// A storage failure or an invalid name.
    /// Fails with [`StoreError::InvalidName`] unless [`valid_name`] accepts `name`, so a
    /// name never reaches the filesystem as a path.
    pub fn ensure_logstore(&self, name: &str, shards: u32) -> Result<Arc<Logstore>, StoreError> {
        check_name("logstore", name)?;
        let mut logstores = self.logstores.write().expect("logstores lock");
        if let Some(existing) = logstores.get(name) {
            return Ok(existing.clone());
        }
        let logstore = Arc::new(Logstore::open(self.dir.join(name), shards)?);
        logstores.insert(name.to_owned(), logstore.clone());
        Ok(logstore)
    }

    /// Logstore names.
    pub fn logstore_names(&self) -> Vec<String> {
        self.logstores
            .read()
            .expect("logstores lock")
            .keys()
            .cloned()
            .collect()
    }
}

/// Every project of the server, backed by the data directory.
#[derive(Debug)]
pub struct Projects {
    dir: PathBuf,
    projects: RwLock<BTreeMap<String, Arc<Project>>>,
}

impl Projects {
    /// Opens the data directory and every project and logstore in it.
    ///
    /// # Errors
    ///
    /// A storage failure.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(store::io_error(dir))?;
        let projects = Self {
            dir: dir.to_owned(),
            projects: RwLock::new(BTreeMap::new()),
        };
        for project_entry in list_dirs(dir)? {
            let project = projects.ensure_project(&project_entry)?;
            for logstore in list_dirs(&dir.join(&project_entry))? {
                project.ensure_logstore(&logstore, 1)?;
            }
        }
        Ok(projects)
    }

    /// The project called `name`.
    ///
    /// # Errors
    ///
    /// `ProjectNotExist`.
    pub fn project(&self, name: &str) -> Result<Arc<Project>, Failure> {
        self.projects
            .read()
            .expect("projects lock")
            .get(name)
            .cloned()
            .ok_or_else(|| {
                Failure::new(
                    ApiErrorCode::ProjectNotExist,
                    format!("project {name} does not exist"),
                )
            })
    }

    /// Creates a project; an existing one is kept.
    ///
    /// # Errors
    ///
    /// A storage failure, or [`StoreError::InvalidName`] unless [`valid_name`] accepts
    /// `name`, so a name never reaches the filesystem as a path.
    pub fn ensure_project(&self, name: &str) -> Result<Arc<Project>, StoreError> {
        check_name("project", name)?;
        let mut projects = self.projects.write().expect("projects lock");
        if let Some(existing) = projects.get(name) {
            return Ok(existing.clone());
        }
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir).map_err(store::io_error(&dir))?;
        let project = Arc::new(Project {
            dir,
            logstores: RwLock::new(BTreeMap::new()),
        });
        projects.insert(name.to_owned(), project.clone());
        Ok(project)
    }
}

/// The subdirectories of `dir` with a valid name; others (`lost+found`, a stray directory)
/// are skipped with a warning.
fn list_dirs(dir: &Path) -> Result<Vec<String>, StoreError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(store::io_error(dir))? {
        let entry = entry.map_err(store::io_error(dir))?;
        if entry.file_type().map_err(store::io_error(dir))?.is_dir() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if valid_name(&name) {
                names.push(name);
            } else {
                tracing::warn!(path = %entry.path().display(), "ignoring a directory that is not a valid project or logstore name");
            }
        }
    }
    names.sort();
    Ok(names)
}

fn check_name(kind: &'static str, name: &str) -> Result<(), StoreError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(StoreError::InvalidName {
            kind,
            name: name.to_owned(),
        })
    }
}

/// Checks a project or logstore name: lowercase letters, digits, `-` and `_`, 2 to 63 chars.
/// The one rule for names from HTTP requests, the command line and configuration files;
/// such a name is a single, non-special path component.
pub fn valid_name(name: &str) -> bool {
    (2..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_heartbeat_with_shards_from_an_unknown_consumer_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let projects = Projects::open(dir.path()).unwrap();
        let logstore = projects
            .ensure_project("demo")
            .unwrap()
            .ensure_logstore("audit", 2)
            .unwrap();
        logstore.create_group("g", 30, false).await.unwrap();
        let refused = logstore.heartbeat("g", "stranger", &[0]).unwrap_err();
        assert_eq!(refused.code, ApiErrorCode::NotExistConsumerWithBody);
        assert_eq!(refused.code.http_status(), 400);
        assert_eq!(logstore.heartbeat("g", "stranger", &[]).unwrap(), [0, 1]);
        assert_eq!(
            logstore.heartbeat("g", "stranger", &[0, 1]).unwrap(),
            [0, 1]
        );
    }

    #[tokio::test]
    async fn only_a_forced_checkpoint_may_be_written_by_a_consumer_that_does_not_own_the_shard() {
        let dir = tempfile::tempdir().unwrap();
        let projects = Projects::open(dir.path()).unwrap();
        let logstore = projects
            .ensure_project("demo")
            .unwrap()
            .ensure_logstore("audit", 2)
            .unwrap();
        logstore.create_group("g", 30, false).await.unwrap();
        let cursor = || crate::source::cursor::encode(1);
        let held = logstore.heartbeat("g", "a", &[]).unwrap();
        assert_eq!(logstore.heartbeat("g", "a", &held).unwrap(), [0, 1]);
        logstore.heartbeat("g", "b", &[]).unwrap();
        // b joined: one shard moves to b while a still drains it.
        let kept = logstore.heartbeat("g", "a", &[0, 1]).unwrap();
        let moved = 1 - kept[0];
        let refuse = |consumer: &'static str, shard: u32| {
            let logstore = logstore.clone();
            async move {
                logstore
                    .update_checkpoint("g", consumer, shard, cursor(), false)
                    .await
                    .unwrap_err()
                    .code
            }
        };
        assert_eq!(refuse("a", moved).await, ApiErrorCode::ConsumerNotMatch);
        assert_eq!(refuse("stranger", 0).await, ApiErrorCode::ConsumerNotExist);
        logstore
            .update_checkpoint("g", "a", kept[0], cursor(), false)
            .await
            .expect("the owner commits");
        for consumer in ["a", "stranger"] {
            logstore
                .update_checkpoint("g", consumer, moved, cursor(), true)
                .await
                .expect("a forced commit is not checked");
        }
        let stored = logstore.checkpoints("g", Some(moved)).unwrap();
        assert_eq!(stored[0].1.consumer, "stranger");
    }

    #[test]
    fn names_that_are_not_plain_directory_names_never_reach_the_filesystem() {
        let root = tempfile::tempdir().unwrap();
        let projects = Projects::open(&root.path().join("data")).unwrap();
        for name in ["../x", "/abs", "a/b", "..", "x", "UPPER"] {
            assert!(
                matches!(
                    projects.ensure_project(name),
                    Err(StoreError::InvalidName {
                        kind: "project",
                        ..
                    })
                ),
                "{name}"
            );
        }
        let project = projects.ensure_project("demo").unwrap();
        for name in ["../x", "../../x", "/abs", "a/b"] {
            assert!(
                matches!(
                    project.ensure_logstore(name, 1),
                    Err(StoreError::InvalidName {
                        kind: "logstore",
                        ..
                    })
                ),
                "{name}"
            );
        }
        let mut created: Vec<_> = walk(root.path());
        created.sort();
        assert_eq!(created, ["data", "data/demo"]);
        let failure = Failure::from(project.ensure_logstore("../x", 1).unwrap_err());
        assert_eq!(failure.code, ApiErrorCode::ParameterInvalid);
    }

    fn walk(dir: &Path) -> Vec<String> {
        let mut found = Vec::new();
        let mut pending = vec![dir.to_owned()];
        while let Some(next) = pending.pop() {
            for entry in std::fs::read_dir(&next).unwrap() {
                let path = entry.unwrap().path();
                found.push(path.strip_prefix(dir).unwrap().display().to_string());
                if path.is_dir() {
                    pending.push(path);
                }
            }
        }
        found
    }

    #[test]
    fn stray_directories_with_invalid_names_are_skipped_on_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("lost+found")).unwrap();
        std::fs::create_dir_all(dir.path().join("demo/Not_Valid")).unwrap();
        std::fs::create_dir_all(dir.path().join("demo/audit")).unwrap();
        let projects = Projects::open(dir.path()).unwrap();
        assert!(projects.project("lost+found").is_err());
        let demo = projects.project("demo").unwrap();
        assert_eq!(demo.logstore_names(), ["audit"]);
    }

    // The test holds the file's lock across awaits on purpose: it stands for a slow write.
    #[allow(clippy::await_holding_lock)]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn heartbeats_do_not_wait_for_a_groups_write() {
        let dir = tempfile::tempdir().unwrap();
        let projects = Projects::open(dir.path()).unwrap();
        let logstore = projects
            .ensure_project("demo")
            .unwrap()
            .ensure_logstore("audit", 2)
            .unwrap();
        logstore.create_group("g", 30, false).await.unwrap();
        // A groups write in its fsyncs holds the file's lock.
        let writing = logstore.groups_file.written.lock().unwrap();
        let updating = tokio::spawn({
            let logstore = logstore.clone();
            async move {
                logstore
                    .update_checkpoint("g", "c1", 0, "MQ==".into(), true)
                    .await
            }
        });
        // Wait until the update has taken its snapshot, so it is in its write.
        let deadline = Instant::now() + Duration::from_secs(30);
        while logstore.groups_file.taken.load(Ordering::SeqCst) < 2 {
            assert!(Instant::now() < deadline, "the update never snapshotted");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let heartbeat = tokio::task::spawn_blocking({
            let logstore = logstore.clone();
            move || logstore.heartbeat("g", "c1", &[])
        });
        let assigned = tokio::time::timeout(Duration::from_secs(30), heartbeat)
            .await
            .expect("a heartbeat does not wait for the groups file")
            .unwrap()
            .unwrap();
        assert_eq!(assigned, [0, 1]);
        assert!(!updating.is_finished(), "the update waits for its write");
        drop(writing);
        updating.await.unwrap().unwrap();
        let stored: BTreeMap<String, GroupRecord> =
            read_json(&Logstore::groups_path(&logstore.dir))
                .unwrap()
                .unwrap();
        assert_eq!(stored["g"].checkpoints[&0].checkpoint, "MQ==");
    }
}

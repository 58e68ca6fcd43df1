//! A logstore's consumer groups (`consumer-groups.json`): their settings, heartbeats with the
//! shard assignment of [`crate::local_server::assignment`], and checkpoints.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::logstore::Logstore;
use super::{blocking, Failure};
use crate::local_server::assignment::Assignment;
use crate::local_server::store::{read_json, Snapshot, SnapshotFile, StoreError};
use crate::source::ApiErrorCode;

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

/// A consumer group: its stored record and its live members.
#[derive(Debug)]
pub(super) struct Group {
    record: GroupRecord,
    assignment: Assignment,
}

fn groups_path(dir: &Path) -> PathBuf {
    dir.join("consumer-groups.json")
}

/// The consumer groups stored in the logstore directory `dir` (none when it has no groups
/// file yet), and the file to write them to.
pub(super) fn open(dir: &Path) -> Result<(BTreeMap<String, Group>, SnapshotFile), StoreError> {
    let path = groups_path(dir);
    let records: BTreeMap<String, GroupRecord> = read_json(&path)?.unwrap_or_default();
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
    Ok((groups, SnapshotFile::new(path)))
}

fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_micros() as u64)
        .unwrap_or(0)
}

impl Logstore {
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
        let snapshot = {
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
            self.snapshot_groups(&groups)
        };
        self.persist(snapshot).await
    }
}

fn group_missing(name: &str) -> Failure {
    Failure::new(
        ApiErrorCode::ConsumerGroupNotExist,
        format!("consumer group {name} does not exist"),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    use super::*;
    use crate::local_server::state::Projects;

    /// A logstore of two shards in a new data directory, with the group `g` (timeout 30 s).
    async fn logstore_with_group() -> (tempfile::TempDir, Arc<Logstore>) {
        let dir = tempfile::tempdir().unwrap();
        let projects = Projects::open(dir.path()).unwrap();
        let logstore = projects
            .ensure_project("demo")
            .unwrap()
            .ensure_logstore("audit", 2)
            .unwrap();
        logstore.create_group("g", 30, false).await.unwrap();
        (dir, logstore)
    }

    #[tokio::test]
    async fn a_heartbeat_with_shards_from_an_unknown_consumer_is_refused() {
        let (_dir, logstore) = logstore_with_group().await;
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
        let (_dir, logstore) = logstore_with_group().await;
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

    // The test holds the file's lock across awaits on purpose: it stands for a slow write.
    #[allow(clippy::await_holding_lock)]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn heartbeats_do_not_wait_for_a_groups_write() {
        let (_dir, logstore) = logstore_with_group().await;
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
            read_json(&groups_path(&logstore.dir)).unwrap().unwrap();
        assert_eq!(stored["g"].checkpoints[&0].checkpoint, "MQ==");
    }
}

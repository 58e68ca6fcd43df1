//! The worker of one logstore: reconciles the shards the server assigns against the running
//! shard tasks, starting tasks for new shards and draining tasks whose shard was taken away.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::heartbeat::RunningShards;
use super::shard::{ShardExit, ShardTask};
use crate::model::ShardKey;
use crate::telemetry::metrics::{metrics, LogstoreLabels};

/// The set of running shard tasks of one logstore.
pub struct Worker {
    /// A template for new shard tasks (its `key.shard` is replaced).
    pub template: ShardTask,
    /// Shards with a running task, shared with the heartbeat.
    pub running: RunningShards,
    /// Wakes the heartbeat when a shard was released.
    pub poke: Arc<Notify>,
}

/// The assignment side of [`diff_assignment`]: what to start and what to stop.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AssignmentDiff {
    /// Assigned shards without a task.
    pub start: Vec<u32>,
    /// Running shards no longer assigned.
    pub stop: Vec<u32>,
}

/// Compares assigned shards with running ones (pure; `stopping` shards are already draining).
pub fn diff_assignment(
    assigned: &BTreeSet<u32>,
    running: &BTreeSet<u32>,
    stopping: &BTreeSet<u32>,
) -> AssignmentDiff {
    AssignmentDiff {
        start: assigned.difference(running).copied().collect(),
        stop: running
            .difference(assigned)
            .filter(|shard| !stopping.contains(shard))
            .copied()
            .collect(),
    }
}

impl Worker {
    /// Runs until `shutdown`; then drains every shard and returns once all tasks ended.
    pub async fn run(
        self,
        mut assigned: watch::Receiver<BTreeSet<u32>>,
        shutdown: CancellationToken,
    ) {
        let logstore = self.template.key.logstore.clone();
        let held = metrics()
            .held_shards
            .get_or_create(&LogstoreLabels {
                logstore: logstore.to_string(),
            })
            .clone();
        let mut tasks: JoinSet<ShardExit> = JoinSet::new();
        let mut task_shards: BTreeMap<tokio::task::Id, u32> = BTreeMap::new();
        let mut stops: BTreeMap<u32, CancellationToken> = BTreeMap::new();
        let mut stopping: BTreeSet<u32> = BTreeSet::new();
        loop {
            let wanted = assigned.borrow_and_update().clone();
            let running: BTreeSet<u32> = stops.keys().copied().collect();
            let diff = diff_assignment(&wanted, &running, &stopping);
            for shard in diff.stop {
                tracing::info!(logstore = %logstore, shard, "shard taken away; draining");
                stops[&shard].cancel();
                stopping.insert(shard);
            }
            for shard in diff.start {
                let stop = CancellationToken::new();
                let mut task = self.template.clone();
                task.key = ShardKey {
                    logstore: logstore.clone(),
                    shard,
                };
                stops.insert(shard, stop.clone());
                self.running
                    .lock()
                    .expect("running shards lock")
                    .insert(shard);
                held.inc();
                let handle = tasks.spawn(task.run(stop));
                task_shards.insert(handle.id(), shard);
            }
            tokio::select! {
                changed = assigned.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                Some(joined) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    let (id, outcome) = match joined {
                        Ok((id, exit)) => (id, Ok(exit)),
                        Err(error) => (error.id(), Err(error)),
                    };
                    let shard = task_shards.remove(&id).expect("every task is registered");
                    match outcome {
                        Ok(exit) => tracing::debug!(logstore = %logstore, shard, ?exit, "shard task ended"),
                        Err(error) => tracing::error!(logstore = %logstore, shard, %error, "shard task failed; it restarts from its checkpoint"),
                    }
                    stops.remove(&shard);
                    stopping.remove(&shard);
                    self.running.lock().expect("running shards lock").remove(&shard);
                    held.dec();
                    self.poke.notify_one();
                }
                () = shutdown.cancelled() => break,
            }
        }
        for stop in stops.values() {
            stop.cancel();
        }
        while let Some(joined) = tasks.join_next_with_id().await {
            let id = joined
                .as_ref()
                .map_or_else(|error| error.id(), |(id, _)| *id);
            if let Some(shard) = task_shards.remove(&id) {
                self.running
                    .lock()
                    .expect("running shards lock")
                    .remove(&shard);
                held.dec();
            }
        }
        self.running.lock().expect("running shards lock").clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(shards: &[u32]) -> BTreeSet<u32> {
        shards.iter().copied().collect()
    }

    #[test]
    fn diff_starts_new_and_stops_revoked_shards_once() {
        let diff = diff_assignment(&set(&[1, 2, 3]), &set(&[0, 1]), &set(&[]));
        assert_eq!(
            diff,
            AssignmentDiff {
                start: vec![2, 3],
                stop: vec![0]
            }
        );
        let diff = diff_assignment(&set(&[1]), &set(&[0, 1]), &set(&[0]));
        assert_eq!(
            diff,
            AssignmentDiff::default(),
            "a draining shard is not stopped twice"
        );
        let diff = diff_assignment(&set(&[]), &set(&[]), &set(&[]));
        assert_eq!(diff, AssignmentDiff::default());
    }

    #[test]
    fn a_shard_reassigned_while_draining_is_not_started_twice() {
        let diff = diff_assignment(&set(&[0]), &set(&[0]), &set(&[0]));
        assert_eq!(
            diff,
            AssignmentDiff::default(),
            "it restarts after its task ended"
        );
    }
}

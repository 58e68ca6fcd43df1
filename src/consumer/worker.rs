//! The worker of one logstore: reconciles the shards the server assigns against the running
//! shard tasks, starting tasks for new shards and draining tasks whose shard was taken away.
//! A task that ended abnormally (lost to another consumer, or panicked) while its shard is
//! still assigned is restarted after a backoff that starts at one heartbeat interval, so that
//! a stale assignment has time to be refreshed first.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::drain::DrainDeadlines;
use super::heartbeat::RunningShards;
use super::service::GroupService;
use super::shard::{ShardExit, ShardTask};
use crate::common::Backoff;
use crate::model::ShardKey;
use crate::source::Client;
use crate::telemetry::metrics::{metrics, LogstoreLabels};

/// The longest wait before restarting a shard task that keeps ending abnormally.
const MAX_RESTART_DELAY: Duration = Duration::from_secs(60);

/// The set of running shard tasks of one logstore.
pub struct Worker<S = Client> {
    /// A template for new shard tasks (its `key.shard` is replaced).
    pub template: ShardTask<S>,
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

/// When the shard tasks that ended abnormally may start again.
struct Restarts {
    initial: Duration,
    shards: BTreeMap<u32, (Instant, Backoff)>,
}

impl Restarts {
    fn new(initial: Duration) -> Self {
        Self {
            initial,
            shards: BTreeMap::new(),
        }
    }

    /// Records how a shard's task ended: a clean end clears its backoff, an abnormal one
    /// delays the next start by the next backoff step.
    fn ended(&mut self, shard: u32, clean: bool) {
        if clean {
            self.shards.remove(&shard);
            return;
        }
        let (not_before, backoff) = self.shards.entry(shard).or_insert_with(|| {
            (
                Instant::now(),
                Backoff::new(self.initial, MAX_RESTART_DELAY.max(self.initial)),
            )
        });
        *not_before = Instant::now() + backoff.next_delay();
    }

    /// Shards whose restart is still delayed.
    fn waiting(&self) -> BTreeSet<u32> {
        let now = Instant::now();
        self.shards
            .iter()
            .filter(|(_, (not_before, _))| *not_before > now)
            .map(|(shard, _)| *shard)
            .collect()
    }

    /// The next moment a delayed shard may start, if any is delayed.
    fn next_due(&self) -> Option<Instant> {
        let now = Instant::now();
        self.shards
            .values()
            .map(|(not_before, _)| *not_before)
            .filter(|not_before| *not_before > now)
            .min()
    }
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

impl<S: GroupService> Worker<S> {
    /// Runs until `shutdown`; then drains every shard and returns once all tasks ended, with
    /// the deadlines of that drain (the shards end before their `commit` deadline).
    pub async fn run(
        self,
        mut assigned: watch::Receiver<BTreeSet<u32>>,
        shutdown: CancellationToken,
    ) -> DrainDeadlines {
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
        let mut restarts = Restarts::new(self.template.config.heartbeat_interval.0);
        loop {
            let mut wanted = assigned.borrow_and_update().clone();
            for shard in restarts.waiting() {
                wanted.remove(&shard);
            }
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
            let restart_due = restarts.next_due();
            tokio::select! {
                () = sleep_until_some(restart_due) => {}
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
                    let clean = match outcome {
                        Ok(exit) => {
                            tracing::debug!(logstore = %logstore, shard, ?exit, "shard task ended");
                            exit != ShardExit::Lost
                        }
                        Err(error) => {
                            tracing::error!(logstore = %logstore, shard, %error, "shard task failed; it restarts from its checkpoint");
                            false
                        }
                    };
                    restarts.ended(shard, clean);
                    stops.remove(&shard);
                    stopping.remove(&shard);
                    self.running.lock().expect("running shards lock").remove(&shard);
                    held.dec();
                    self.poke.notify_one();
                }
                () = shutdown.cancelled() => break,
            }
        }
        let deadlines = DrainDeadlines::from_now(self.template.config.drain_timeout.0);
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
        deadlines
    }
}

/// Sleeps until `moment`, or forever when there is none.
async fn sleep_until_some(moment: Option<Instant>) {
    match moment {
        Some(moment) => tokio::time::sleep_until(moment).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::fake::{self, FakeService, Reply, Script, GAUGE};
    use crate::consumer::lease::Leases;

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

    #[tokio::test(start_paused = true)]
    async fn a_shard_that_keeps_getting_lost_is_restarted_with_growing_delays() {
        let _gauge = GAUGE.lock().await;
        // The assignment is stale (no heartbeat renewed the shard's lease) and every commit
        // is refused, so each task ends as lost right after it started; the fifth start never
        // finds its cursor, which lets the clock run to the end.
        let service = FakeService::new(Script {
            commits: [Reply::Fail("ConsumerNotMatch")].into(),
            starts: [
                Reply::Ok(None),
                Reply::Ok(None),
                Reply::Ok(None),
                Reply::Ok(None),
                Reply::Hang,
            ]
            .into(),
            ..Script::default()
        });
        let (mut template, _batches) =
            fake::shard_task(&service, "worker-restarts", fake::config());
        template.leases = Arc::new(Leases::new(Duration::from_secs(3)));
        let (_assigned_tx, assigned) = watch::channel(set(&[0]));
        let shutdown = CancellationToken::new();
        let worker = Worker {
            template,
            running: RunningShards::default(),
            poke: Arc::default(),
        };
        let running = tokio::spawn(worker.run(assigned, shutdown.clone()));
        tokio::time::sleep(Duration::from_secs(120)).await;
        let starts = service.with(|script| script.start_calls.clone());
        assert_eq!(starts.len(), 5, "{starts:?}");
        let gaps: Vec<Duration> = starts.windows(2).map(|w| w[1] - w[0]).collect();
        // Backoff from the 1 s heartbeat interval, doubling, each drawn from [d/2, d].
        for (gap, ceiling) in gaps.iter().zip([1, 2, 4, 8]) {
            let ceiling = Duration::from_secs(ceiling);
            assert!(
                *gap >= ceiling / 2 && *gap <= ceiling,
                "restart delays {gaps:?}"
            );
        }
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(60), running)
            .await
            .expect("a task still finding its cursor stops at once")
            .unwrap();
    }
}

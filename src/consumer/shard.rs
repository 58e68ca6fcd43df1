//! One shard's task: find the start cursor, pull and hand batches on, wait for their
//! delivery, commit checkpoints, and drain when the shard is taken away or the process stops.
//!
//! States: initializing (checkpoint, else the start position) → consuming → draining (no
//! more pulls; in-flight batches get until the drain deadline) → done (final checkpoint).

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::stream::{FuturesOrdered, StreamExt};
use futures::Future;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::checkpoint::CheckpointTracker;
use super::config::{ConsumerConfig, StartPosition};
use super::drain::DrainDeadlines;
use super::service::GroupService;
use crate::common::Backoff;
use crate::model::ack::{self, DeliveryStatus};
use crate::model::batch::SinkBatch;
use crate::model::{Batch, ShardKey};
use crate::source::api::cursor::CursorFrom;
use crate::source::api::pull_logs::PullResult;
use crate::source::{ApiErrorCode, Client, ClientError};
use crate::telemetry::metrics::{metrics, ShardLabels};
use crate::telemetry::status::{status_board, ShardPhase, ShardStatus};

/// The largest reservation of the in-flight budget taken before a pull.
const MAX_FETCH_RESERVATION: usize = 16 << 20;

/// Commit attempts when a shard is released.
const FINAL_COMMIT_ATTEMPTS: u32 = 3;

/// Everything a shard task needs.
#[derive(Debug, Clone)]
pub struct ShardTask<S = Client> {
    /// Log-service client.
    pub client: S,
    /// Which shard.
    pub key: ShardKey,
    /// Consumer group name.
    pub group: Arc<str>,
    /// This consumer's name.
    pub consumer: Arc<str>,
    /// Consumer settings.
    pub config: Arc<ConsumerConfig>,
    /// Where batches go (the pipeline).
    pub output: mpsc::Sender<SinkBatch>,
    /// The process-wide in-flight byte budget.
    pub budget: Arc<Semaphore>,
}

/// How a shard task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardExit {
    /// Drained and committed (or gave up on in-flight batches at the deadline).
    Released,
    /// The server says another consumer owns the shard now; nothing more was committed.
    Lost,
    /// Stopped before the start cursor was known.
    NeverStarted,
}

type Delivery = Pin<Box<dyn Future<Output = DeliveredBatch> + Send>>;
type Fetch = Pin<Box<dyn Future<Output = FetchOutcome> + Send>>;

struct DeliveredBatch {
    number: u64,
    logs: usize,
    status: DeliveryStatus,
    _permit: OwnedSemaphorePermit,
    _inflight: InflightBytes,
    newest_log_time: u32,
}

/// A batch's raw bytes, counted in the `inflight_bytes` gauge until this is dropped: when the
/// batch settles, or when the shard gives up on it (lost, drain deadline).
struct InflightBytes(i64);

impl InflightBytes {
    fn count(bytes: usize) -> Self {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        metrics().inflight_bytes.inc_by(bytes);
        Self(bytes)
    }
}

impl Drop for InflightBytes {
    fn drop(&mut self) {
        metrics().inflight_bytes.dec_by(self.0);
    }
}

enum FetchOutcome {
    Pulled(Box<PullResult>, OwnedSemaphorePermit),
    Failed(ClientError),
    Stopped,
}

impl<S: GroupService> ShardTask<S> {
    fn labels(&self) -> ShardLabels {
        ShardLabels::new(&self.key.logstore, self.key.shard)
    }

    /// Runs the shard until `stop` (taken away or shutdown), then drains and commits.
    pub async fn run(self, stop: CancellationToken) -> ShardExit {
        let (logstore, shard) = (self.key.logstore.clone(), self.key.shard);
        status_board().insert(ShardStatus::new(&logstore, shard, &self.consumer));
        let labels = self.labels();
        let exit = self.run_phases(stop).await;
        status_board().remove(&logstore, shard);
        forget_shard_series(&labels);
        exit
    }

    fn publish(&self, change: impl FnOnce(&mut ShardStatus)) {
        status_board().update(&self.key.logstore, self.key.shard, change);
    }

    async fn run_phases(self, stop: CancellationToken) -> ShardExit {
        let Some(start) = self.start_cursor(&stop).await else {
            return ShardExit::NeverStarted;
        };
        let (cursor, from_checkpoint) = start;
        tracing::info!(shard = %self.key, %cursor, from_checkpoint, "shard consuming");
        self.publish(|status| {
            status.phase = ShardPhase::Consuming;
            if from_checkpoint {
                status.checkpoint = cursor.clone();
            }
        });
        let mut run = ShardRun {
            tracker: CheckpointTracker::new(&cursor, from_checkpoint),
            cursor,
            deliveries: FuturesOrdered::new(),
            task: self,
        };
        let exit = run.consume(&stop).await;
        if exit == ShardExit::Lost {
            return exit;
        }
        run.task
            .publish(|status| status.phase = ShardPhase::Draining);
        run.drain().await
    }

    /// The checkpoint, else the configured start position. Retries until `stop`.
    async fn start_cursor(&self, stop: &CancellationToken) -> Option<(String, bool)> {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        loop {
            let resolved = tokio::select! {
                resolved = self.resolve_start() => resolved,
                () = stop.cancelled() => return None,
            };
            match resolved {
                Ok(start) => return Some(start),
                Err(error) => {
                    tracing::warn!(shard = %self.key, %error, "cannot find the start cursor; retrying");
                    if !backoff.wait(stop).await {
                        return None;
                    }
                }
            }
        }
    }

    async fn resolve_start(&self) -> Result<(String, bool), ClientError> {
        let checkpoint = self
            .client
            .get_checkpoint(&self.key.logstore, &self.group, self.key.shard)
            .await?;
        if let Some(checkpoint) = checkpoint.filter(|c| !c.checkpoint.is_empty()) {
            return Ok((checkpoint.checkpoint, true));
        }
        let from = match self.config.start {
            StartPosition::Begin => CursorFrom::Begin,
            StartPosition::End => CursorFrom::End,
            StartPosition::Time(seconds) => CursorFrom::Time(seconds),
        };
        let cursor = self
            .client
            .get_cursor(&self.key.logstore, self.key.shard, from)
            .await?;
        Ok((cursor, false))
    }

    /// A pull of the next batch: waits for `not_before`, reserves budget, pulls.
    fn fetch(&self, cursor: String, not_before: Instant, stop: CancellationToken) -> Fetch {
        let task = self.clone();
        Box::pin(async move {
            let reservation = (task.config.max_inflight_bytes.0 as usize / 4)
                .clamp(1, MAX_FETCH_RESERVATION) as u32;
            let waited = async {
                tokio::time::sleep_until(not_before).await;
                task.budget.clone().acquire_many_owned(reservation).await
            };
            let permit = tokio::select! {
                permit = waited => permit.expect("the budget semaphore is never closed"),
                () = stop.cancelled() => return FetchOutcome::Stopped,
            };
            let pulled = tokio::select! {
                pulled = task.client.pull_logs(&task.key.logstore, task.key.shard, &cursor, task.config.max_fetch_groups) => pulled,
                () = stop.cancelled() => return FetchOutcome::Stopped,
            };
            match pulled {
                Ok(result) => FetchOutcome::Pulled(Box::new(result), permit),
                Err(error) => FetchOutcome::Failed(error),
            }
        })
    }
}

/// The state of a consuming shard.
struct ShardRun<S> {
    task: ShardTask<S>,
    tracker: CheckpointTracker,
    /// Where the next pull starts.
    cursor: String,
    deliveries: FuturesOrdered<Delivery>,
}

/// What [`ShardRun::commit`] found.
enum CommitOutcome {
    Done,
    Lost,
    Failed,
}

impl<S: GroupService> ShardRun<S> {
    async fn consume(&mut self, stop: &CancellationToken) -> ShardExit {
        let config = self.task.config.clone();
        let mut commit_timer = tokio::time::interval(config.checkpoint_interval.0);
        commit_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
        let mut next_fetch = Instant::now();
        let mut fetch: Option<Fetch> = None;
        // After a failed delivery: no new pulls until in-flight batches settle, then rewind.
        let mut rewinding = false;
        loop {
            if fetch.is_none() && !rewinding && self.deliveries.len() < config.max_inflight_batches
            {
                fetch = Some(
                    self.task
                        .fetch(self.cursor.clone(), next_fetch, stop.clone()),
                );
            }
            tokio::select! {
                biased;
                Some(delivered) = self.deliveries.next(), if !self.deliveries.is_empty() => {
                    if !self.settle(delivered) {
                        rewinding = true;
                        fetch = None;
                    }
                    if rewinding && self.deliveries.is_empty() {
                        rewinding = false;
                        self.cursor = self.tracker.rewind().to_owned();
                        next_fetch = Instant::now() + backoff.next_delay();
                        tracing::warn!(shard = %self.task.key, cursor = %self.cursor, "redelivering from the last delivered position");
                    }
                }
                () = stop.cancelled() => return ShardExit::Released,
                _ = commit_timer.tick() => {
                    let outcome = tokio::select! {
                        outcome = self.commit() => outcome,
                        () = stop.cancelled() => return ShardExit::Released,
                    };
                    if let CommitOutcome::Lost = outcome {
                        return ShardExit::Lost;
                    }
                }
                outcome = async { fetch.as_mut().expect("guarded").await }, if fetch.is_some() => {
                    fetch = None;
                    match outcome {
                        FetchOutcome::Pulled(pulled, permit) => {
                            backoff.reset();
                            next_fetch = if pulled.group_count == 0 {
                                Instant::now() + config.fetch_interval.0
                            } else {
                                Instant::now()
                            };
                            if pulled.group_count > 0 && !self.hand_on(*pulled, permit, stop).await {
                                return ShardExit::Released;
                            }
                        }
                        FetchOutcome::Failed(error) => {
                            metrics().pull_errors.get_or_create(&self.task.labels()).inc();
                            if error.api_code() == Some(&ApiErrorCode::InvalidCursor) {
                                self.recover_invalid_cursor(&error).await;
                            } else {
                                tracing::warn!(shard = %self.task.key, cursor = %self.cursor, %error, "pull failed; retrying");
                            }
                            next_fetch = Instant::now() + backoff.next_delay();
                        }
                        FetchOutcome::Stopped => return ShardExit::Released,
                    }
                }
            }
        }
    }

    /// The cursor fell out of the retained data (TTL) or is corrupt: continue from the oldest
    /// retained log, which loses nothing that still exists.
    async fn recover_invalid_cursor(&mut self, error: &ClientError) {
        match self
            .task
            .client
            .get_cursor(
                &self.task.key.logstore,
                self.task.key.shard,
                CursorFrom::Begin,
            )
            .await
        {
            Ok(begin) => {
                tracing::error!(shard = %self.task.key, cursor = %self.cursor, %begin, %error, "cursor no longer valid; continuing from the oldest retained log");
                if self.deliveries.is_empty() {
                    self.tracker = CheckpointTracker::new(&begin, false);
                }
                self.cursor = begin;
            }
            Err(begin_error) => {
                tracing::warn!(shard = %self.task.key, %error, %begin_error, "cursor invalid and the begin cursor is unavailable; retrying")
            }
        }
    }

    /// Sends a pulled batch to the pipeline. Returns false when stopped while waiting.
    async fn hand_on(
        &mut self,
        pulled: PullResult,
        mut permit: OwnedSemaphorePermit,
        stop: &CancellationToken,
    ) -> bool {
        let labels = self.task.labels();
        let raw_bytes = pulled.raw_size;
        metrics()
            .pulled_logs
            .get_or_create(&labels)
            .inc_by(pulled.records.len() as u64);
        metrics()
            .pulled_bytes
            .get_or_create(&labels)
            .inc_by(raw_bytes as u64);
        // Keep exactly the batch's size reserved (at least one byte) until it is delivered: give
        // back what the pull did not use, or take more for a pull larger than the reservation
        // when the budget has it (waiting here could deadlock on this shard's own batches).
        let wanted = raw_bytes.max(1);
        if wanted < permit.num_permits() {
            drop(permit.split(permit.num_permits() - wanted));
        } else if let Ok(extra) = self
            .task
            .budget
            .clone()
            .try_acquire_many_owned((wanted - permit.num_permits()) as u32)
        {
            permit.merge(extra);
        }
        let inflight = InflightBytes::count(raw_bytes);
        let logs = pulled.records.len();
        let newest_log_time = pulled
            .records
            .iter()
            .map(|record| record.time)
            .max()
            .unwrap_or(0);
        let number = self.tracker.fetched(&pulled.next_cursor);
        let batch = Arc::new(Batch {
            shard: self.task.key.clone(),
            sequence: number,
            cursor: std::mem::replace(&mut self.cursor, pulled.next_cursor.clone()),
            next_cursor: pulled.next_cursor,
            records: pulled.records,
        });
        let (token, receiver) = ack::channel();
        let sent = tokio::select! {
            sent = self.task.output.send(SinkBatch { batch, ack: token }) => sent.is_ok(),
            () = stop.cancelled() => false,
        };
        if !sent {
            return false;
        }
        self.deliveries.push_back(Box::pin(async move {
            DeliveredBatch {
                number,
                logs,
                status: receiver.await,
                _permit: permit,
                _inflight: inflight,
                newest_log_time,
            }
        }));
        true
    }

    /// Records a delivery outcome; false when the batch failed.
    fn settle(&mut self, delivered: DeliveredBatch) -> bool {
        match delivered.status {
            DeliveryStatus::Delivered => {
                if let Err(error) = self.tracker.delivered(delivered.number) {
                    tracing::error!(shard = %self.task.key, %error, "checkpoint tracker refused a delivery");
                }
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0);
                let lag = (now - f64::from(delivered.newest_log_time)).max(0.0);
                metrics()
                    .checkpoint_lag_seconds
                    .get_or_create(&self.task.labels())
                    .set(lag);
                self.task.publish(|status| {
                    status.delivered_logs += delivered.logs as u64;
                    status.lag_seconds = Some(lag);
                });
                true
            }
            DeliveryStatus::Failed(reason) => {
                tracing::error!(shard = %self.task.key, batch = delivered.number, %reason, "batch not delivered; the checkpoint stays before it");
                false
            }
        }
    }

    /// Writes the delivered position as the checkpoint, if it moved.
    async fn commit(&mut self) -> CommitOutcome {
        let Some(cursor) = self.tracker.to_commit().map(str::to_owned) else {
            return CommitOutcome::Done;
        };
        let task = &self.task;
        match task
            .client
            .update_checkpoint(
                &task.key.logstore,
                &task.group,
                &task.consumer,
                task.key.shard,
                &cursor,
                false,
            )
            .await
        {
            Ok(()) => {
                self.tracker
                    .committed(&cursor)
                    .expect("committing the offered cursor");
                task.publish(|status| status.checkpoint = cursor.clone());
                metrics()
                    .checkpoints_committed
                    .get_or_create(&task.labels())
                    .inc();
                tracing::debug!(shard = %task.key, %cursor, "checkpoint committed");
                CommitOutcome::Done
            }
            Err(error)
                if matches!(
                    error.api_code(),
                    Some(ApiErrorCode::ConsumerNotMatch | ApiErrorCode::ConsumerNotExist)
                ) =>
            {
                tracing::warn!(shard = %task.key, %error, "shard is owned by another consumer now; stopping without committing");
                CommitOutcome::Lost
            }
            Err(error) => {
                tracing::warn!(shard = %task.key, %cursor, %error, "checkpoint commit failed; will retry");
                CommitOutcome::Failed
            }
        }
    }

    /// Waits for in-flight batches, then commits the final position, each until its part of
    /// the drain deadline.
    async fn drain(mut self) -> ShardExit {
        let deadlines = DrainDeadlines::from_now(self.task.config.drain_timeout.0);
        while !self.deliveries.is_empty() {
            match tokio::time::timeout_at(deadlines.deliveries, self.deliveries.next()).await {
                Ok(Some(delivered)) => {
                    self.settle(delivered);
                }
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!(shard = %self.task.key, undelivered = self.deliveries.len(), "drain deadline passed; the next owner redelivers the undelivered batches");
                    break;
                }
            }
        }
        // Undelivered batches are given up on: their bytes leave the gauge and the budget now.
        self.deliveries = FuturesOrdered::new();
        let final_commit = async {
            for attempt in 1..=FINAL_COMMIT_ATTEMPTS {
                match self.commit().await {
                    CommitOutcome::Done => break,
                    CommitOutcome::Lost => return ShardExit::Lost,
                    CommitOutcome::Failed if attempt < FINAL_COMMIT_ATTEMPTS => {
                        tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                    }
                    CommitOutcome::Failed => {}
                }
            }
            ShardExit::Released
        };
        match tokio::time::timeout_at(deadlines.commit, final_commit).await {
            Ok(ShardExit::Lost) => return ShardExit::Lost,
            Ok(_) => {}
            Err(_) => {
                tracing::warn!(shard = %self.task.key, "final checkpoint not committed before the drain deadline; the next owner redelivers from the last committed one");
            }
        }
        tracing::info!(shard = %self.task.key, checkpoint = %self.tracker.committed_cursor(), "shard released");
        ShardExit::Released
    }
}

/// Removes a shard's per-shard metric series once its task ended here, so that a shard that
/// moved to another consumer no longer reports its old lag and counts.
fn forget_shard_series(labels: &ShardLabels) {
    let metrics = metrics();
    metrics.pulled_logs.remove(labels);
    metrics.pulled_bytes.remove(labels);
    metrics.pull_errors.remove(labels);
    metrics.checkpoints_committed.remove(labels);
    metrics.checkpoint_lag_seconds.remove(labels);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::fake::{self, FakeService, Reply, Script, BATCH_BYTES, GAUGE};

    /// Acknowledges the first `deliver` batches after `delay` each, and holds the others
    /// unsettled until the test ends.
    fn sink(mut batches: mpsc::Receiver<SinkBatch>, deliver: usize, delay: Duration) {
        tokio::spawn(async move {
            let mut held = Vec::new();
            let mut seen = 0;
            while let Some(batch) = batches.recv().await {
                seen += 1;
                if seen <= deliver {
                    tokio::time::sleep(delay).await;
                    batch.ack.delivered();
                } else {
                    held.push(batch.ack);
                }
            }
        });
    }

    fn service(batches: u64, commits: Vec<Reply<()>>) -> FakeService {
        FakeService::new(Script {
            batches,
            commits: commits.into(),
            ..Script::default()
        })
    }

    fn commits_since(service: &FakeService, started: Instant) -> Vec<(Duration, String)> {
        service.with(|script| {
            script
                .committed
                .iter()
                .map(|(at, cursor)| (*at - started, cursor.clone()))
                .collect()
        })
    }

    fn secs(seconds: u64) -> Duration {
        Duration::from_secs(seconds)
    }

    #[tokio::test(start_paused = true)]
    async fn delivered_positions_are_committed_every_checkpoint_interval() {
        let _gauge = GAUGE.lock().await;
        let service = service(3, vec![Reply::Ok(())]);
        let (task, batches) = fake::shard_task(&service, "shard-commit-timing", fake::config());
        sink(batches, usize::MAX, Duration::ZERO);
        let started = Instant::now();
        let stop = CancellationToken::new();
        let running = tokio::spawn(task.run(stop.clone()));
        tokio::time::sleep(secs(6)).await;
        service.with(|script| script.batches = 5);
        tokio::time::sleep(secs(6)).await;
        stop.cancel();
        assert_eq!(running.await.unwrap(), ShardExit::Released);
        assert_eq!(
            commits_since(&service, started),
            vec![
                (secs(0), "0".to_owned()),
                (secs(5), "3".to_owned()),
                (secs(10), "5".to_owned()),
            ],
            "the start cursor at once, then the delivered position each 5 s when it moved"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_commit_refused_as_consumer_not_match_loses_the_shard_and_frees_its_bytes() {
        let _gauge = GAUGE.lock().await;
        let before = metrics().inflight_bytes.get();
        let service = service(2, vec![Reply::Ok(()), Reply::Fail("ConsumerNotMatch")]);
        let (task, batches) = fake::shard_task(&service, "shard-lost", fake::config());
        let labels = task.labels();
        sink(batches, 1, Duration::ZERO);
        let started = Instant::now();
        let exit = tokio::time::timeout(secs(60), task.run(CancellationToken::new()))
            .await
            .expect("the shard ends");
        assert_eq!(exit, ShardExit::Lost);
        assert_eq!(
            started.elapsed(),
            secs(5),
            "at the first commit of a new position"
        );
        assert_eq!(
            commits_since(&service, started),
            vec![(secs(0), "0".to_owned())],
            "nothing is committed after the refusal"
        );
        assert_eq!(
            metrics().inflight_bytes.get(),
            before,
            "the undelivered batch left the in-flight gauge"
        );
        assert!(
            metrics().pulled_logs.get(&labels).is_none(),
            "the per-shard series are removed"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_drain_ends_within_the_drain_timeout_when_neither_sink_nor_server_answer() {
        let _gauge = GAUGE.lock().await;
        let before = metrics().inflight_bytes.get();
        // The first batch is delivered, the second never is; the commit of the first hangs.
        let service = service(2, vec![Reply::Ok(()), Reply::Hang]);
        let (task, batches) = fake::shard_task(&service, "shard-stuck-drain", fake::config());
        sink(batches, 1, Duration::ZERO);
        let stop = CancellationToken::new();
        let running = tokio::spawn(task.run(stop.clone()));
        tokio::time::sleep(secs(1)).await;
        assert_eq!(
            metrics().inflight_bytes.get(),
            before + BATCH_BYTES as i64,
            "the held batch is in flight"
        );
        let stopped = Instant::now();
        stop.cancel();
        let exit = tokio::time::timeout(secs(60), running)
            .await
            .expect("the drain ends")
            .unwrap();
        assert_eq!(exit, ShardExit::Released);
        let took = stopped.elapsed();
        assert_eq!(
            took,
            Duration::from_millis(8_750),
            "batches until 7.5 s, the final commit until 8.75 s of the 10 s drain timeout"
        );
        assert_eq!(metrics().inflight_bytes.get(), before);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_periodic_commit_does_not_hold_up_the_stop() {
        let _gauge = GAUGE.lock().await;
        let service = service(1, vec![Reply::Ok(()), Reply::Hang]);
        let (task, batches) = fake::shard_task(&service, "shard-hanging-commit", fake::config());
        sink(batches, 1, Duration::ZERO);
        let stop = CancellationToken::new();
        let running = tokio::spawn(task.run(stop.clone()));
        // The commit at 5 s hangs; the stop at 6 s starts the drain regardless, whose own
        // final commit is given up at 8.75 s.
        tokio::time::sleep(secs(6)).await;
        let stopped = Instant::now();
        stop.cancel();
        let exit = tokio::time::timeout(secs(60), running)
            .await
            .expect("the shard stops")
            .unwrap();
        assert_eq!(exit, ShardExit::Released);
        assert_eq!(stopped.elapsed(), Duration::from_millis(8_750));
    }

    #[tokio::test(start_paused = true)]
    async fn an_invalid_checkpoint_continues_from_the_oldest_retained_log() {
        let _gauge = GAUGE.lock().await;
        let service = FakeService::new(Script {
            starts: [Reply::Ok(Some("expired".to_owned()))].into(),
            batches: 2,
            ..Script::default()
        });
        let (task, mut batches) = fake::shard_task(&service, "shard-invalid", fake::config());
        let stop = CancellationToken::new();
        let started = Instant::now();
        let running = tokio::spawn(task.run(stop.clone()));
        let mut cursors = Vec::new();
        for _ in 0..2 {
            let batch = tokio::time::timeout(secs(60), batches.recv())
                .await
                .expect("pulling resumes")
                .expect("a batch");
            cursors.push(batch.batch.cursor.clone());
            batch.ack.delivered();
        }
        assert_eq!(cursors, ["0", "1"], "pulled again from the begin cursor");
        tokio::time::sleep(secs(6)).await;
        stop.cancel();
        assert_eq!(running.await.unwrap(), ShardExit::Released);
        let commits = commits_since(&service, started);
        assert_eq!(
            commits.last().map(|(_, cursor)| cursor.as_str()),
            Some("2"),
            "{commits:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_delivered_during_the_drain_is_committed_at_once() {
        let _gauge = GAUGE.lock().await;
        let service = service(1, vec![Reply::Ok(())]);
        let (task, batches) = fake::shard_task(&service, "shard-drain", fake::config());
        sink(batches, 1, secs(2));
        let started = Instant::now();
        let stop = CancellationToken::new();
        let running = tokio::spawn(task.run(stop.clone()));
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.cancel();
        assert_eq!(running.await.unwrap(), ShardExit::Released);
        assert_eq!(
            commits_since(&service, started),
            vec![(secs(0), "0".to_owned()), (secs(2), "1".to_owned())]
        );
    }
}

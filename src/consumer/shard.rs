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
use tokio::sync::{broadcast, mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::checkpoint::CheckpointTracker;
use super::config::{ConsumerConfig, StartPosition};
use super::drain::DrainDeadlines;
use super::lease::Leases;
use super::pacing;
use super::service::GroupService;
use crate::common::Backoff;
use crate::model::ack::{self, DeliveryStatus};
use crate::model::batch::SinkBatch;
use crate::model::{Batch, ShardKey};
use crate::source::api::cursor::CursorFrom;
use crate::source::api::pull_logs::PullResult;
use crate::source::{cursor, ApiErrorCode, Client, ClientError};
use crate::telemetry::metrics::{metrics, ShardLabels};
use crate::telemetry::progress;
use crate::telemetry::status::{status_board, ShardPhase, ShardStatus};

/// The largest reservation of the in-flight budget taken before a pull.
const MAX_FETCH_RESERVATION: usize = 16 << 20;

/// The in-flight budget's size in permits (bytes), as the process's semaphore holds it.
pub(crate) fn budget_size(config: &ConsumerConfig) -> usize {
    config.max_inflight_bytes.0.min(u64::from(u32::MAX)) as usize
}

/// The budget a pulled batch of `raw_size` bytes holds while in memory (at least one byte,
/// at most the whole budget), made from the `reservation` taken before the pull, before the
/// batch is decoded: the unused part is given back, a missing part taken when the budget has
/// it. A batch a little larger than its reservation (at most [`SLACK_DIVISOR`]th of the
/// budget more; pulls of a busy shard differ by a few KB) goes on with its reservation alone.
/// Otherwise the reservation is given back and the whole size awaited in turn (the budget
/// serves waiters first come, first served), so that shards waiting for room cannot hold parts
/// of it against each other.
async fn room_for(
    budget: Arc<Semaphore>,
    mut reservation: OwnedSemaphorePermit,
    raw_size: usize,
    whole_budget: usize,
) -> OwnedSemaphorePermit {
    let wanted = raw_size.clamp(1, whole_budget.max(1));
    let held = reservation.num_permits();
    if wanted <= held {
        drop(reservation.split(held - wanted));
        return reservation;
    }
    let missing = wanted - held;
    if let Ok(extra) = budget
        .clone()
        .try_acquire_many_owned(u32::try_from(missing).unwrap_or(u32::MAX))
    {
        reservation.merge(extra);
        return reservation;
    }
    // Waiting would give the reservation back, and the room given back would start another
    // shard's pull, whose answer then waits too: a few bytes over are not worth it.
    if missing <= whole_budget / SLACK_DIVISOR {
        return reservation;
    }
    tracing::debug!(
        raw_size,
        reserved = held,
        "pulled answer waits for room in the in-flight budget"
    );
    drop(reservation);
    budget
        .acquire_many_owned(u32::try_from(wanted).unwrap_or(u32::MAX))
        .await
        .expect("the budget semaphore is never closed")
}

/// A pulled batch may exceed its reservation by this fraction of the budget without waiting.
const SLACK_DIVISOR: usize = 32;

/// Budget reserved before a pull: what the shard's last pull brought, but at least a sixteenth
/// of the budget (so that no more than about sixteen pulls hold their compressed answers at
/// once); before a shard's first pull, when its size is unknown, the most a reservation
/// takes: [`MAX_FETCH_RESERVATION`] or the whole budget, whichever is less. Reserving about
/// what a pull brings keeps the decoded batches within the budget while many shards pull at
/// once without idling it: a quiet shard does not hold room it will not use.
fn fetch_reservation(budget: usize, last_pull: Option<usize>) -> u32 {
    let most = MAX_FETCH_RESERVATION.min(budget).max(1);
    let expected = last_pull.map_or(most, |last| last.max(budget / 16));
    u32::try_from(expected.clamp(1, most)).unwrap_or(u32::MAX)
}

/// Why a refused cursor continues where it does (see [`ShardRun::recover_invalid_cursor`]).
const UNREADABLE: &str =
    "cursor refused and unreadable; continuing from the configured start position";
const PAST_END: &str = "cursor refused: it is past the end of the shard (logstore recreated, or a foreign checkpoint); continuing from the end instead of replaying the retained logs";
const EXPIRED: &str = "cursor refused: it is older than the oldest retained log (expired); continuing from the oldest retained log";
const IN_RANGE: &str =
    "cursor refused although within the shard's range; continuing from the oldest retained log";

/// Commit attempts when a shard is released.
const FINAL_COMMIT_ATTEMPTS: u32 = 3;

/// Everything a shard task needs.
#[derive(Debug, Clone)]
pub struct ShardTask<S = Client> {
    /// Log-service client.
    pub client: S,
    /// The client for checkpoint commits: one attempt within [`ConsumerConfig::call_timeout`].
    pub control: S,
    /// The logstore's shard leases, renewed by its heartbeat.
    pub leases: Arc<Leases>,
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
    /// Where a shard announces that it starts draining (taken away or shutdown), so that
    /// sinks holding its batches (an archive's open files) deliver them at once.
    pub releases: broadcast::Sender<ShardKey>,
}

/// How a shard task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardExit {
    /// Drained and committed (or gave up on in-flight batches at the deadline).
    Released,
    /// Another consumer owns the shard now (the server said so, or this consumer's lease ran
    /// out): nothing more was delivered or committed.
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
    newest_log_time: u32,
}

/// A batch's share of the in-flight budget and its raw bytes in the `inflight_bytes` gauge,
/// both held by the batch's memory ([`Batch::budget`]): released when the last sink drops the
/// batch (an archive once it encoded it, a SIEM sink once its destination confirmed it), not
/// when the batch is acknowledged.
struct BatchMemory {
    _permit: OwnedSemaphorePermit,
    _inflight: InflightBytes,
}

/// Raw bytes counted in the `inflight_bytes` gauge until this is dropped.
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
        progress::forget(&logstore, shard);
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
            last_pull: None,
            deliveries: FuturesOrdered::new(),
            task: self,
        };
        let exit = run.consume(&stop).await;
        if exit == ShardExit::Lost {
            return exit;
        }
        run.task
            .publish(|status| status.phase = ShardPhase::Draining);
        // No receiver (no sink listens) is not an error.
        let _ = run.task.releases.send(run.task.key.clone());
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
        Ok((self.cursor_at(self.configured_start()).await?, false))
    }

    /// The configured start position.
    fn configured_start(&self) -> CursorFrom {
        match self.config.start {
            StartPosition::Begin => CursorFrom::Begin,
            StartPosition::End => CursorFrom::End,
            StartPosition::Time(seconds) => CursorFrom::Time(seconds),
        }
    }

    async fn cursor_at(&self, from: CursorFrom) -> Result<String, ClientError> {
        self.client
            .get_cursor(&self.key.logstore, self.key.shard, from)
            .await
    }

    /// A pull of the next batch: waits for `not_before`, reserves `reservation` bytes of the
    /// budget, pulls.
    fn fetch(
        &self,
        cursor: String,
        not_before: Instant,
        reservation: u32,
        stop: CancellationToken,
    ) -> Fetch {
        let task = self.clone();
        Box::pin(async move {
            let waited = async {
                tokio::time::sleep_until(not_before).await;
                task.budget.clone().acquire_many_owned(reservation).await
            };
            let permit = tokio::select! {
                permit = waited => permit.expect("the budget semaphore is never closed"),
                () = stop.cancelled() => return FetchOutcome::Stopped,
            };
            let budget = task.budget.clone();
            let whole_budget = budget_size(&task.config);
            let make_room = move |raw_size| room_for(budget, permit, raw_size, whole_budget);
            let pulled = tokio::select! {
                pulled = task.client.pull_logs(&task.key.logstore, task.key.shard, &cursor, task.config.max_fetch_groups, make_room) => pulled,
                () = stop.cancelled() => return FetchOutcome::Stopped,
            };
            match pulled {
                Ok((result, permit)) => FetchOutcome::Pulled(Box::new(result), permit),
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
    /// Raw bytes the last pull brought (`None` before the first).
    last_pull: Option<usize>,
    deliveries: FuturesOrdered<Delivery>,
}

/// What became of a pulled batch.
enum HandOn {
    /// In the pipeline.
    Sent,
    /// Stopped while the pipeline was full.
    Stopped,
    /// Dropped: the shard's lease ran out.
    LeaseLost,
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
            if fetch.is_none() && !rewinding && self.deliveries.len() < config.inflight_batches() {
                let reservation = fetch_reservation(budget_size(&config), self.last_pull);
                fetch = Some(self.task.fetch(
                    self.cursor.clone(),
                    next_fetch,
                    reservation,
                    stop.clone(),
                ));
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
                            self.last_pull = Some(pulled.raw_size);
                            progress::pulled(&self.task.key.logstore, self.task.key.shard, pulled.group_count, pulled.end_of_cursor);
                            next_fetch = Instant::now()
                                + pacing::after_pull(
                                    pulled.group_count,
                                    pulled.raw_size,
                                    pulled.end_of_cursor,
                                    config.fetch_interval.0,
                                );
                            if pulled.group_count > 0 {
                                match self.hand_on(*pulled, permit, stop).await {
                                    HandOn::Sent => {}
                                    HandOn::Stopped => return ShardExit::Released,
                                    HandOn::LeaseLost => return self.give_up().await,
                                }
                            }
                        }
                        FetchOutcome::Failed(error) => {
                            metrics().pull_errors.get_or_create(&self.task.labels()).inc();
                            let mut delay = backoff.next_delay();
                            if error.api_code() == Some(&ApiErrorCode::InvalidCursor) {
                                self.recover_invalid_cursor(&error).await;
                            } else if pacing::is_throttled(&error) {
                                delay = delay.max(pacing::after_throttling());
                                tracing::warn!(shard = %self.task.key, %error, ?delay, "pulls throttled by the log service; waiting");
                            } else if matches!(&error, ClientError::Api(api) if api.is_clock_skew()) {
                                tracing::error!(shard = %self.task.key, %error, ?delay, "the log service refused the request time: this host's clock is off by more than 15 minutes; fix the clock (NTP)");
                            } else {
                                tracing::warn!(shard = %self.task.key, cursor = %self.cursor, %error, "pull failed; retrying");
                            }
                            next_fetch = Instant::now() + delay;
                        }
                        FetchOutcome::Stopped => return ShardExit::Released,
                    }
                }
            }
        }
    }

    /// The server refused the cursor. Compared with the shard's begin and end: below begin it
    /// fell out of the retained data (TTL), so continue from the oldest retained log; past end
    /// the logstore was recreated or the checkpoint is foreign, so continue from the end
    /// rather than replay the whole retention; a cursor that cannot be read at all continues
    /// from the configured start position, one within the range from begin.
    async fn recover_invalid_cursor(&mut self, error: &ClientError) {
        let task = &self.task;
        let bounds = async {
            let begin = task.cursor_at(CursorFrom::Begin).await?;
            let end = task.cursor_at(CursorFrom::End).await?;
            Ok::<_, ClientError>((begin, end))
        };
        let (begin, end) = match bounds.await {
            Ok(bounds) => bounds,
            Err(bounds_error) => {
                tracing::warn!(shard = %task.key, %error, %bounds_error, "cursor invalid and the shard's begin and end cursors are unavailable; retrying");
                return;
            }
        };
        let position = cursor::decode(&self.cursor).ok();
        let (target, reason) = match position {
            None => match task.configured_start() {
                CursorFrom::Begin => (begin.clone(), UNREADABLE),
                CursorFrom::End => (end.clone(), UNREADABLE),
                from @ CursorFrom::Time(_) => match task.cursor_at(from).await {
                    Ok(start) => (start, UNREADABLE),
                    Err(start_error) => {
                        tracing::warn!(shard = %task.key, %error, %start_error, "cursor invalid and the start cursor is unavailable; retrying");
                        return;
                    }
                },
            },
            Some(position) if cursor::decode(&end).is_ok_and(|end| position > end) => {
                (end.clone(), PAST_END)
            }
            Some(position) if cursor::decode(&begin).is_ok_and(|begin| position < begin) => {
                (begin.clone(), EXPIRED)
            }
            Some(_) => (begin.clone(), IN_RANGE),
        };
        tracing::error!(shard = %task.key, cursor = %self.cursor, %begin, %end, continue_at = %target, %error, "{reason}");
        if self.deliveries.is_empty() {
            self.tracker = CheckpointTracker::new(&target, false);
        }
        self.cursor = target;
    }

    /// The lease ran out with a pulled batch in hand: the server may have given the shard to
    /// another consumer, which delivers from the last committed checkpoint. The batch was
    /// dropped; what was delivered is committed once, only if this consumer still owns the
    /// shard (without `forceSuccess`, so never over the new owner's checkpoint); the shard
    /// stops, and the next heartbeat decides whether it comes back.
    async fn give_up(&mut self) -> ShardExit {
        tracing::warn!(shard = %self.task.key, timeout = ?self.task.config.group_timeout(), "no heartbeat confirmed this shard within the group timeout (a frozen or cut-off process?); dropping the pulled batch undelivered and stopping the shard");
        if let CommitOutcome::Done = self.commit().await {
            tracing::info!(shard = %self.task.key, checkpoint = %self.tracker.committed_cursor(), "delivered position committed as the shard's owner");
        }
        ShardExit::Lost
    }

    /// Sends a pulled batch to the pipeline if the shard's lease still holds once the
    /// pipeline has room for it (a batch that waited for room through a freeze is checked
    /// when it would enter).
    async fn hand_on(
        &mut self,
        pulled: PullResult,
        permit: OwnedSemaphorePermit,
        stop: &CancellationToken,
    ) -> HandOn {
        let room = tokio::select! {
            room = self.task.output.reserve() => room.ok(),
            () = stop.cancelled() => None,
        };
        let Some(room) = room else {
            return HandOn::Stopped;
        };
        if !self.task.leases.holds(self.task.key.shard) {
            return HandOn::LeaseLost;
        }
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
            budget: Some(Arc::new(BatchMemory {
                _permit: permit,
                _inflight: inflight,
            })),
        });
        let (token, receiver) = ack::channel();
        room.send(SinkBatch { batch, ack: token });
        self.deliveries.push_back(Box::pin(async move {
            DeliveredBatch {
                number,
                logs,
                status: receiver.await,
                newest_log_time,
            }
        }));
        HandOn::Sent
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
                progress::delivered(
                    &self.task.key.logstore,
                    self.task.key.shard,
                    delivered.logs,
                    delivered.newest_log_time,
                );
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

    /// Writes the delivered position as the checkpoint, if it moved. While the shard's lease
    /// holds, with `forceSuccess=true` as the Python, Go and Rust consumers commit: no other
    /// consumer can own the shard yet, so the server's ownership check would only refuse a
    /// draining consumer its final commit. Past the lease, without it: the server then
    /// refuses (`ConsumerNotMatch`) unless this consumer still owns the shard, so a stale
    /// position never overwrites a new owner's checkpoint. Each attempt is one call within
    /// [`ConsumerConfig::call_timeout`].
    async fn commit(&mut self) -> CommitOutcome {
        let Some(cursor) = self.tracker.to_commit().map(str::to_owned) else {
            return CommitOutcome::Done;
        };
        let task = &self.task;
        let force = task.leases.holds(task.key.shard);
        let call = task.control.update_checkpoint(
            &task.key.logstore,
            &task.group,
            &task.consumer,
            task.key.shard,
            &cursor,
            force,
        );
        let timeout = task.config.call_timeout();
        let Ok(answer) = tokio::time::timeout(timeout, call).await else {
            tracing::warn!(shard = %task.key, %cursor, ?timeout, "checkpoint commit unanswered in time; will retry");
            return CommitOutcome::Failed;
        };
        match answer {
            Ok(()) => {
                self.tracker
                    .committed(&cursor)
                    .expect("committing the offered cursor");
                task.publish(|status| status.checkpoint = cursor.clone());
                metrics()
                    .checkpoints_committed
                    .get_or_create(&task.labels())
                    .inc();
                tracing::debug!(shard = %task.key, %cursor, force, "checkpoint committed");
                CommitOutcome::Done
            }
            Err(error)
                if matches!(
                    error.api_code(),
                    Some(ApiErrorCode::ConsumerNotMatch | ApiErrorCode::ConsumerNotExist)
                ) =>
            {
                if force {
                    tracing::warn!(shard = %task.key, %cursor, %error, "forced checkpoint commit refused as not owned; keeping the delivered position and retrying");
                    CommitOutcome::Failed
                } else {
                    tracing::warn!(shard = %task.key, %error, "shard is owned by another consumer now; stopping without committing over its checkpoint");
                    CommitOutcome::Lost
                }
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
        // Undelivered batches are given up on; their bytes leave the gauge and the budget when
        // the sinks drop them.
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
    use crate::common::units::ByteSize;
    use crate::consumer::fake::{self, FakeService, Reply, Script, BATCH_BYTES, GAUGE};
    use crate::consumer::lease::Leases;

    /// Acknowledges the first `deliver` batches after `delay` each, and holds the others
    /// (their memory too, as a SIEM sink does) unsettled until its input closes.
    fn sink(
        mut batches: mpsc::Receiver<SinkBatch>,
        deliver: usize,
        delay: Duration,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut held = Vec::new();
            let mut seen = 0;
            while let Some(batch) = batches.recv().await {
                seen += 1;
                if seen <= deliver {
                    tokio::time::sleep(delay).await;
                    batch.ack.delivered();
                } else {
                    held.push(batch);
                }
            }
        })
    }

    fn service(batches: u64, commits: Vec<Reply<()>>) -> FakeService {
        FakeService::new(Script {
            batches,
            commits: commits.into(),
            ..Script::default()
        })
    }

    /// Each commit: when, and the position committed.
    fn commits_since(service: &FakeService, started: Instant) -> Vec<(Duration, i64)> {
        service.with(|script| {
            script
                .committed
                .iter()
                .map(|(at, committed)| (*at - started, cursor::decode(committed).unwrap()))
                .collect()
        })
    }

    /// When each pull was sent, since `started`.
    fn pulls_since(service: &FakeService, started: Instant) -> Vec<Duration> {
        service.with(|script| script.pull_calls.iter().map(|at| *at - started).collect())
    }

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
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
            vec![(secs(0), 0), (secs(5), 3), (secs(10), 5),],
            "the start cursor at once, then the delivered position each 5 s when it moved"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_holds_the_pull_budget_while_in_memory_not_until_acknowledged() {
        let _gauge = GAUGE.lock().await;
        let service = service(1, vec![Reply::Ok(())]);
        let (task, mut batches) = fake::shard_task(&service, "shard-budget", fake::config());
        let budget = task.budget.clone();
        let stop = CancellationToken::new();
        let running = tokio::spawn(task.run(stop.clone()));
        let SinkBatch { batch, ack } = batches.recv().await.unwrap();
        let before = budget.available_permits();
        drop(batch);
        assert_eq!(
            budget.available_permits(),
            before + BATCH_BYTES,
            "the batch's bytes return to the budget when its memory is dropped"
        );
        stop.cancel();
        ack.delivered();
        assert_eq!(running.await.unwrap(), ShardExit::Released);
    }

    /// A task on a 1 MiB budget whose pulls bring `pull` raw bytes each.
    fn task_on_a_small_budget(
        service: &FakeService,
        pull: usize,
    ) -> (ShardTask<FakeService>, mpsc::Receiver<SinkBatch>) {
        service.with(|script| script.pull_size = (1, pull));
        let mut config = fake::config();
        config.max_inflight_bytes = ByteSize::mib(1);
        fake::shard_task(service, "shard-budget-room", config)
    }

    /// Takes all of `budget` but `room` bytes, as other shards' batches would.
    fn leave_room(budget: &Arc<Semaphore>, room: usize) -> OwnedSemaphorePermit {
        budget
            .clone()
            .try_acquire_many_owned((budget.available_permits() - room) as u32)
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_pull_the_next_waits_only_for_room_for_as_much() {
        let _gauge = GAUGE.lock().await;
        let service = service(3, vec![Reply::Ok(())]);
        let (task, mut batches) = task_on_a_small_budget(&service, 100_000);
        let budget = task.budget.clone();
        let stop = CancellationToken::new();
        let running = tokio::spawn(task.run(stop.clone()));
        let first = batches.recv().await.unwrap();
        assert_eq!(
            service.with(|script| script.pull_calls.len()),
            1,
            "a small pull is paced: the next one has not started"
        );
        // Room for this shard's last pull, not for a quarter of the budget.
        let others = leave_room(&budget, 120_000);
        let second = tokio::time::timeout(secs(30), batches.recv())
            .await
            .expect("the next pull waits only for room for what the last one brought")
            .unwrap();
        stop.cancel();
        first.ack.delivered();
        second.ack.delivered();
        drop(others);
        assert_eq!(running.await.unwrap(), ShardExit::Released);
    }

    /// A shard on a small budget, running, whose first pull (100 KB) was delivered and
    /// released; `pulls` pulls are scripted in all.
    struct AfterFirstPull {
        service: FakeService,
        budget: Arc<Semaphore>,
        /// The budget's permits before the shard started.
        whole: usize,
        batches: mpsc::Receiver<SinkBatch>,
        stop: CancellationToken,
        running: tokio::task::JoinHandle<ShardExit>,
    }

    async fn after_first_pull(pulls: u64) -> AfterFirstPull {
        let service = service(pulls, vec![Reply::Ok(())]);
        let (task, mut batches) = task_on_a_small_budget(&service, 100_000);
        let budget = task.budget.clone();
        let whole = budget.available_permits();
        let stop = CancellationToken::new();
        let running = tokio::spawn(task.run(stop.clone()));
        let SinkBatch { batch, ack } = batches.recv().await.unwrap();
        drop(batch);
        ack.delivered();
        AfterFirstPull {
            service,
            budget,
            whole,
            batches,
            stop,
            running,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_pull_larger_than_the_room_left_is_handed_on_only_once_the_budget_has_it() {
        let _gauge = GAUGE.lock().await;
        let AfterFirstPull {
            service,
            budget,
            whole,
            mut batches,
            stop,
            running,
        } = after_first_pull(2).await;
        // The next pull brings six times as much, and the budget has room for three.
        let larger = 600_000;
        service.with(|script| script.pull_size = (1, larger));
        let others = leave_room(&budget, 300_000);
        assert!(
            tokio::time::timeout(secs(30), batches.recv())
                .await
                .is_err(),
            "the batch waits for room for all of it"
        );
        assert_eq!(service.with(|script| script.pull_calls.len()), 2);
        drop(others);
        let second = tokio::time::timeout(secs(1), batches.recv())
            .await
            .expect("handed on once the budget has room")
            .unwrap();
        assert_eq!(budget.available_permits(), whole - larger);
        stop.cancel();
        second.ack.delivered();
        assert_eq!(running.await.unwrap(), ShardExit::Released);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pull_a_little_larger_than_its_reservation_goes_on_with_a_full_budget() {
        let _gauge = GAUGE.lock().await;
        let AfterFirstPull {
            service,
            budget,
            mut batches,
            stop,
            running,
            ..
        } = after_first_pull(2).await;
        // 10 KB more than the last pull, within a thirty-second of the budget; the budget
        // has room for the reservation only.
        service.with(|script| script.pull_size = (1, 110_000));
        let others = leave_room(&budget, 100_000);
        let second = tokio::time::timeout(secs(30), batches.recv())
            .await
            .expect("a few KB over its reservation: handed on without waiting")
            .unwrap();
        assert_eq!(budget.available_permits(), 0);
        stop.cancel();
        second.ack.delivered();
        drop(others);
        assert_eq!(running.await.unwrap(), ShardExit::Released);
    }

    #[test]
    fn a_pull_reserves_what_the_last_one_brought_within_the_budget() {
        let budget = 64 << 20;
        assert_eq!(
            fetch_reservation(budget, None),
            MAX_FETCH_RESERVATION as u32,
            "the most before the first pull"
        );
        assert_eq!(fetch_reservation(1 << 20, None), 1 << 20);
        assert_eq!(fetch_reservation(budget, Some(5_000_000)), 5_000_000);
        assert_eq!(
            fetch_reservation(budget, Some(0)),
            4 << 20,
            "a quiet shard: a sixteenth"
        );
        assert_eq!(
            fetch_reservation(budget, Some(40 << 20)),
            MAX_FETCH_RESERVATION as u32
        );
        assert_eq!(fetch_reservation(1 << 20, Some(8 << 20)), 1 << 20);
        assert_eq!(fetch_reservation(4, None), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_shard_announces_its_release_when_it_starts_draining() {
        let _gauge = GAUGE.lock().await;
        let service = service(0, vec![Reply::Ok(())]);
        let (task, _batches) = fake::shard_task(&service, "shard-release", fake::config());
        let key = task.key.clone();
        let mut releases = task.releases.subscribe();
        let stop = CancellationToken::new();
        let running = tokio::spawn(task.run(stop.clone()));
        tokio::time::sleep(secs(2)).await;
        assert!(releases.try_recv().is_err(), "nothing while consuming");
        stop.cancel();
        assert_eq!(releases.recv().await.unwrap(), key);
        assert_eq!(running.await.unwrap(), ShardExit::Released);
    }

    /// The `forceSuccess` of each commit sent.
    fn forced(service: &FakeService) -> Vec<bool> {
        service.with(|script| {
            script
                .commit_calls
                .iter()
                .map(|(_, force)| *force)
                .collect()
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_commit_refused_as_not_owned_keeps_the_delivered_position_and_retries_forced() {
        let _gauge = GAUGE.lock().await;
        let service = service(
            1,
            vec![
                Reply::Ok(()),
                Reply::Fail("ConsumerNotMatch"),
                Reply::Ok(()),
            ],
        );
        let (task, batches) = fake::shard_task(&service, "shard-not-match", fake::config());
        sink(batches, usize::MAX, Duration::ZERO);
        let started = Instant::now();
        let stop = CancellationToken::new();
        let running = tokio::spawn(task.run(stop.clone()));
        tokio::time::sleep(secs(11)).await;
        stop.cancel();
        assert_eq!(running.await.unwrap(), ShardExit::Released);
        assert_eq!(
            commits_since(&service, started),
            vec![(secs(0), 0), (secs(10), 1)],
            "the position refused at 5 s is committed at the next tick"
        );
        assert_eq!(forced(&service), [true, true, true], "under the lease");
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_pulled_after_the_lease_ran_out_is_dropped_and_the_shard_stops() {
        let _gauge = GAUGE.lock().await;
        let before = metrics().inflight_bytes.get();
        let service = service(1, vec![Reply::Ok(())]);
        let (mut task, mut batches) = fake::shard_task(&service, "shard-lease", fake::config());
        // A 3 s group timeout: the lease granted now holds 2.7 s, and no heartbeat renews it
        // (as in a process frozen past the group timeout).
        task.leases = Arc::new(Leases::new(secs(3)));
        task.leases.renew([0], Instant::now());
        let labels = task.labels();
        let started = Instant::now();
        let running = tokio::spawn(task.run(CancellationToken::new()));
        let SinkBatch { batch, ack } = batches.recv().await.expect("the first batch");
        drop(batch);
        ack.delivered();
        tokio::time::sleep(secs(4)).await;
        service.with(|script| script.batches = 3);
        let exit = tokio::time::timeout(secs(60), running)
            .await
            .expect("the shard stops")
            .unwrap();
        assert_eq!(exit, ShardExit::Lost);
        assert_eq!(started.elapsed(), ms(4_500), "at the first pull with data");
        assert!(
            batches.try_recv().is_err(),
            "nothing pulled after the lease is delivered"
        );
        assert_eq!(
            commits_since(&service, started),
            vec![(secs(0), 0), (ms(4_500), 1)],
            "the delivered position, and nothing beyond it"
        );
        assert_eq!(
            forced(&service),
            [true, false],
            "past the lease only as the shard's owner"
        );
        assert_eq!(metrics().inflight_bytes.get(), before);
        assert!(metrics().pulled_logs.get(&labels).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_lease_a_commit_refused_as_not_owned_stops_the_shard() {
        let _gauge = GAUGE.lock().await;
        let service = service(0, vec![Reply::Fail("ConsumerNotMatch")]);
        let (mut task, _batches) = fake::shard_task(&service, "shard-stale", fake::config());
        task.leases = Arc::new(Leases::new(secs(3)));
        let exit = tokio::time::timeout(secs(60), task.run(CancellationToken::new()))
            .await
            .expect("the shard stops");
        assert_eq!(exit, ShardExit::Lost);
        assert_eq!(forced(&service), [false]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_drain_ends_within_the_drain_timeout_when_neither_sink_nor_server_answer() {
        let _gauge = GAUGE.lock().await;
        let before = metrics().inflight_bytes.get();
        // The first batch is delivered, the second never is; the commit of the first hangs.
        let service = service(2, vec![Reply::Ok(()), Reply::Hang]);
        let (task, batches) = fake::shard_task(&service, "shard-stuck-drain", fake::config());
        let holding = sink(batches, 1, Duration::ZERO);
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
        // The batch given up on leaves the gauge once the sink drops it.
        holding.await.unwrap();
        assert_eq!(metrics().inflight_bytes.get(), before);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_commit_is_given_up_at_the_call_timeout() {
        let _gauge = GAUGE.lock().await;
        let service = service(1, vec![Reply::Ok(()), Reply::Hang]);
        let (task, batches) = fake::shard_task(&service, "shard-hanging-commit", fake::config());
        sink(batches, 1, Duration::ZERO);
        let stop = CancellationToken::new();
        let running = tokio::spawn(task.run(stop.clone()));
        // The commit at 5 s hangs and is given up at 5.5 s; the stop at 6 s starts the
        // drain, whose final commit makes three attempts of 500 ms, 200 and 400 ms apart.
        tokio::time::sleep(secs(6)).await;
        let stopped = Instant::now();
        stop.cancel();
        let exit = tokio::time::timeout(secs(60), running)
            .await
            .expect("the shard stops")
            .unwrap();
        assert_eq!(exit, ShardExit::Released);
        assert_eq!(stopped.elapsed(), Duration::from_millis(2_100));
        let attempts: Vec<Duration> = service.with(|script| {
            script
                .commit_calls
                .iter()
                .map(|(at, _)| *at - stopped)
                .collect()
        });
        assert_eq!(attempts[2..], [ms(0), ms(700), ms(1_600)]);
    }

    /// Runs a shard whose stored checkpoint is `checkpoint` over positions `begin..batches`;
    /// returns the positions of the first `expected` batches pulled and the last commit.
    async fn resume_from_checkpoint(
        logstore: &str,
        checkpoint: &str,
        begin: u64,
        batches: u64,
        expected: usize,
    ) -> (Vec<i64>, i64) {
        let service = FakeService::new(Script {
            starts: [Reply::Ok(Some(checkpoint.to_owned()))].into(),
            begin,
            batches,
            ..Script::default()
        });
        let (task, mut batches) = fake::shard_task(&service, logstore, fake::config());
        let stop = CancellationToken::new();
        let started = Instant::now();
        let running = tokio::spawn(task.run(stop.clone()));
        let mut positions = Vec::new();
        for _ in 0..expected {
            let batch = tokio::time::timeout(secs(60), batches.recv())
                .await
                .expect("pulling resumes")
                .expect("a batch");
            positions.push(cursor::decode(&batch.batch.cursor).unwrap());
            batch.ack.delivered();
        }
        tokio::time::sleep(secs(6)).await;
        stop.cancel();
        assert_eq!(running.await.unwrap(), ShardExit::Released);
        let commits = commits_since(&service, started);
        let last = commits.last().map(|(_, position)| *position);
        (positions, last.expect("a commit"))
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_checkpoint_continues_from_the_oldest_retained_log() {
        let _gauge = GAUGE.lock().await;
        let (pulled, committed) =
            resume_from_checkpoint("shard-expired", &fake::at(1), 3, 5, 2).await;
        assert_eq!(pulled, [3, 4], "pulled again from the begin cursor");
        assert_eq!(committed, 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_checkpoint_past_the_end_continues_from_the_end_not_the_beginning() {
        let _gauge = GAUGE.lock().await;
        // The logstore was recreated: its positions start again from 0, far below the
        // checkpoint. Its five retained logs are not replayed.
        let (pulled, committed) =
            resume_from_checkpoint("shard-recreated", &fake::at(1_000), 0, 5, 0).await;
        assert!(pulled.is_empty());
        assert_eq!(committed, 5, "the end cursor is committed");
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreadable_checkpoint_continues_from_the_configured_start() {
        let _gauge = GAUGE.lock().await;
        let (pulled, committed) = resume_from_checkpoint("shard-garbled", "garbled", 2, 4, 2).await;
        assert_eq!(pulled, [2, 3], "the configured start is the begin cursor");
        assert_eq!(committed, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn small_pulls_are_paced_and_an_idle_shard_pulls_once_a_second() {
        let _gauge = GAUGE.lock().await;
        let service = service(3, vec![Reply::Ok(())]);
        let (task, batches) = fake::shard_task(&service, "shard-paced", fake::config());
        sink(batches, usize::MAX, Duration::ZERO);
        let started = Instant::now();
        let stop = CancellationToken::new();
        let running = tokio::spawn(task.run(stop.clone()));
        tokio::time::sleep(ms(3_600)).await;
        // Then a pull of 600 groups, and one of 1000 groups of 5 MiB each.
        service.with(|script| {
            script.batches = 4;
            script.pull_size = (600, 1_000);
        });
        tokio::time::sleep(secs(1)).await;
        service.with(|script| {
            script.batches = 6;
            script.pull_size = (1000, 5 << 20);
        });
        tokio::time::sleep(secs(1)).await;
        stop.cancel();
        assert_eq!(running.await.unwrap(), ShardExit::Released);
        assert_eq!(
            pulls_since(&service, started),
            [
                // Three one-group pulls 500 ms apart, then empty pulls once a second.
                ms(0),
                ms(500),
                ms(1_000),
                ms(1_500),
                ms(2_500),
                ms(3_500),
                // 600 groups at 4.5 s: 50 ms; then empty.
                ms(4_500),
                ms(4_550),
                // Two full pulls back to back, then empty.
                ms(5_550),
                ms(5_550),
                ms(5_550),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttled_pull_waits_at_least_five_seconds() {
        let _gauge = GAUGE.lock().await;
        let service = FakeService::new(Script {
            batches: 3,
            pulls: [
                Reply::Ok(()),
                Reply::Fail("ShardReadQuotaExceed"),
                Reply::Fail("ReadQuotaExceed"),
                Reply::Ok(()),
            ]
            .into(),
            ..Script::default()
        });
        let (task, batches) = fake::shard_task(&service, "shard-throttled", fake::config());
        sink(batches, usize::MAX, Duration::ZERO);
        let started = Instant::now();
        let stop = CancellationToken::new();
        let running = tokio::spawn(task.run(stop.clone()));
        tokio::time::sleep(secs(30)).await;
        stop.cancel();
        assert_eq!(running.await.unwrap(), ShardExit::Released);
        let pulls = pulls_since(&service, started);
        assert_eq!(pulls[..2], [ms(0), ms(500)], "{pulls:?}");
        for (throttled, next) in [(1, 2), (2, 3)] {
            let waited = pulls[next] - pulls[throttled];
            assert!(
                (secs(5)..=ms(7_500)).contains(&waited),
                "pull {next} came {waited:?} after a 403: {pulls:?}"
            );
        }
        assert_eq!(
            commits_since(&service, started).last().map(|(_, at)| *at),
            Some(3),
            "everything is delivered after the throttling"
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
            vec![(secs(0), 0), (secs(2), 1)]
        );
    }
}

//! The run loop: appends each batch to its shard's files (encoding and compression run off the
//! async threads), seals files on their limits and on a one-second tick, and uploads sealed
//! objects with bounded concurrency. Memory (open files plus objects waiting for upload) is
//! bounded by the sink's budget: over it, the largest open file is sealed, and when nothing is
//! left to seal the sink stops taking batches, so a stalled bucket slows the pull. A batch is
//! dropped once encoded, which gives its pulled bytes back to the consumer's in-flight budget:
//! what waits for storage is bounded by this sink's budget alone. With a disk spool
//! (`buffer.dir`) sealed objects wait for upload in spool files instead of memory, bounded by
//! `buffer.max_disk`: when the largest object might no longer fit, the sink takes no batches.
//!
//! Held batches are delivered before the consumer gives up on them: when shutdown starts (the
//! drain token) every open file is sealed, and so is every batch appended after; when the
//! consumer releases a shard, that shard's files are sealed, and so are its batches still
//! arriving until a new task for it starts (sequence 0).

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::rollover::{Layout, SealReason, SealedObject, ShardFiles};
use super::spool::{Body, Spool};
use super::upload::Uploader;
use crate::model::batch::ShardKey;
use crate::sinks::{Sink, SinkBatch, SinkError};
use crate::telemetry::health::{health, HealthState};
use crate::telemetry::metrics::{metrics, BufferLabels, SealLabels, SinkLabels};
use crate::telemetry::status::sink_board;

/// How often open files are checked against their age limit.
const TICK: Duration = Duration::from_secs(1);

/// Archives batches as objects in a bucket.
#[derive(Debug)]
pub struct ObjectStorageSink {
    /// Sink name.
    pub name: String,
    /// Stores objects.
    pub uploader: Uploader,
    /// Routing, names, compression and seal rules.
    pub layout: Arc<Layout>,
    /// Memory budget: open files plus objects not yet stored.
    pub max_memory: u64,
    /// Objects uploaded at once.
    pub concurrency: usize,
    /// The disk spool (`buffer.dir`) and its budget (`buffer.max_disk`): sealed objects wait
    /// for upload there instead of in memory.
    pub spool: Option<(Arc<Spool>, u64)>,
    /// Fires when shutdown starts: seal everything, and every batch appended after.
    pub drain: CancellationToken,
    /// Shards the consumer starts releasing: seal their files.
    pub releases: broadcast::Receiver<ShardKey>,
}

#[async_trait]
impl Sink for ObjectStorageSink {
    fn name(&self) -> &str {
        &self.name
    }

    /// Lists one key of the bucket: a missing bucket, a wrong endpoint or refused credentials
    /// show here. A key that may store but not list is not an error.
    async fn healthcheck(&self) -> Result<(), SinkError> {
        use futures::StreamExt as _;
        let mut listing = self.uploader.store.list(None);
        match listing.next().await {
            None | Some(Ok(_)) => Ok(()),
            Some(Err(object_store::Error::PermissionDenied { .. })) => Ok(()),
            Some(Err(error)) => Err(SinkError::Unavailable(error.to_string())),
        }
    }

    async fn run(
        self: Box<Self>,
        input: mpsc::Receiver<SinkBatch>,
        shutdown: CancellationToken,
    ) -> Result<(), SinkError> {
        let key = self.uploader.health_key();
        if health().get(&key).is_none() {
            health().set(&key, HealthState::Healthy);
        }
        let mut run = Run {
            shards: HashMap::new(),
            queue: VecDeque::new(),
            uploads: JoinSet::new(),
            pending_bytes: 0,
            spooled_bytes: 0,
            draining: false,
            released: HashSet::new(),
            sink: *self,
        };
        let outcome = run.run(input, &shutdown).await;
        run.publish();
        // Objects not stored drop their acks unsettled: their shards keep their checkpoints
        // before them, and the next owner redelivers.
        run.uploads.abort_all();
        tracing::info!(sink = %run.sink.name, unstored = run.queue.len() + run.uploads.len(), "object storage sink stopped");
        outcome
    }
}

/// The state of a running sink.
struct Run {
    sink: ObjectStorageSink,
    shards: HashMap<ShardKey, ShardFiles>,
    /// Sealed objects waiting for an upload slot.
    queue: VecDeque<SealedObject>,
    /// Uploads in flight; each yields the body bytes it held and whether they were spooled.
    uploads: JoinSet<(u64, bool)>,
    /// Body bytes of the objects queued or uploading, held in memory.
    pending_bytes: u64,
    /// Body bytes of the objects queued or uploading, held in the spool.
    spooled_bytes: u64,
    /// Shutdown started: every appended batch is sealed at once.
    draining: bool,
    /// Shards the consumer released: their batches still arriving are sealed at once.
    released: HashSet<ShardKey>,
}

impl Run {
    async fn run(
        &mut self,
        mut input: mpsc::Receiver<SinkBatch>,
        shutdown: &CancellationToken,
    ) -> Result<(), SinkError> {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut input_open = true;
        let mut releases_open = true;
        let drain = self.sink.drain.clone();
        self.publish();
        loop {
            self.start_uploads(shutdown);
            if !input_open && self.queue.is_empty() && self.uploads.is_empty() {
                return Ok(());
            }
            let memory_full = self.memory_bytes() >= self.sink.max_memory;
            if memory_full && self.seal_largest().await? {
                continue;
            }
            // The spool is full when the largest object might not fit.
            let max_bytes = self.sink.layout.limits.max_bytes;
            let full = memory_full
                || self
                    .sink
                    .spool
                    .as_ref()
                    .is_some_and(|(_, max_disk)| self.spooled_bytes + max_bytes > *max_disk);
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ok(()),
                () = drain.cancelled(), if !self.draining => {
                    self.draining = true;
                    tracing::info!(sink = %self.sink.name, open = self.shards.values().filter(|files| !files.is_empty()).count(), "shutdown started; sealing and storing every open file");
                    self.seal_everything(SealReason::Drain).await?;
                }
                Some(joined) = self.uploads.join_next(), if !self.uploads.is_empty() => {
                    let (bytes, spooled) = joined.map_err(|error| SinkError::Unavailable(format!("upload task failed: {error}")))?;
                    if spooled {
                        self.spooled_bytes -= bytes;
                    } else {
                        self.pending_bytes -= bytes;
                    }
                    self.publish();
                }
                released = self.sink.releases.recv(), if releases_open => match released {
                    Ok(shard) => {
                        self.released.insert(shard.clone());
                        self.seal_shard(shard, |files, layout| files.seal_all(layout, SealReason::Release)).await?;
                    }
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(sink = %self.sink.name, missed, "missed shard releases; their files are sealed on their other limits");
                    }
                    Err(RecvError::Closed) => releases_open = false,
                },
                _ = tick.tick() => {
                    self.seal_aged().await?;
                    self.publish();
                }
                next = input.recv(), if input_open && !full => match next {
                    Some(batch) => self.append(batch).await?,
                    None => {
                        input_open = false;
                        self.seal_everything(SealReason::Stop).await?;
                    }
                },
            }
        }
    }

    /// Bytes held: open files and objects not yet stored.
    fn memory_bytes(&self) -> u64 {
        self.pending_bytes
            + self
                .shards
                .values()
                .map(ShardFiles::memory_bytes)
                .sum::<u64>()
    }

    /// Publishes the gauges and the `/status` entry: open files, bytes held, the age of the
    /// oldest unstored file, uploads in flight and the last finished ones.
    fn publish(&self) {
        let now = Instant::now();
        let name = &self.sink.name;
        let open: Vec<_> = self
            .shards
            .values()
            .flat_map(|files| files.open_files(now))
            .collect();
        let activity = self
            .sink
            .uploader
            .activity
            .lock()
            .expect("archive activity lock");
        let oldest = self
            .shards
            .values()
            .filter_map(ShardFiles::oldest)
            .chain(self.queue.iter().map(|object| object.opened_at))
            .chain(activity.oldest())
            .min();
        let labels = SinkLabels::new(name);
        let metrics = metrics();
        metrics
            .archive_open_files
            .get_or_create(&labels)
            .set(open.len() as i64);
        metrics
            .archive_buffered_bytes
            .get_or_create(&BufferLabels::new(name, "memory"))
            .set(i64::try_from(self.memory_bytes()).unwrap_or(i64::MAX));
        metrics
            .archive_buffered_bytes
            .get_or_create(&BufferLabels::new(name, "disk"))
            .set(i64::try_from(self.spooled_bytes).unwrap_or(i64::MAX));
        metrics
            .archive_oldest_unuploaded_seconds
            .get_or_create(&labels)
            .set(oldest.map_or(0.0, |oldest| now.duration_since(oldest).as_secs_f64()));
        sink_board().set(
            name,
            serde_json::json!({
                "archive": {
                    "open_files": open,
                    "queued": self.queue.len(),
                    "spooled_bytes": self.spooled_bytes,
                    "uploading": activity.uploading(),
                    "history": activity.history(),
                }
            }),
        );
    }

    fn start_uploads(&mut self, shutdown: &CancellationToken) {
        while self.uploads.len() < self.sink.concurrency {
            let Some(object) = self.queue.pop_front() else {
                return;
            };
            let uploader = self.sink.uploader.clone();
            let stop = shutdown.clone();
            let bytes = object.body.len() as u64;
            let spooled = match &object.body {
                Body::Memory(_) => None,
                Body::Spooled(file) => Some(file.clone()),
            };
            self.uploads.spawn(async move {
                let stored = uploader.store(object, &stop).await;
                if let (true, Some(file)) = (stored, &spooled) {
                    if let Err(error) = file.delete() {
                        tracing::warn!(file = %file.path().display(), %error, "cannot delete a stored object's spool file; it is deleted at the next start");
                    }
                }
                (bytes, spooled.is_some())
            });
        }
    }

    /// Queues sealed objects for upload; with a spool, writes each body to it while it has
    /// room (an object that does not fit, or cannot be written, waits in memory).
    async fn enqueue(&mut self, sealed: Vec<SealedObject>) {
        for mut object in sealed {
            metrics()
                .archive_seals
                .get_or_create(&SealLabels::new(&self.sink.name, object.reason.as_str()))
                .inc();
            let bytes = object.body.len() as u64;
            if let Some((spool, max_disk)) = &self.sink.spool {
                if self.spooled_bytes + bytes <= *max_disk {
                    if let Some(file) = spool_body(spool, &object.body).await {
                        object.body = Body::Spooled(file);
                        self.spooled_bytes += bytes;
                        self.queue.push_back(object);
                        continue;
                    }
                }
            }
            self.pending_bytes += bytes;
            self.queue.push_back(object);
        }
    }

    /// Appends `batch` to its shard's files, then drops it (giving its pulled bytes back to
    /// the consumer's budget); seals them at once while draining or once the shard was
    /// released.
    async fn append(&mut self, batch: SinkBatch) -> Result<(), SinkError> {
        let shard = batch.batch.shard.clone();
        if batch.batch.sequence == 0 {
            // A new task for the shard: it is held again.
            self.released.remove(&shard);
        }
        let files = self
            .shards
            .remove(&shard)
            .unwrap_or_else(|| ShardFiles::new(shard.clone()));
        let layout = self.sink.layout.clone();
        let (now, wall) = (Instant::now(), SystemTime::now());
        let seal_now = if self.draining {
            Some(SealReason::Drain)
        } else if self.released.contains(&shard) {
            Some(SealReason::Release)
        } else {
            None
        };
        let (files, sealed) = off_thread(files, move |files| {
            let mut sealed = files.append(&layout, &batch.batch, batch.ack, now, wall)?;
            drop(batch.batch);
            if let Some(reason) = seal_now {
                sealed.extend(files.seal_all(&layout, reason)?);
            }
            Ok(sealed)
        })
        .await?;
        self.shards.insert(shard, files);
        self.enqueue(sealed).await;
        Ok(())
    }

    async fn seal_aged(&mut self) -> Result<(), SinkError> {
        let now = Instant::now();
        let limits = self.sink.layout.limits;
        let due: Vec<ShardKey> = self
            .shards
            .iter()
            .filter(|(_, files)| files.age_due(&limits, now))
            .map(|(shard, _)| shard.clone())
            .collect();
        for shard in due {
            self.seal_shard(shard, move |files, layout| files.seal_due(layout, now))
                .await?;
        }
        Ok(())
    }

    async fn seal_everything(&mut self, reason: SealReason) -> Result<(), SinkError> {
        let open: Vec<ShardKey> = self
            .shards
            .iter()
            .filter(|(_, files)| !files.is_empty())
            .map(|(shard, _)| shard.clone())
            .collect();
        for shard in open {
            self.seal_shard(shard, move |files, layout| files.seal_all(layout, reason))
                .await?;
        }
        Ok(())
    }

    /// Seals the shard whose open files hold the most; `false` when no file is open.
    async fn seal_largest(&mut self) -> Result<bool, SinkError> {
        let largest = self
            .shards
            .iter()
            .filter(|(_, files)| !files.is_empty())
            .max_by_key(|(_, files)| files.memory_bytes())
            .map(|(shard, _)| shard.clone());
        let Some(shard) = largest else {
            return Ok(false);
        };
        self.seal_shard(shard, |files, layout| {
            files.seal_all(layout, SealReason::Memory)
        })
        .await?;
        Ok(true)
    }

    async fn seal_shard(
        &mut self,
        shard: ShardKey,
        seal: impl FnOnce(&mut ShardFiles, &Layout) -> io::Result<Vec<SealedObject>> + Send + 'static,
    ) -> Result<(), SinkError> {
        let Some(files) = self.shards.remove(&shard) else {
            return Ok(());
        };
        let layout = self.sink.layout.clone();
        let (files, sealed) = off_thread(files, move |files| seal(files, &layout)).await?;
        self.shards.insert(shard, files);
        self.enqueue(sealed).await;
        Ok(())
    }
}

/// Writes `body` to the spool off the async threads; `None` (logged) when it cannot.
async fn spool_body(spool: &Arc<Spool>, body: &Body) -> Option<super::spool::SpooledFile> {
    let Body::Memory(bytes) = body else {
        return None;
    };
    let (spool, bytes) = (spool.clone(), bytes.clone());
    match tokio::task::spawn_blocking(move || spool.write(&bytes)).await {
        Ok(Ok(file)) => Some(file),
        Ok(Err(error)) => {
            tracing::warn!(%error, "cannot write a sealed object to the spool; it waits for upload in memory");
            None
        }
        Err(_) => None,
    }
}

/// Runs `work` on `files` on the blocking pool (encoding and compression cost CPU).
async fn off_thread(
    mut files: ShardFiles,
    work: impl FnOnce(&mut ShardFiles) -> io::Result<Vec<SealedObject>> + Send + 'static,
) -> Result<(ShardFiles, Vec<SealedObject>), SinkError> {
    tokio::task::spawn_blocking(move || work(&mut files).map(|sealed| (files, sealed)))
        .await
        .map_err(|error| SinkError::Io(io::Error::other(format!("encoding task failed: {error}"))))?
        .map_err(SinkError::Io)
}

#[cfg(test)]
mod tests {
    use chrono::FixedOffset;
    use object_store::memory::InMemory;
    use object_store::{ObjectStore, ObjectStoreExt};

    use super::*;
    use crate::model::ack::DeliveryStatus;
    use crate::model::RecordsBuilder;
    use crate::sinks::object_storage::encode::{Compression, Format};
    use crate::sinks::object_storage::key::KeyTemplate;
    use crate::sinks::object_storage::put::ObjectOptions;
    use crate::sinks::object_storage::rollover::{Limits, PartitionTime};

    fn sink(store: Arc<dyn ObjectStore>, limits: Limits, max_memory: u64) -> ObjectStorageSink {
        ObjectStorageSink {
            name: "archive-unit".into(),
            uploader: Uploader {
                store,
                sink: "archive-unit".into(),
                content_type: "application/x-ndjson",
                format: "json",
                retry: (Duration::from_millis(10), Duration::from_millis(50)),
                activity: Default::default(),
                options: Arc::new(ObjectOptions::plain()),
            },
            layout: Arc::new(Layout {
                keys: KeyTemplate {
                    prefix: "{logstore}/".into(),
                    partition: "p".into(),
                    timezone: FixedOffset::east_opt(0).unwrap(),
                    extension: ".json".into(),
                },
                partition_time: PartitionTime::Receive,
                format: Format::Json,
                compression: Compression::None,
                limits,
            }),
            max_memory,
            concurrency: 2,
            spool: None,
            drain: CancellationToken::new(),
            releases: broadcast::channel(16).1,
        }
    }

    fn limits() -> Limits {
        Limits {
            max_bytes: 64 << 20,
            max_age: Duration::from_secs(300),
            max_events: 2,
            max_batches: 4,
        }
    }

    /// Runs `archive` over `batches` until its input closes; every batch is delivered.
    async fn run_to_the_end(
        archive: ObjectStorageSink,
        batches: impl IntoIterator<Item = (SinkBatch, crate::model::ack::AckReceiver)>,
    ) {
        let (input, receiver) = mpsc::channel(4);
        let running = tokio::spawn(Box::new(archive).run(receiver, CancellationToken::new()));
        let mut acks = Vec::new();
        for (batch, ack) in batches {
            input.send(batch).await.unwrap();
            acks.push(ack);
        }
        drop(input);
        running.await.unwrap().unwrap();
        for ack in acks {
            assert_eq!(ack.await, DeliveryStatus::Delivered);
        }
    }

    fn one_log_batch(shard: u32, sequence: u64) -> (SinkBatch, crate::model::ack::AckReceiver) {
        let records = RecordsBuilder::new()
            .log(1_700_000_000, None, &[("n", &sequence.to_string())])
            .build();
        SinkBatch::new("audit", shard, sequence, records)
    }

    async fn object_texts(store: &InMemory) -> Vec<String> {
        use futures::TryStreamExt as _;
        let listed: Vec<_> = store.list(None).try_collect().await.unwrap();
        let mut texts = Vec::new();
        for meta in listed {
            let bytes = store
                .get(&meta.location)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            texts.push(String::from_utf8(bytes.to_vec()).unwrap());
        }
        texts.sort();
        texts
    }

    #[tokio::test]
    async fn batches_are_acknowledged_only_once_their_object_is_stored() {
        let store = Arc::new(InMemory::new());
        let sink = Box::new(sink(store.clone(), limits(), 64 << 20));
        let (input, receiver) = mpsc::channel(4);
        let running = tokio::spawn(sink.run(receiver, CancellationToken::new()));
        let (first, mut first_ack) = one_log_batch(0, 0);
        input.send(first).await.unwrap();
        // The file holds one log and waits for a second (max_events = 2): nothing stored, so
        // nothing acknowledged.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(first_ack.try_outcome(), None);
        assert!(object_texts(&store).await.is_empty());
        let (second, second_ack) = one_log_batch(0, 1);
        input.send(second).await.unwrap();
        assert_eq!(second_ack.await, DeliveryStatus::Delivered);
        assert_eq!(first_ack.await, DeliveryStatus::Delivered);
        let texts = object_texts(&store).await;
        assert_eq!(texts.len(), 1);
        assert_eq!(texts[0].lines().count(), 2);
        drop(input);
        running.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn the_end_of_input_seals_and_stores_every_open_file() {
        let store = Arc::new(InMemory::new());
        let batches = (0..3).map(|shard| one_log_batch(shard, 0));
        run_to_the_end(sink(store.clone(), limits(), 64 << 20), batches).await;
        assert_eq!(object_texts(&store).await.len(), 3);
    }

    #[tokio::test]
    async fn shutdown_leaves_unstored_batches_unacknowledged() {
        let store = Arc::new(InMemory::new());
        let sink = Box::new(sink(store.clone(), limits(), 64 << 20));
        let (input, receiver) = mpsc::channel(4);
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(sink.run(receiver, shutdown.clone()));
        let (batch, ack) = one_log_batch(0, 0);
        input.send(batch).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        shutdown.cancel();
        running.await.unwrap().unwrap();
        assert!(matches!(ack.await, DeliveryStatus::Failed(_)));
        assert!(object_texts(&store).await.is_empty());
    }

    #[tokio::test]
    async fn over_the_memory_budget_the_largest_file_is_sealed() {
        let store = Arc::new(InMemory::new());
        let mut limits = limits();
        limits.max_events = 0;
        // Any open file exceeds a one-byte budget: each batch is sealed and stored on its own.
        let sink = Box::new(sink(store.clone(), limits, 1));
        let (input, receiver) = mpsc::channel(4);
        let running = tokio::spawn(sink.run(receiver, CancellationToken::new()));
        let mut acks = Vec::new();
        for sequence in 0..3 {
            let (batch, ack) = one_log_batch(0, sequence);
            input.send(batch).await.unwrap();
            acks.push(ack);
        }
        for ack in acks {
            assert_eq!(ack.await, DeliveryStatus::Delivered);
        }
        assert_eq!(object_texts(&store).await.len(), 3);
        drop(input);
        running.await.unwrap().unwrap();
    }

    /// Waits until `store` holds `count` objects, or fails after a generous deadline.
    async fn wait_for_objects(store: &InMemory, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let texts = object_texts(store).await;
            if texts.len() >= count || Instant::now() > deadline {
                return texts;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn the_drain_token_seals_and_stores_open_files_and_later_batches_at_once() {
        let store = Arc::new(InMemory::new());
        let mut limits = limits();
        limits.max_events = 0;
        let archive = sink(store.clone(), limits, 64 << 20);
        let drain = archive.drain.clone();
        let (input, receiver) = mpsc::channel(4);
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(Box::new(archive).run(receiver, shutdown.clone()));
        let (first, first_ack) = one_log_batch(0, 0);
        input.send(first).await.unwrap();
        let (other, other_ack) = one_log_batch(1, 0);
        input.send(other).await.unwrap();
        // Nothing seals these files for 300 s but the drain.
        drain.cancel();
        let within = Duration::from_secs(30);
        assert_eq!(
            tokio::time::timeout(within, first_ack).await,
            Ok(DeliveryStatus::Delivered)
        );
        assert_eq!(
            tokio::time::timeout(within, other_ack).await,
            Ok(DeliveryStatus::Delivered)
        );
        let (late, late_ack) = one_log_batch(0, 1);
        input.send(late).await.unwrap();
        assert_eq!(
            tokio::time::timeout(within, late_ack).await,
            Ok(DeliveryStatus::Delivered),
            "a batch arriving while draining is stored at once"
        );
        assert_eq!(object_texts(&store).await.len(), 3);
        assert!(!running.is_finished(), "the sink runs until stopped");
        shutdown.cancel();
        running.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_released_shard_is_sealed_at_once_until_a_new_task_starts_it() {
        let store = Arc::new(InMemory::new());
        let mut limits = limits();
        limits.max_events = 0;
        let mut archive = sink(store.clone(), limits, 64 << 20);
        let (releases, subscribed) = broadcast::channel(16);
        archive.releases = subscribed;
        let (input, receiver) = mpsc::channel(4);
        let running = tokio::spawn(Box::new(archive).run(receiver, CancellationToken::new()));
        // Sequence numbers past 0: whether the release is seen before or after these batches
        // are appended, they belong to the released task.
        let (released, released_ack) = one_log_batch(0, 3);
        input.send(released).await.unwrap();
        let (kept, mut kept_ack) = one_log_batch(1, 0);
        input.send(kept).await.unwrap();
        let shard = ShardKey {
            logstore: "audit".into(),
            shard: 0,
        };
        releases.send(shard).unwrap();
        let within = Duration::from_secs(30);
        assert_eq!(
            tokio::time::timeout(within, released_ack).await,
            Ok(DeliveryStatus::Delivered)
        );
        let (straggler, straggler_ack) = one_log_batch(0, 4);
        input.send(straggler).await.unwrap();
        assert_eq!(
            tokio::time::timeout(within, straggler_ack).await,
            Ok(DeliveryStatus::Delivered),
            "a batch of the released shard still arriving is stored at once"
        );
        let (restarted, mut restarted_ack) = one_log_batch(0, 0);
        input.send(restarted).await.unwrap();
        let (marker, marker_ack) = one_log_batch(2, 5);
        input.send(marker).await.unwrap();
        releases
            .send(ShardKey {
                logstore: "audit".into(),
                shard: 2,
            })
            .unwrap();
        assert_eq!(
            tokio::time::timeout(within, marker_ack).await,
            Ok(DeliveryStatus::Delivered)
        );
        assert_eq!(kept_ack.try_outcome(), None, "other shards stay open");
        assert_eq!(
            restarted_ack.try_outcome(),
            None,
            "a new task's batches are held again"
        );
        assert_eq!(wait_for_objects(&store, 3).await.len(), 3);
        drop(input);
        running.await.unwrap().unwrap();
    }

    fn spool_in(dir: &std::path::Path, max_disk: u64) -> Option<(Arc<Spool>, u64)> {
        Some((Arc::new(Spool::open(dir).unwrap().0), max_disk))
    }

    fn part_files(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|entry| {
                let path = entry.as_ref().unwrap().path();
                path.extension().is_some_and(|ext| ext == "part")
            })
            .count()
    }

    #[tokio::test]
    async fn spooled_objects_are_stored_from_their_files_and_deleted() {
        let store = Arc::new(InMemory::new());
        let dir = tempfile::tempdir().unwrap();
        let mut archive = sink(store.clone(), limits(), 64 << 20);
        archive.spool = spool_in(dir.path(), 1 << 30);
        run_to_the_end(archive, (0..4).map(|sequence| one_log_batch(0, sequence))).await;
        let texts = object_texts(&store).await;
        assert_eq!(texts.len(), 2);
        assert!(texts.iter().all(|text| text.lines().count() == 2));
        assert_eq!(part_files(dir.path()), 0, "stored objects leave the spool");
    }

    #[tokio::test]
    async fn a_full_spool_stops_the_sink_taking_batches() {
        use object_store::throttle::{ThrottleConfig, ThrottledStore};
        // Uploads that never finish: sealed objects stay in the spool.
        let stalled = ThrottledStore::new(
            InMemory::new(),
            ThrottleConfig {
                wait_put_per_call: Duration::from_secs(3600),
                ..ThrottleConfig::default()
            },
        );
        let dir = tempfile::tempdir().unwrap();
        let mut limits = limits();
        limits.max_events = 1;
        limits.max_bytes = 200;
        let mut archive = sink(Arc::new(stalled), limits, 64 << 20);
        archive.spool = spool_in(dir.path(), 1024);
        let (input, receiver) = mpsc::channel(1);
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(Box::new(archive).run(receiver, shutdown.clone()));
        let mut accepted = 0;
        let mut acks = Vec::new();
        for sequence in 0..100 {
            let (batch, ack) = one_log_batch(0, sequence);
            acks.push(ack);
            if tokio::time::timeout(Duration::from_secs(2), input.send(batch))
                .await
                .is_err()
            {
                break;
            }
            accepted += 1;
        }
        assert!(
            accepted < 100,
            "the sink stops taking batches once its spool is full"
        );
        let files = part_files(dir.path());
        let spooled: u64 = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().metadata().unwrap().len())
            .sum();
        assert!(
            files >= 1 && spooled <= 1024,
            "{files} objects spooled, {spooled} bytes, within max_disk"
        );
        shutdown.cancel();
        running.await.unwrap().unwrap();
    }
}

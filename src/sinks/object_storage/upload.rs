//! Storing a sealed object: one write per attempt (see `put`: a PutObject, or a multipart
//! upload above `upload.part_size`), retried until the bucket confirmed it.
//! Transient failures (5xx, throttling, timeouts, connection errors) back off and retry; the
//! sink turns unhealthy after a few in a row. Permanent ones (403, missing bucket, wrong region,
//! bad request) turn it unhealthy at once, loudly, and retry at the slowest pace: the bucket
//! may be fixed while the logs wait. It is healthy again once an object is stored while no
//! other upload's last attempt failed. Nothing is ever dropped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::path::Path;
use object_store::{Attribute, Attributes, ObjectStore};
use tokio_util::sync::CancellationToken;

use super::activity::{Activity, Finished, SharedActivity};
use super::put::{sha256_of, ObjectOptions, Written};
use super::rollover::SealedObject;
use crate::common::backoff::{sleep_or_cancel, Backoff};
use crate::model::ack::AckToken;
use crate::telemetry::health::{health, HealthState};
use crate::telemetry::metrics::{metrics, FailureLabels, FormatLabels, SinkLabels};

/// Transient failures in a row before the sink is reported unhealthy.
const UNHEALTHY_AFTER: u32 = 3;

/// Whether retrying the same request can succeed without anyone changing anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// Retry soon.
    Transient,
    /// Needs a fix on the bucket or in the configuration; retry slowly.
    Permanent,
}

impl FailureClass {
    /// The class's name in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::Permanent => "permanent",
        }
    }
}

/// Stores objects in one bucket.
#[derive(Clone)]
pub struct Uploader {
    /// The bucket.
    pub store: Arc<dyn ObjectStore>,
    /// The sink's name (logs, metrics).
    pub sink: Arc<str>,
    /// `Content-Type` of the objects.
    pub content_type: &'static str,
    /// Format name, for metrics.
    pub format: &'static str,
    /// First and longest wait between attempts.
    pub retry: (Duration, Duration),
    /// Uploads in flight and the last finished ones, for `/status`.
    pub activity: SharedActivity,
    /// Parts, headers, `create_only` and the check after the upload.
    pub options: Arc<ObjectOptions>,
}

impl std::fmt::Debug for Uploader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploader")
            .field("store", &self.store.to_string())
            .field("sink", &self.sink)
            .finish_non_exhaustive()
    }
}

impl Uploader {
    /// The health component of the sink.
    pub fn health_key(&self) -> String {
        format!("sink:{}", self.sink)
    }

    /// Stores `object`, retrying until it is stored, then settles its acks. Returns `false`
    /// when `shutdown` fired first (its acks are then dropped unsettled: those batches are
    /// redelivered to the next owner of their shards).
    pub async fn store(&self, object: SealedObject, shutdown: &CancellationToken) -> bool {
        let path = Path::from(object.key.as_str());
        let body = object.body.clone();
        // Off the async threads: a digest of up to `max_bytes`. It fails only when the runtime
        // shuts down, which drops the acks unsettled like a stop does.
        let Ok(Ok(sha256)) = tokio::task::spawn_blocking(move || sha256_of(&body)).await else {
            // The runtime shuts down, or the spool file is gone (its directory was emptied
            // under the sink): unsettled, so redelivered.
            tracing::error!(sink = %self.sink, key = %object.key, "cannot read the object's body; it is not stored and its logs are redelivered to the next owner");
            return false;
        };
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, self.content_type.into());
        self.options.describe(&mut attributes, &object, &sha256);
        let labels = SinkLabels::new(&self.sink);
        let mut backoff = Backoff::new(self.retry.0, self.retry.1);
        let started = Instant::now();
        let mut attempts = 0u32;
        let activity = |change: &dyn Fn(&mut Activity)| {
            change(&mut self.activity.lock().expect("archive activity lock"));
        };
        activity(&|upload| upload.started(&object.key, object.body.len() as u64, object.opened_at));
        let written = loop {
            attempts += 1;
            let result = tokio::select! {
                biased;
                () = shutdown.cancelled() => {
                    activity(&|upload| upload.abandoned(&object.key));
                    return false;
                }
                result = self.attempt(&path, &object, &attributes, &sha256) => result,
            };
            let error = match result {
                Ok(written) => {
                    activity(&|upload| upload.attempted(&object.key, None));
                    break written;
                }
                Err(error) => error,
            };
            activity(&|upload| upload.attempted(&object.key, Some(error.to_string())));
            metrics().sink_failed_requests.get_or_create(&labels).inc();
            let class = classify(&error);
            metrics()
                .archive_upload_failures
                .get_or_create(&FailureLabels::new(&self.sink, class.as_str()))
                .inc();
            let reason = format!("storing {} failed: {error}", object.key);
            let delay = match class {
                FailureClass::Permanent => {
                    health().set(&self.health_key(), HealthState::Unhealthy(reason.clone()));
                    tracing::error!(sink = %self.sink, key = %object.key, attempt = attempts, error = %error, "the bucket refused the object; fix the bucket, its permissions or the sink's settings (retrying slowly, nothing is acknowledged meanwhile)");
                    self.retry.1
                }
                FailureClass::Transient => {
                    if backoff.attempts() + 1 >= UNHEALTHY_AFTER {
                        health().set(&self.health_key(), HealthState::Unhealthy(reason.clone()));
                    }
                    tracing::warn!(sink = %self.sink, key = %object.key, attempt = attempts, error = %error, "storing an object failed; retrying");
                    backoff.next_delay()
                }
            };
            if !sleep_or_cancel(delay, shutdown).await {
                activity(&|upload| upload.abandoned(&object.key));
                return false;
            }
            metrics().sink_retries.get_or_create(&labels).inc();
        };
        if written == Written::AlreadyStored {
            tracing::info!(sink = %self.sink, key = %object.key, "the object was already stored (create_only): these logs are archived; acknowledging without writing");
        }
        // Counted before the acks settle, so whoever learns of the delivery sees them.
        metrics().count_delivered(&labels, object.logs as usize, object.body.len());
        metrics()
            .archive_objects
            .get_or_create(&FormatLabels::new(&self.sink, self.format))
            .inc();
        metrics()
            .archive_uncompressed_bytes
            .get_or_create(&labels)
            .inc_by(object.uncompressed);
        let duration_ms = started.elapsed().as_millis() as u64;
        activity(&|upload| {
            upload.finished(Finished {
                key: object.key.clone(),
                logs: object.logs,
                bytes: object.body.len() as u64,
                uncompressed_bytes: object.uncompressed,
                sealed: object.reason.as_str(),
                attempts,
                duration_ms,
                finished_at: 0,
            });
        });
        // Healthy again unless the last attempt at another object failed too: that one still
        // holds its shard back (a policy refusing one prefix, one key refused).
        let others_failing = self
            .activity
            .lock()
            .expect("archive activity lock")
            .uploading()
            .iter()
            .any(|upload| upload.last_error.is_some());
        if !others_failing {
            health().set(&self.health_key(), HealthState::Healthy);
        }
        tracing::info!(
            sink = %self.sink,
            key = %object.key,
            logs = object.logs,
            bytes = object.body.len(),
            uncompressed_bytes = object.uncompressed,
            sealed = object.reason.as_str(),
            attempts,
            duration_ms,
            "object stored"
        );
        object.acks.into_iter().for_each(AckToken::delivered);
        true
    }

    /// One attempt: writes the object, then checks it when `verify_after_upload` is on.
    async fn attempt(
        &self,
        path: &Path,
        object: &SealedObject,
        attributes: &Attributes,
        sha256: &str,
    ) -> object_store::Result<Written> {
        let store = self.store.as_ref();
        let written = self
            .options
            .write(store, path, object, attributes, sha256)
            .await?;
        if written == Written::Stored && self.options.verify {
            self.options.verify(store, path, object, sha256).await?;
        }
        Ok(written)
    }
}

/// Classifies a failed request by the status the store answered.
pub fn classify(error: &object_store::Error) -> FailureClass {
    use object_store::Error;
    match error {
        Error::NotFound { .. }
        | Error::PermissionDenied { .. }
        | Error::Unauthenticated { .. }
        | Error::NotSupported { .. }
        | Error::InvalidPath { .. } => FailureClass::Permanent,
        other => classify_text(&other.to_string()),
    }
}

/// Classifies an error by its text: the status code object_store reports, or the redirect it
/// names when the region is wrong.
fn classify_text(text: &str) -> FailureClass {
    if text.contains("incorrectly configured region") {
        return FailureClass::Permanent;
    }
    let status = text
        .split("status code: ")
        .nth(1)
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok());
    match status {
        Some(300..=399 | 400..=407 | 409..=428 | 430..=499) => FailureClass::Permanent,
        _ => FailureClass::Transient,
    }
}

#[cfg(test)]
mod tests {
    use crate::sinks::object_storage::spool::{Body, Spool};
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use object_store::ObjectStoreExt as _;

    use async_trait::async_trait;
    use futures::stream::BoxStream;
    use object_store::memory::InMemory;
    use object_store::{
        CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta,
        PutMultipartOptions, PutOptions, PutPayload, PutResult,
    };

    use super::*;
    use crate::model::ack::{self, DeliveryStatus};
    use crate::model::batch::ShardKey;
    use crate::sinks::object_storage::key::ObjectId;
    use crate::sinks::object_storage::rollover::SealReason;

    /// A bucket in memory whose next PUTs fail with the given errors, whose next
    /// `short_puts` PUTs store all but the last byte, and whose multipart uploads go through
    /// [`RecordedUpload`].
    #[derive(Debug, Default)]
    struct FailingStore {
        inner: InMemory,
        failures: Mutex<VecDeque<object_store::Error>>,
        short_puts: AtomicUsize,
        parts: Arc<PartLog>,
    }

    /// What multipart uploads did: the size of every part requested (in order), which part
    /// numbers of an upload fail once, and how many uploads were aborted.
    #[derive(Debug, Default)]
    struct PartLog {
        sizes: Mutex<Vec<usize>>,
        fail_once: Mutex<Vec<usize>>,
        aborts: AtomicUsize,
    }

    /// A multipart upload recording into a [`PartLog`].
    #[derive(Debug)]
    struct RecordedUpload {
        inner: Box<dyn MultipartUpload>,
        log: Arc<PartLog>,
        next: usize,
    }

    #[async_trait]
    impl MultipartUpload for RecordedUpload {
        fn put_part(&mut self, data: PutPayload) -> object_store::UploadPart {
            self.log.sizes.lock().unwrap().push(data.content_length());
            let number = self.next;
            self.next += 1;
            let mut fail_once = self.log.fail_once.lock().unwrap();
            if let Some(at) = fail_once.iter().position(|&part| part == number) {
                fail_once.remove(at);
                return Box::pin(async { Err(unavailable()) });
            }
            self.inner.put_part(data)
        }
        async fn complete(&mut self) -> object_store::Result<PutResult> {
            self.inner.complete().await
        }
        async fn abort(&mut self) -> object_store::Result<()> {
            self.log.aborts.fetch_add(1, Ordering::SeqCst);
            self.inner.abort().await
        }
    }

    impl std::fmt::Display for FailingStore {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("FailingStore")
        }
    }

    #[async_trait]
    impl ObjectStore for FailingStore {
        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            opts: PutOptions,
        ) -> object_store::Result<PutResult> {
            let failure = self.failures.lock().unwrap().pop_front();
            if let Some(error) = failure {
                return Err(error);
            }
            let short = self
                .short_puts
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            let payload = if short {
                let body: bytes::Bytes = payload.into();
                PutPayload::from_bytes(body.slice(..body.len() - 1))
            } else {
                payload
            };
            self.inner.put_opts(location, payload, opts).await
        }
        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: PutMultipartOptions,
        ) -> object_store::Result<Box<dyn MultipartUpload>> {
            Ok(Box::new(RecordedUpload {
                inner: self.inner.put_multipart_opts(location, opts).await?,
                log: self.parts.clone(),
                next: 0,
            }))
        }
        async fn get_opts(
            &self,
            location: &Path,
            options: GetOptions,
        ) -> object_store::Result<GetResult> {
            self.inner.get_opts(location, options).await
        }
        fn delete_stream(
            &self,
            locations: BoxStream<'static, object_store::Result<Path>>,
        ) -> BoxStream<'static, object_store::Result<Path>> {
            self.inner.delete_stream(locations)
        }
        fn list(
            &self,
            prefix: Option<&Path>,
        ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
            self.inner.list(prefix)
        }
        async fn list_with_delimiter(
            &self,
            prefix: Option<&Path>,
        ) -> object_store::Result<ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }
        async fn copy_opts(
            &self,
            from: &Path,
            to: &Path,
            options: CopyOptions,
        ) -> object_store::Result<()> {
            self.inner.copy_opts(from, to, options).await
        }
    }

    fn uploader(name: &str, failures: Vec<object_store::Error>) -> (Uploader, Arc<FailingStore>) {
        let store = Arc::new(FailingStore {
            failures: Mutex::new(failures.into()),
            ..FailingStore::default()
        });
        let uploader = Uploader {
            store: store.clone(),
            sink: name.into(),
            content_type: "application/x-ndjson",
            format: "json",
            retry: (Duration::from_millis(100), Duration::from_secs(1)),
            activity: SharedActivity::default(),
            options: Arc::new(ObjectOptions {
                metadata: Some(Vec::new()),
                ..ObjectOptions::plain()
            }),
        };
        (uploader, store)
    }

    fn object() -> (SealedObject, ack::AckReceiver) {
        object_named("audit/p_0_0_1.json")
    }

    fn object_named(key: &str) -> (SealedObject, ack::AckReceiver) {
        let (token, receiver) = ack::channel();
        let object = SealedObject {
            key: key.into(),
            body: Body::Memory(bytes::Bytes::from_static(b"{}\n")),
            logs: 1,
            uncompressed: 3,
            reason: SealReason::Stop,
            opened_at: tokio::time::Instant::now(),
            acks: vec![token],
            shard: ShardKey {
                logstore: "audit".into(),
                shard: 0,
            },
            begin_cursor: "MA==".into(),
            end_cursor: "MQ==".into(),
            id: ObjectId::Cursors { begin: 0, end: 1 },
        };
        (object, receiver)
    }

    /// An object of `size` bytes under a cursor-range name.
    fn object_of(size: usize) -> (SealedObject, ack::AckReceiver) {
        let (mut object, receiver) = object();
        object.body = Body::Memory(
            (0..size)
                .map(|i| (i % 251) as u8)
                .collect::<Vec<_>>()
                .into(),
        );
        (object, receiver)
    }

    fn in_memory(body: &Body) -> bytes::Bytes {
        match body {
            Body::Memory(bytes) => bytes.clone(),
            Body::Spooled(_) => unreachable!("these objects are built in memory"),
        }
    }

    async fn stored_body(store: &FailingStore, key: &str) -> bytes::Bytes {
        let path = Path::from(key);
        store.get(&path).await.unwrap().bytes().await.unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_large_object_goes_up_in_parts_of_part_size_and_a_failed_attempt_restarts() {
        let (uploader, store) = uploader("archive-unit-multipart", Vec::new());
        // The second part of the first attempt fails.
        store.parts.fail_once.lock().unwrap().push(1);
        let (object, receiver) = object_of(12 << 20);
        let (key, body) = (object.key.clone(), in_memory(&object.body));
        assert!(uploader.store(object, &CancellationToken::new()).await);
        assert_eq!(receiver.await, DeliveryStatus::Delivered);
        assert_eq!(stored_body(&store, &key).await, body);
        let (five, two) = (5 << 20, 2 << 20);
        assert_eq!(
            *store.parts.sizes.lock().unwrap(),
            [five, five, two, five, five, two],
            "parts of exactly part_size; the second attempt starts again from part 1"
        );
        assert_eq!(store.parts.aborts.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_spooled_object_goes_up_in_parts_read_from_its_file() {
        let (uploader, store) = uploader("archive-unit-spooled", Vec::new());
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(dir.path()).unwrap();
        let (mut object, receiver) = object_of(12 << 20);
        let (key, body) = (object.key.clone(), in_memory(&object.body));
        object.body = Body::Spooled(spool.write(&body).unwrap());
        assert!(uploader.store(object, &CancellationToken::new()).await);
        assert_eq!(receiver.await, DeliveryStatus::Delivered);
        assert_eq!(stored_body(&store, &key).await, body);
        let (five, two) = (5 << 20, 2 << 20);
        assert_eq!(*store.parts.sizes.lock().unwrap(), [five, five, two]);
        // Small enough for one PutObject: read whole from the file.
        let (mut small, receiver) = object_named("audit/p_0_1_2.json");
        small.body = Body::Spooled(spool.write(b"{\"n\":1}\n").unwrap());
        assert!(uploader.store(small, &CancellationToken::new()).await);
        assert_eq!(receiver.await, DeliveryStatus::Delivered);
        assert_eq!(
            stored_body(&store, "audit/p_0_1_2.json").await.as_ref(),
            b"{\"n\":1}\n"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_object_up_to_part_size_is_one_put() {
        let (uploader, store) = uploader("archive-unit-single", Vec::new());
        let (object, receiver) = object_of(5 << 20);
        let key = object.key.clone();
        assert!(uploader.store(object, &CancellationToken::new()).await);
        assert_eq!(receiver.await, DeliveryStatus::Delivered);
        assert_eq!(stored_body(&store, &key).await.len(), 5 << 20);
        assert!(store.parts.sizes.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn verification_after_upload_rewrites_an_object_stored_short() {
        let (mut uploader, store) = uploader("archive-unit-verify", Vec::new());
        store.short_puts.store(1, Ordering::SeqCst);
        let mut options = (*uploader.options).clone();
        options.verify = true;
        uploader.options = Arc::new(options);
        let (object, receiver) = object_of(1000);
        let (key, body) = (object.key.clone(), in_memory(&object.body));
        assert!(uploader.store(object, &CancellationToken::new()).await);
        assert_eq!(receiver.await, DeliveryStatus::Delivered);
        assert_eq!(stored_body(&store, &key).await, body, "rewritten whole");
        let retries = metrics()
            .sink_retries
            .get_or_create(&SinkLabels::new("archive-unit-verify"))
            .get();
        assert_eq!(retries, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn create_only_acknowledges_a_name_already_stored_without_writing() {
        let (mut uploader, store) = uploader("archive-unit-create-only", Vec::new());
        let mut options = (*uploader.options).clone();
        options.create_only = true;
        uploader.options = Arc::new(options);
        for size in [1000, 12 << 20] {
            let (object, receiver) = object_of(size);
            let path = Path::from(object.key.as_str());
            store.inner.put(&path, "earlier".into()).await.unwrap();
            assert!(uploader.store(object, &CancellationToken::new()).await);
            assert_eq!(receiver.await, DeliveryStatus::Delivered);
            assert_eq!(
                stored_body(&store, path.as_ref()).await.as_ref(),
                b"earlier",
                "{size} bytes: the stored object is kept"
            );
        }
        assert!(store.parts.sizes.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn create_only_under_a_random_name_acknowledges_only_the_same_body() {
        let (mut uploader, store) = uploader("archive-unit-create-only-random", Vec::new());
        let mut options = (*uploader.options).clone();
        options.create_only = true;
        uploader.options = Arc::new(options);
        let random = |object: &mut SealedObject| {
            object.id = ObjectId::Random {
                opened_nanos: 1,
                nonce: 2,
            };
        };
        // An earlier attempt of ours stored the same body (the answer was lost): acknowledged.
        let (mut same, receiver) = object_of(1000);
        random(&mut same);
        let mut attributes = Attributes::new();
        attributes.insert(
            Attribute::Metadata(crate::sinks::object_storage::put::SHA256_METADATA.into()),
            sha256_of(&same.body).unwrap().into(),
        );
        let path = Path::from(same.key.as_str());
        let options = object_store::PutOptions {
            attributes,
            ..Default::default()
        };
        store
            .inner
            .put_opts(&path, in_memory(&same.body).into(), options)
            .await
            .unwrap();
        assert!(uploader.store(same, &CancellationToken::new()).await);
        assert_eq!(receiver.await, DeliveryStatus::Delivered);
        // Another object holds the name: never acknowledged, never overwritten.
        store.inner.put(&path, "other".into()).await.unwrap();
        let (mut other, mut receiver) = object_of(1000);
        random(&mut other);
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let (uploader, stop) = (uploader.clone(), stop.clone());
            async move { uploader.store(other, &stop).await }
        });
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(receiver.try_outcome(), None);
        assert!(matches!(
            health().get(&uploader.health_key()),
            Some(HealthState::Unhealthy(reason)) if reason.contains("taken")
        ));
        stop.cancel();
        assert!(!task.await.unwrap());
        assert_eq!(stored_body(&store, path.as_ref()).await.as_ref(), b"other");
    }

    fn unavailable() -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: "Server returned non-2xx status code: 503 Service Unavailable: SlowDown".into(),
        }
    }

    fn stored(store: &FailingStore) -> usize {
        futures::executor::block_on(async {
            use futures::TryStreamExt as _;
            store
                .list(None)
                .try_collect::<Vec<_>>()
                .await
                .unwrap()
                .len()
        })
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_until_stored_without_alarm_at_the_first() {
        let name = "archive-unit-transient";
        let (uploader, store) = uploader(name, (0..4).map(|_| unavailable()).collect());
        let (object, receiver) = object();
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let uploader = uploader.clone();
            async move { uploader.store(object, &stop).await }
        });
        // One failure (the next attempt comes after at least 50 ms): no alarm yet, a single
        // slow request is no outage.
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_ne!(
            health()
                .get(&uploader.health_key())
                .map(|state| matches!(state, HealthState::Unhealthy(_))),
            Some(true)
        );
        assert!(task.await.unwrap(), "stored in the end");
        assert_eq!(receiver.await, DeliveryStatus::Delivered);
        assert_eq!(stored(&store), 1);
        assert_eq!(
            health().get(&uploader.health_key()),
            Some(HealthState::Healthy)
        );
        let retries = metrics()
            .sink_retries
            .get_or_create(&SinkLabels::new(name))
            .get();
        assert_eq!(retries, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_turns_the_sink_unhealthy_at_once_and_holds_the_batch_until_stored() {
        let denied = || object_store::Error::PermissionDenied {
            path: "audit/p_0_0_1.json".into(),
            source: "AccessDenied".into(),
        };
        let (uploader, store) = uploader("archive-unit-denied", vec![denied(), denied()]);
        let (object, mut receiver) = object();
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let uploader = uploader.clone();
            async move { uploader.store(object, &stop).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(matches!(
            health().get(&uploader.health_key()),
            Some(HealthState::Unhealthy(reason)) if reason.contains("audit/p_0_0_1.json")
        ));
        assert_eq!(
            receiver.try_outcome(),
            None,
            "nothing acknowledged while refused"
        );
        assert_eq!(stored(&store), 0);
        assert!(task.await.unwrap());
        assert_eq!(receiver.await, DeliveryStatus::Delivered);
        assert_eq!(
            health().get(&uploader.health_key()),
            Some(HealthState::Healthy)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_sink_stays_unhealthy_while_one_object_is_refused_though_others_are_stored() {
        let denied = object_store::Error::PermissionDenied {
            path: "audit/p_0_0_1.json".into(),
            source: "AccessDenied".into(),
        };
        let (uploader, _store) = uploader("archive-unit-refused-one", vec![denied]);
        let unhealthy = || {
            matches!(
                health().get(&uploader.health_key()),
                Some(HealthState::Unhealthy(reason)) if reason.contains("audit/p_0_0_1.json")
            )
        };
        let (refused, refused_ack) = object_named("audit/p_0_0_1.json");
        let stop = CancellationToken::new();
        let retried = tokio::spawn({
            let (uploader, stop) = (uploader.clone(), stop.clone());
            async move { uploader.store(refused, &stop).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(unhealthy(), "refused at once");
        let (other, other_ack) = object_named("audit/p_1_0_1.json");
        assert!(uploader.store(other, &stop).await);
        assert_eq!(other_ack.await, DeliveryStatus::Delivered);
        assert!(
            unhealthy(),
            "another object stored while one is still refused: still unhealthy"
        );
        assert!(retried.await.unwrap(), "stored on a later attempt");
        assert_eq!(refused_ack.await, DeliveryStatus::Delivered);
        assert_eq!(
            health().get(&uploader.health_key()),
            Some(HealthState::Healthy),
            "healthy once nothing is failing"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stopping_drops_the_unstored_batch_unacknowledged() {
        let (uploader, store) = uploader(
            "archive-unit-stop",
            (0..100).map(|_| unavailable()).collect(),
        );
        let (object, receiver) = object();
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let (uploader, stop) = (uploader.clone(), stop.clone());
            async move { uploader.store(object, &stop).await }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        stop.cancel();
        assert!(!task.await.unwrap());
        assert!(matches!(receiver.await, DeliveryStatus::Failed(_)));
        assert_eq!(stored(&store), 0);
    }

    #[test]
    fn statuses_are_classified() {
        for (text, class) in [
            ("Server returned non-2xx status code: 500 Internal Server Error: ", FailureClass::Transient),
            ("Server returned non-2xx status code: 503 Service Unavailable: <Error><Code>SlowDown", FailureClass::Transient),
            ("Server returned non-2xx status code: 429 Too Many Requests", FailureClass::Transient),
            ("Server returned non-2xx status code: 408 Request Timeout", FailureClass::Transient),
            ("Server returned non-2xx status code: 400 Bad Request: <Code>InvalidBucketName", FailureClass::Permanent),
            ("Server returned non-2xx status code: 301 Moved Permanently: PermanentRedirect", FailureClass::Permanent),
            ("Received redirect without LOCATION, this normally indicates an incorrectly configured region", FailureClass::Permanent),
            ("error sending request: connection refused", FailureClass::Transient),
        ] {
            assert_eq!(classify_text(text), class, "{text}");
        }
    }

    #[test]
    fn refusals_by_kind_are_permanent() {
        let source = || -> Box<dyn std::error::Error + Send + Sync> { "NoSuchBucket".into() };
        let missing = object_store::Error::NotFound {
            path: "a".into(),
            source: source(),
        };
        assert_eq!(classify(&missing), FailureClass::Permanent);
        let denied = object_store::Error::PermissionDenied {
            path: "a".into(),
            source: source(),
        };
        assert_eq!(classify(&denied), FailureClass::Permanent);
        let generic = object_store::Error::Generic {
            store: "S3",
            source: source(),
        };
        assert_eq!(classify(&generic), FailureClass::Transient);
    }
}

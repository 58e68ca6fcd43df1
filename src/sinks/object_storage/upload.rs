//! Storing a sealed object: one PutObject per attempt, retried until the bucket confirmed it.
//! Transient failures (5xx, throttling, timeouts, connection errors) back off and retry; the
//! sink turns unhealthy after a few in a row. Permanent ones (403, missing bucket, wrong region,
//! bad request) turn it unhealthy at once, loudly, and retry at the slowest pace: the bucket
//! may be fixed while the logs wait. It is healthy again once an object is stored while no
//! other upload's last attempt failed. Nothing is ever dropped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::path::Path;
use object_store::{Attribute, Attributes, ObjectStore, PutOptions, PutPayload};
use tokio_util::sync::CancellationToken;

use super::activity::{Activity, Finished, SharedActivity};
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
        let payload = PutPayload::from_bytes(object.body.clone());
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, self.content_type.into());
        let labels = SinkLabels::new(&self.sink);
        let mut backoff = Backoff::new(self.retry.0, self.retry.1);
        let started = Instant::now();
        let mut attempts = 0u32;
        let activity = |change: &dyn Fn(&mut Activity)| {
            change(&mut self.activity.lock().expect("archive activity lock"));
        };
        activity(&|upload| upload.started(&object.key, object.body.len() as u64, object.opened_at));
        loop {
            attempts += 1;
            let options = PutOptions {
                attributes: attributes.clone(),
                ..PutOptions::default()
            };
            let result = tokio::select! {
                biased;
                () = shutdown.cancelled() => {
                    activity(&|upload| upload.abandoned(&object.key));
                    return false;
                }
                result = self.store.put_opts(&path, payload.clone(), options) => result,
            };
            let error = match result {
                Ok(_) => {
                    activity(&|upload| upload.attempted(&object.key, None));
                    break;
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
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use async_trait::async_trait;
    use futures::stream::BoxStream;
    use object_store::memory::InMemory;
    use object_store::{
        CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta,
        PutMultipartOptions, PutResult,
    };

    use super::*;
    use crate::model::ack::{self, DeliveryStatus};
    use crate::sinks::object_storage::rollover::SealReason;

    /// A bucket in memory whose next PUTs fail with the given errors.
    #[derive(Debug, Default)]
    struct FailingStore {
        inner: InMemory,
        failures: Mutex<VecDeque<object_store::Error>>,
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
            match failure {
                Some(error) => Err(error),
                None => self.inner.put_opts(location, payload, opts).await,
            }
        }
        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: PutMultipartOptions,
        ) -> object_store::Result<Box<dyn MultipartUpload>> {
            self.inner.put_multipart_opts(location, opts).await
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
            inner: InMemory::new(),
            failures: Mutex::new(failures.into()),
        });
        let uploader = Uploader {
            store: store.clone(),
            sink: name.into(),
            content_type: "application/x-ndjson",
            format: "json",
            retry: (Duration::from_millis(100), Duration::from_secs(1)),
            activity: SharedActivity::default(),
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
            body: bytes::Bytes::from_static(b"{}\n"),
            logs: 1,
            uncompressed: 3,
            reason: SealReason::Stop,
            opened_at: tokio::time::Instant::now(),
            acks: vec![token],
        };
        (object, receiver)
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

//! Delivery of one request, as its own task: send, then act on the collector's answer until
//! every event of the request is confirmed (accepted, acknowledged when Splunk gives an
//! `ackId`, or dead-lettered) or the sink shuts down.
//!
//! - busy, server and network errors: the same request again after a capped, jittered backoff
//!   that honours `Retry-After`;
//! - token and configuration errors, and 4xx answers without a HEC code (a proxy's): the sink
//!   is paused (unhealthy) and the request is tried again every `pause_retry_interval`;
//!   nothing is dropped;
//! - data errors: the events before `invalid-event-number` were indexed, the rejected one goes
//!   to the dead-letter file, the rest is sent again (without a number, the request is halved
//!   until the bad event is alone);
//! - 413: the request is halved; a single event too large is dead-lettered;
//! - an indexer acknowledgement that does not come within `ack_timeout`: the request is sent
//!   again (Splunk may then index it twice; HEC has no idempotency key).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::acks::AckTracker;
use super::concurrency::{ConcurrencyLimiter, Outcome, RequestPermit};
use super::dead_letter::{event_value, DeadLetter, DeadLetterFile};
use super::health::HealthReporter;
use super::request::{gunzip, gzip, HecRequest};
use super::response::{CapacityWarning, Verdict};
use super::service::HecClient;
use crate::common::backoff::{sleep_or_cancel, Backoff};
use crate::telemetry::metrics::SinkLabels;

/// State shared by the sink's loop and its request tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The sink's name.
    pub name: String,
    /// Metric labels of the sink.
    pub labels: SinkLabels,
    /// The collector client.
    pub client: HecClient,
    /// Pending indexer acknowledgements.
    pub acks: AckTracker,
    /// Where rejected events go.
    pub dead_letters: DeadLetterFile,
    /// The sink's health entry.
    pub health: HealthReporter,
    /// Requests on the wire at most.
    pub in_flight: Arc<ConcurrencyLimiter>,
    /// Retry policy.
    pub policy: DeliveryPolicy,
    /// Gzip bodies.
    pub gzip: bool,
    /// Whether the configuration asked for indexer acknowledgement.
    pub ack_expected: bool,
    /// No request starts before this instant (set by a "queue nearly full" answer).
    slow_until: Mutex<Option<Instant>>,
}

/// Limits and delays of the delivery paths.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeliveryPolicy {
    /// Larger single events are dead-lettered without sending.
    pub max_event_bytes: usize,
    /// First retry delay.
    pub retry_initial: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Delay between attempts while paused.
    pub pause_retry: Duration,
    /// Wait for an indexer acknowledgement before resending.
    pub ack_timeout: Duration,
}

impl Shared {
    /// Assembles the shared state.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        client: HecClient,
        dead_letters: DeadLetterFile,
        in_flight: Arc<ConcurrencyLimiter>,
        policy: DeliveryPolicy,
        gzip: bool,
        ack_expected: bool,
    ) -> Self {
        Self {
            name: name.to_owned(),
            labels: SinkLabels::new(name),
            client,
            acks: AckTracker::default(),
            dead_letters,
            health: HealthReporter::new(name),
            in_flight,
            policy,
            gzip,
            ack_expected,
            slow_until: Mutex::new(None),
        }
    }
}

/// Why a delivery stopped before confirming its events.
struct Cancelled;

/// A request's bytes, counted in the sink's `sink_request_bytes` gauge from its dispatch
/// until its delivery ends.
pub(crate) struct HeldBytes {
    gauge: Gauge,
    bytes: i64,
}

impl HeldBytes {
    /// Counts `bytes` for the sink of `labels`.
    pub fn count(labels: &SinkLabels, bytes: usize) -> Self {
        let gauge = crate::telemetry::metrics()
            .sink_request_bytes
            .get_or_create(labels)
            .clone();
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        gauge.inc_by(bytes);
        Self { gauge, bytes }
    }
}

impl Drop for HeldBytes {
    fn drop(&mut self) {
        self.gauge.dec_by(self.bytes);
    }
}

/// Delivers `request` and every part it is split into. `pending` bounds the requests not yet
/// confirmed (and so the ones awaiting acknowledgement); it and `held` are released at the end.
pub(crate) async fn deliver(
    shared: Arc<Shared>,
    request: HecRequest,
    held: HeldBytes,
    in_flight: RequestPermit,
    pending: OwnedSemaphorePermit,
    shutdown: CancellationToken,
) {
    let mut delivery = RequestDelivery {
        shared: &shared,
        in_flight: Some(in_flight),
        work: vec![request],
        shutdown: &shutdown,
        warned_no_ack: false,
    };
    while let Some(request) = delivery.work.pop() {
        if delivery.deliver_one(request).await.is_err() {
            // Unconfirmed events are dropped with their batches' tokens: never delivered.
            return;
        }
    }
    drop((pending, held));
}

/// One request task's state: the requests left (a split adds halves), its connection slot.
struct RequestDelivery<'a> {
    shared: &'a Shared,
    in_flight: Option<RequestPermit>,
    work: Vec<HecRequest>,
    shutdown: &'a CancellationToken,
    warned_no_ack: bool,
}

impl RequestDelivery<'_> {
    async fn deliver_one(&mut self, mut request: HecRequest) -> Result<(), Cancelled> {
        let shared = self.shared;
        let metrics = crate::telemetry::metrics();
        let mut backoff = Backoff::new(shared.policy.retry_initial, shared.policy.retry_max);
        let mut payload: Option<Bytes> = None;
        if request.len() == 1 && request.encoded_len() > shared.policy.max_event_bytes {
            let reason = format!(
                "not sent: event of {} bytes exceeds max_event_bytes ({})",
                request.encoded_len(),
                shared.policy.max_event_bytes
            );
            if let Some(compressed) = request.take_compressed() {
                self.restore_body(&mut request, &compressed)?;
            }
            return self.dead_letter(&request, 0, 413, &reason).await;
        }
        loop {
            self.hold_connection_slot().await?;
            self.wait_if_slowed().await?;
            let body = match &payload {
                Some(body) => body.clone(),
                None => payload.insert(self.payload(&mut request).await?).clone(),
            };
            let sent = Instant::now();
            let verdict = tokio::select! {
                _ = self.shutdown.cancelled() => return Err(Cancelled),
                verdict = shared.client.send(body.clone()) => verdict,
            };
            shared.in_flight.record(match &verdict {
                Verdict::Retry { .. } => Outcome::BackPressure,
                Verdict::Accepted {
                    warning: Some(CapacityWarning::QueueNearlyFull),
                    ..
                } => Outcome::BackPressure,
                _ => Outcome::Answered(sent.elapsed()),
            });
            let failed = || {
                metrics
                    .sink_failed_requests
                    .get_or_create(&shared.labels)
                    .inc();
            };
            match verdict {
                Verdict::Accepted { ack_id, warning } => {
                    shared.health.working();
                    self.note_warning(warning);
                    let Some(ack_id) = ack_id else {
                        self.warn_if_ack_missing();
                        request.confirm_all(&shared.labels);
                        return Ok(());
                    };
                    // Only the payload is needed to send again: free the body meanwhile.
                    drop(request.take_body());
                    if self.await_ack(ack_id).await? {
                        request.confirm_all(&shared.labels);
                        return Ok(());
                    }
                    metrics.sink_retries.get_or_create(&shared.labels).inc();
                }
                Verdict::Retry {
                    reason,
                    retry_after,
                } => {
                    failed();
                    metrics.sink_retries.get_or_create(&shared.labels).inc();
                    let delay = backoff.next_delay_at_least(retry_after.unwrap_or_default());
                    let attempt = backoff.attempts();
                    // The first failure and every tenth after it, so a long outage stays readable.
                    if attempt % 10 == 1 {
                        tracing::warn!(sink = %shared.name, %reason, ?delay, attempt, events = request.len(), "request not taken; retrying");
                    } else {
                        tracing::debug!(sink = %shared.name, %reason, ?delay, attempt, "request not taken; retrying");
                    }
                    self.sleep(delay).await?;
                }
                Verdict::Pause { reason } => {
                    failed();
                    shared.health.paused(&reason);
                    self.sleep(shared.policy.pause_retry).await?;
                }
                Verdict::DataError {
                    code,
                    reason,
                    first_bad,
                } => {
                    failed();
                    shared.health.working();
                    self.restore_body(&mut request, &body)?;
                    return self.split_bad_data(request, code, &reason, first_bad).await;
                }
                Verdict::TooLarge { reason } => {
                    failed();
                    self.restore_body(&mut request, &body)?;
                    if request.len() == 1 {
                        return self.dead_letter(&request, 0, 413, &reason).await;
                    }
                    tracing::warn!(sink = %shared.name, %reason, events = request.len(), "request too large; sending it in halves");
                    self.push_halves(&request);
                    return Ok(());
                }
            }
        }
    }

    /// Waits for a free connection slot unless this task holds one.
    async fn hold_connection_slot(&mut self) -> Result<(), Cancelled> {
        if self.in_flight.is_none() {
            let permit = tokio::select! {
                _ = self.shutdown.cancelled() => return Err(Cancelled),
                permit = self.shared.in_flight.acquire() => permit,
            };
            self.in_flight = Some(permit);
        }
        Ok(())
    }

    async fn sleep(&self, delay: Duration) -> Result<(), Cancelled> {
        if sleep_or_cancel(delay, self.shutdown).await {
            Ok(())
        } else {
            Err(Cancelled)
        }
    }

    async fn wait_if_slowed(&self) -> Result<(), Cancelled> {
        let until = self.shared.slow_until.lock().ok().and_then(|guard| *guard);
        match until {
            Some(until) if until > Instant::now() => self.sleep(until - Instant::now()).await,
            _ => Ok(()),
        }
    }

    fn note_warning(&self, warning: Option<CapacityWarning>) {
        match warning {
            Some(CapacityWarning::QueueNearlyFull) => {
                tracing::warn!(sink = %self.shared.name, "collector queue nearly full; slowing down");
                if let Ok(mut until) = self.shared.slow_until.lock() {
                    *until = Some(Instant::now() + self.shared.policy.retry_initial);
                }
            }
            Some(CapacityWarning::AckNearlyFull) => self.shared.acks.poll_soon(),
            None => {}
        }
    }

    fn warn_if_ack_missing(&mut self) {
        if self.shared.ack_expected && !self.warned_no_ack {
            self.warned_no_ack = true;
            tracing::warn!(
                sink = %self.shared.name,
                "ack = true but the collector answered without an ackId (indexer acknowledgement is off for this token); a 200 is final"
            );
        }
    }

    /// The body to send, without copying it: the payload compressed when the request was
    /// made, or (for a part of a split request) gzipped now off the async threads when
    /// compression is on (the uncompressed body is freed meanwhile, so a request on the wire
    /// holds only its compressed payload; a split recovers the body from it), otherwise the
    /// body itself (the request gets it back from the payload only if it has to be split).
    async fn payload(&self, request: &mut HecRequest) -> Result<Bytes, Cancelled> {
        if let Some(compressed) = request.take_compressed() {
            return Ok(compressed);
        }
        let body = request.take_body();
        if !self.shared.gzip {
            return Ok(Bytes::from(body));
        }
        match tokio::task::spawn_blocking(move || gzip(&body)).await {
            Ok(Ok(compressed)) => Ok(Bytes::from(compressed)),
            Ok(Err(error)) => {
                tracing::error!(sink = %self.shared.name, %error, "gzip failed; sending uncompressed is not possible with the gzip header");
                Err(Cancelled)
            }
            Err(_) => Err(Cancelled),
        }
    }

    /// Puts back a body taken for the payload or while awaiting an acknowledgement, from the
    /// payload sent.
    fn restore_body(&self, request: &mut HecRequest, payload: &Bytes) -> Result<(), Cancelled> {
        if !request.body_released() {
            return Ok(());
        }
        let body = if self.shared.gzip {
            gunzip(payload)
        } else {
            Ok(payload.to_vec())
        };
        if body.is_ok_and(|body| request.restore_body(body)) {
            return Ok(());
        }
        tracing::error!(sink = %self.shared.name, "cannot recover a request body from its payload; its batches stay unacknowledged");
        Err(Cancelled)
    }

    /// Waits for the acknowledgement of `ack_id`, without holding a connection slot. Returns
    /// `false` when it did not come within the timeout (the caller sends again).
    async fn await_ack(&mut self, ack_id: u64) -> Result<bool, Cancelled> {
        let shared = self.shared;
        let acked = shared.acks.register(ack_id);
        self.in_flight = None;
        tokio::select! {
            _ = self.shutdown.cancelled() => Err(Cancelled),
            result = tokio::time::timeout(shared.policy.ack_timeout, acked) => match result {
                Ok(Ok(())) => Ok(true),
                Ok(Err(_)) => Err(Cancelled),
                Err(_) => {
                    tracing::warn!(
                        sink = %shared.name,
                        ack_id,
                        timeout = ?shared.policy.ack_timeout,
                        "indexer acknowledgement did not come in time; sending the request again (it may be indexed twice)"
                    );
                    Ok(false)
                }
            },
        }
    }

    fn push_halves(&mut self, request: &HecRequest) {
        let (head, tail) = request.halves();
        self.work.push(tail);
        self.work.push(head);
    }

    async fn split_bad_data(
        &mut self,
        request: HecRequest,
        code: i64,
        reason: &str,
        first_bad: Option<usize>,
    ) -> Result<(), Cancelled> {
        match first_bad.filter(|&index| index < request.len()) {
            Some(bad) => {
                request.confirm(0..bad, &self.shared.labels);
                self.dead_letter(&request, bad, code, reason).await?;
                if bad + 1 < request.len() {
                    self.work.push(request.subset(bad + 1..request.len()));
                }
            }
            None if request.len() == 1 => self.dead_letter(&request, 0, code, reason).await?,
            None => {
                tracing::warn!(sink = %self.shared.name, %reason, events = request.len(), "rejected without an event number; sending the request in halves to find the bad event");
                self.push_halves(&request);
            }
        }
        Ok(())
    }

    /// Writes event `index` to the dead-letter file (retrying until it is on disk), then
    /// settles it.
    async fn dead_letter(
        &self,
        request: &HecRequest,
        index: usize,
        code: i64,
        reason: &str,
    ) -> Result<(), Cancelled> {
        let shared = self.shared;
        let batch = request.event_batch(index);
        let letter = DeadLetter {
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            sink: &shared.name,
            shard: batch.shard.to_string(),
            sequence: batch.sequence,
            code,
            reason,
            event: event_value(request.event_text(index)),
        };
        let mut backoff = Backoff::new(shared.policy.retry_initial, shared.policy.retry_max);
        while let Err(error) = shared.dead_letters.write(&letter).await {
            tracing::error!(sink = %shared.name, %error, path = %shared.dead_letters.path().display(), "cannot write the dead-letter file; holding the event");
            self.sleep(backoff.next_delay()).await?;
        }
        tracing::error!(
            sink = %shared.name,
            shard = %letter.shard,
            code,
            %reason,
            path = %shared.dead_letters.path().display(),
            "collector rejected an event as bad data; written to the dead-letter file"
        );
        crate::telemetry::metrics()
            .sink_dead_lettered_events
            .get_or_create(&shared.labels)
            .inc();
        request.settle(index..index + 1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RecordsBuilder;
    use crate::sinks::splunk_hec::SplunkHecSinkConfig;
    use crate::sinks::SinkBatch;

    #[tokio::test]
    async fn a_gzipped_request_holds_only_its_payload_and_recovers_its_body() {
        let config: SplunkHecSinkConfig =
            toml::from_str("url = \"http://127.0.0.1:9\"\ntoken = \"unit\"").unwrap();
        let sink = config.build("hec-unit-payload").unwrap();
        let mut records = RecordsBuilder::new();
        for time in 0..100 {
            records = records.log(time, None, &[("field", "value \"quoted\"")]);
        }
        let (batch, _receiver) = SinkBatch::new("ls", 0, 0, records.build());
        let mut request = {
            let mut builder = sink.builder.lock().unwrap();
            builder.start(batch);
            assert!(builder.next_full().is_none());
            builder.take()
        };
        let body = request.body().to_vec();
        let shutdown = CancellationToken::new();
        let delivery = RequestDelivery {
            shared: &sink.shared,
            in_flight: None,
            work: Vec::new(),
            shutdown: &shutdown,
            warned_no_ack: false,
        };
        let payload = delivery.payload(&mut request).await.ok().unwrap();
        assert!(
            request.body_released(),
            "the uncompressed body stays in memory"
        );
        assert!(payload.len() < body.len());
        assert!(delivery.restore_body(&mut request, &payload).is_ok());
        assert_eq!(request.body(), body);
    }
}

//! Request bodies: encoded events appended back-to-back (event endpoint) or one per line (raw
//! endpoint), with the byte range and owning batch of each event, so that a request can be
//! split after a rejection and each batch confirmed for exactly the events that got through.

use std::io::Write;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use flate2::write::GzEncoder;
use serde::Deserialize;

use super::delivery::BatchDelivery;
use crate::encoding::hec::HecEncoder;
use crate::model::batch::Batch;
use crate::sinks::SinkBatch;
use crate::telemetry::metrics::SinkLabels;

/// One event of a request: where it ends in the body and which batch it belongs to.
#[derive(Debug, Clone, Copy)]
struct EventSlot {
    end: usize,
    batch: usize,
}

/// The body of one HEC request and the batches its events came from.
#[derive(Debug, Default)]
pub(crate) struct HecRequest {
    body: Vec<u8>,
    events: Vec<EventSlot>,
    batches: Vec<Arc<BatchDelivery>>,
    /// The gzipped body, made by [`HecRequest::compress`] (the body is then released).
    compressed: Option<Bytes>,
}

impl HecRequest {
    /// Number of events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True when the request holds no event.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Length of the uncompressed body, also while it is released.
    pub fn encoded_len(&self) -> usize {
        self.events.last().map_or(0, |last| last.end)
    }

    /// The uncompressed body.
    #[cfg(test)]
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    fn event_range(&self, index: usize) -> Range<usize> {
        let start = index
            .checked_sub(1)
            .map_or(0, |before| self.events[before].end);
        start..self.events[index].end
    }

    /// The encoded text of event `index` (without the raw endpoint's newline).
    pub fn event_text(&self, index: usize) -> &[u8] {
        let text = &self.body[self.event_range(index)];
        text.strip_suffix(b"\n").unwrap_or(text)
    }

    /// The batch event `index` belongs to.
    pub fn event_batch(&self, index: usize) -> &BatchDelivery {
        &self.batches[self.events[index].batch]
    }

    /// Takes the body out, for a payload made without a copy, or to free it while only the
    /// payload is needed (awaiting an indexer acknowledgement, possibly for minutes);
    /// [`HecRequest::restore_body`] puts it back.
    pub fn take_body(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.body)
    }

    /// Gzips the body into the payload to send (through `scratch`, which keeps its capacity
    /// for the next request) and hands the body's buffer back emptied, so that the request
    /// holds only its compressed payload from now on (a split recovers the body from it).
    fn compress_into(&mut self, scratch: &mut Vec<u8>) -> std::io::Result<Vec<u8>> {
        scratch.clear();
        gzip_into(&self.body, scratch)?;
        // The payload may wait minutes for an acknowledgement: an exact copy, no spare capacity.
        self.compressed = Some(Bytes::copy_from_slice(scratch));
        let mut body = std::mem::take(&mut self.body);
        body.clear();
        Ok(body)
    }

    /// The payload made by [`HecRequest::compress`], if any, taken out.
    pub fn take_compressed(&mut self) -> Option<Bytes> {
        self.compressed.take()
    }

    /// Bytes the request holds: its compressed payload once compressed, else its body.
    pub fn held_bytes(&self) -> usize {
        self.compressed.as_ref().map_or(self.body.len(), Bytes::len)
    }

    /// True between [`HecRequest::take_body`] and [`HecRequest::restore_body`].
    pub fn body_released(&self) -> bool {
        self.body.is_empty() && !self.events.is_empty()
    }

    /// Puts back the body taken by [`HecRequest::take_body`]; returns `false` (and keeps
    /// the request released) when `body` is not the length the events need.
    pub fn restore_body(&mut self, body: Vec<u8>) -> bool {
        if body.len() != self.encoded_len() {
            return false;
        }
        self.body = body;
        true
    }

    /// Appends `event` (already encoded) as an event of `batch`.
    fn push_encoded(&mut self, event: &[u8], batch: &Arc<BatchDelivery>) {
        let batch_index = match self.batches.last() {
            Some(last) if Arc::ptr_eq(last, batch) => self.batches.len() - 1,
            _ => {
                self.batches.push(batch.clone());
                self.batches.len() - 1
            }
        };
        self.body.extend_from_slice(event);
        self.events.push(EventSlot {
            end: self.body.len(),
            batch: batch_index,
        });
    }

    /// A new request holding copies of the events in `range`.
    pub fn subset(&self, range: Range<usize>) -> HecRequest {
        let mut subset = HecRequest::default();
        for index in range {
            subset.push_encoded(
                &self.body[self.event_range(index)],
                &self.batches[self.events[index].batch],
            );
        }
        subset
    }

    /// The request cut in two halves (for a request the server found too large).
    pub fn halves(&self) -> (HecRequest, HecRequest) {
        let middle = self.len() / 2;
        (self.subset(0..middle), self.subset(middle..self.len()))
    }

    /// Confirms the events in `range` to their batches and counts them as delivered.
    pub fn confirm(&self, range: Range<usize>, labels: &SinkLabels) {
        if range.is_empty() {
            return;
        }
        let metrics = crate::telemetry::metrics();
        let bytes = self.events[range.end - 1].end - self.event_range(range.start).start;
        metrics.count_delivered(labels, range.len(), bytes);
        self.settle(range);
    }

    /// Confirms the events in `range` to their batches without counting them as delivered
    /// (they were dead-lettered).
    pub fn settle(&self, range: Range<usize>) {
        let mut run_start = range.start;
        for index in range.clone() {
            let next_differs =
                index + 1 == range.end || self.events[index + 1].batch != self.events[index].batch;
            if next_differs {
                self.event_batch(index).confirm(index + 1 - run_start);
                run_start = index + 1;
            }
        }
    }

    /// Confirms every event.
    pub fn confirm_all(&self, labels: &SinkLabels) {
        self.confirm(0..self.len(), labels);
    }
}

/// Gzips `body` at the fastest level (HEC bodies are repetitive JSON; level 1 already shrinks
/// them several times, and the CPU goes to throughput instead).
pub(crate) fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut compressed = Vec::with_capacity(body.len() / 4 + 64);
    gzip_into(body, &mut compressed)?;
    // The payload may wait minutes for an acknowledgement: keep no spare capacity.
    compressed.shrink_to_fit();
    Ok(compressed)
}

/// Appends `body`, gzipped as [`gzip`] does, to `out`.
fn gzip_into(body: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
    let mut encoder = GzEncoder::new(out, flate2::Compression::fast());
    encoder.write_all(body)?;
    encoder.finish()?;
    Ok(())
}

/// Reverses [`gzip`].
pub(crate) fn gunzip(compressed: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::with_capacity(compressed.len() * 4);
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(compressed), &mut body)?;
    Ok(body)
}

/// When a request is full.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestLimits {
    /// Events per request at most.
    pub max_events: usize,
    /// Uncompressed body bytes at most (a single larger event goes alone).
    pub max_bytes: usize,
    /// Larger events go alone, to be dead-lettered without sending.
    pub max_event_bytes: usize,
}

/// The collector endpoint receiving logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HecEndpoint {
    /// `/services/collector/event`: one JSON envelope per log.
    #[default]
    Event,
    /// `/services/collector/raw`: one line per log, metadata per request.
    Raw,
}

impl HecEndpoint {
    /// The endpoint's path below the collector's base URL.
    pub fn path(self) -> &'static str {
        match self {
            Self::Event => "services/collector/event",
            Self::Raw => "services/collector/raw",
        }
    }
}

/// Encodes incoming batches into requests, one request at a time, cutting a request when it is
/// full: the caller hands each full request on before asking for the next, so a slow collector
/// holds back encoding instead of letting encoded requests pile up.
#[derive(Debug)]
pub(crate) struct RequestBuilder {
    encoder: HecEncoder,
    endpoint: HecEndpoint,
    limits: RequestLimits,
    current: HecRequest,
    scratch: Vec<u8>,
    /// The body buffer of the last compressed request, emptied, for the next request: bodies
    /// of a full request's size (1 MiB by default) are reused rather than allocated and freed
    /// for every request.
    spare_body: Vec<u8>,
    /// Reused output buffer of [`RequestBuilder::compress`].
    compressed_scratch: Vec<u8>,
    /// The batch being encoded and its delivery tracking; dropped (and with it the batch's
    /// memory and budget, unless another sink still holds them) once every log is encoded.
    source: Option<(Arc<Batch>, Arc<BatchDelivery>)>,
    /// Index of the source's next log to encode.
    next_log: usize,
    /// The pending request takes no more events (it is handed out next).
    current_full: bool,
}

/// Capacity the scratch buffer keeps between events; a larger event's buffer is freed.
const SCRATCH_CAPACITY: usize = 64 << 10;

impl RequestBuilder {
    /// A builder with nothing pending.
    pub fn new(encoder: HecEncoder, endpoint: HecEndpoint, limits: RequestLimits) -> Self {
        Self {
            encoder,
            endpoint,
            limits,
            current: HecRequest::default(),
            scratch: Vec::with_capacity(4096),
            spare_body: Vec::new(),
            compressed_scratch: Vec::new(),
            source: None,
            next_log: 0,
            current_full: false,
        }
    }

    /// True when no event waits for a request.
    pub fn is_empty(&self) -> bool {
        self.current.is_empty()
    }

    /// Starts encoding `sink_batch`; [`RequestBuilder::next_full`] encodes it. A batch not
    /// finished before is dropped (its ack reports a failure).
    pub fn start(&mut self, sink_batch: SinkBatch) {
        self.source = Some(BatchDelivery::new(sink_batch));
        self.next_log = 0;
    }

    /// Encodes logs of the started batch until a request is full and returns it, or returns
    /// `None` once every log of the batch is encoded (the last ones may wait in the pending
    /// request for more).
    pub fn next_full(&mut self) -> Option<HecRequest> {
        if self.current_full {
            return Some(self.take());
        }
        let (batch, delivery) = self.source.clone()?;
        while let Some(record) = batch.records.get(self.next_log) {
            self.next_log += 1;
            self.scratch.clear();
            match self.endpoint {
                HecEndpoint::Event => self.encoder.encode_event(&record, &mut self.scratch),
                HecEndpoint::Raw => {
                    self.encoder.encode_raw(&record, &mut self.scratch);
                    self.scratch.push(b'\n');
                }
            }
            let oversized = self.scratch.len() > self.limits.max_event_bytes;
            let would_overflow =
                self.current.body.len() + self.scratch.len() > self.limits.max_bytes;
            let before =
                (!self.current.is_empty() && (would_overflow || oversized)).then(|| self.take());
            self.current.push_encoded(&self.scratch, &delivery);
            self.current_full = oversized
                || self.current.len() >= self.limits.max_events
                || self.current.body.len() >= self.limits.max_bytes;
            self.shrink_scratch();
            if before.is_some() {
                return before;
            }
            if self.current_full {
                return Some(self.take());
            }
        }
        self.source = None;
        None
    }

    /// Frees the scratch buffer of an unusually large event.
    fn shrink_scratch(&mut self) {
        if self.scratch.capacity() > SCRATCH_CAPACITY {
            self.scratch = Vec::with_capacity(4096);
        }
    }

    /// The pending request, leaving the builder empty. The next body starts with the capacity
    /// the last one needed, but never more than a full request (one oversized event must not
    /// make every later request that large); a spare body buffer is used when there is one.
    pub fn take(&mut self) -> HecRequest {
        let capacity = self.current.body.capacity().min(self.limits.max_bytes);
        let mut next = HecRequest {
            body: std::mem::take(&mut self.spare_body),
            ..HecRequest::default()
        };
        next.body.reserve(capacity);
        self.current_full = false;
        std::mem::replace(&mut self.current, next)
    }

    /// Gzips `request` (taken from this builder) into its payload and keeps its body buffer
    /// and the compression buffer for the next requests, unless larger than a full request.
    pub fn compress(&mut self, request: &mut HecRequest) -> std::io::Result<()> {
        let body = request.compress_into(&mut self.compressed_scratch)?;
        let reusable = |buffer: &Vec<u8>| buffer.capacity() <= self.limits.max_bytes;
        if !reusable(&self.compressed_scratch) {
            self.compressed_scratch = Vec::new();
        }
        if reusable(&body) && body.capacity() > self.spare_body.capacity() {
            self.spare_body = body;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AckReceiver, DeliveryStatus, RecordsBuilder};

    fn sink_batch(shard: u32, events: u32) -> (SinkBatch, AckReceiver) {
        let mut builder = RecordsBuilder::new().group("t", "s", &[]);
        for index in 0..events {
            let value = format!("{shard}-{index}");
            builder = builder.log(1, None, &[("id", value.as_str())]);
        }
        SinkBatch::new("ls", shard, 0, builder.build())
    }

    fn builder(max_events: usize, max_bytes: usize, endpoint: HecEndpoint) -> RequestBuilder {
        RequestBuilder::new(
            HecEncoder::default(),
            endpoint,
            RequestLimits {
                max_events,
                max_bytes,
                max_event_bytes: 200,
            },
        )
    }

    /// Encodes every log of `batch`; the requests that became full.
    fn push(builder: &mut RequestBuilder, batch: SinkBatch) -> Vec<HecRequest> {
        builder.start(batch);
        std::iter::from_fn(|| builder.next_full()).collect()
    }

    fn ids(request: &HecRequest) -> Vec<String> {
        (0..request.len())
            .map(|index| {
                let event: serde_json::Value =
                    serde_json::from_slice(request.event_text(index)).unwrap();
                event["event"]["id"].as_str().unwrap().to_owned()
            })
            .collect()
    }

    #[test]
    fn requests_are_cut_by_event_count_across_batches() {
        let mut builder = builder(3, usize::MAX, HecEndpoint::Event);
        let (first, _) = sink_batch(1, 2);
        let (second, _) = sink_batch(2, 5);
        assert!(push(&mut builder, first).is_empty());
        let full = push(&mut builder, second);
        assert_eq!(full.len(), 2);
        assert_eq!(ids(&full[0]), ["1-0", "1-1", "2-0"]);
        assert_eq!(ids(&full[1]), ["2-1", "2-2", "2-3"]);
        assert_eq!(ids(&builder.take()), ["2-4"]);
        let stream = serde_json::Deserializer::from_slice(full[0].body())
            .into_iter::<serde_json::Value>()
            .count();
        assert_eq!(stream, 3, "events are back-to-back JSON objects");
    }

    #[test]
    fn requests_are_cut_by_bytes_and_large_events_go_alone() {
        let mut builder = builder(100, 10, HecEndpoint::Event);
        let (batch, _) = sink_batch(1, 3);
        let full = push(&mut builder, batch);
        assert_eq!(full.len(), 3);
        assert!(full.iter().all(|request| request.len() == 1));
        assert!(builder.is_empty());
    }

    #[test]
    fn oversized_events_go_alone() {
        let mut builder = builder(100, usize::MAX, HecEndpoint::Event);
        let (small, _) = sink_batch(1, 1);
        push(&mut builder, small);
        let mut records = RecordsBuilder::new();
        let huge = "x".repeat(300);
        records = records.log(1, None, &[("id", huge.as_str())]);
        let (huge_batch, _receiver) = SinkBatch::new("ls", 2, 0, records.build());
        let full = push(&mut builder, huge_batch);
        assert_eq!(full.iter().map(HecRequest::len).collect::<Vec<_>>(), [1, 1]);
        assert!(full[1].body().len() > 300);
        assert!(builder.is_empty());
    }

    #[test]
    fn requests_are_encoded_one_at_a_time() {
        let mut builder = builder(10, usize::MAX, HecEndpoint::Event);
        let (batch, _) = sink_batch(1, 100);
        builder.start(batch);
        let first = builder.next_full().expect("a full request");
        assert_eq!(first.len(), 10);
        assert_eq!(builder.next_log, 10, "the other logs wait until asked for");
        assert!(builder.is_empty());
        let rest = std::iter::from_fn(|| builder.next_full()).count();
        assert_eq!(rest, 9);
        assert!(builder.next_full().is_none());
    }

    #[test]
    fn an_oversized_event_does_not_raise_later_reservations() {
        let mut builder = RequestBuilder::new(
            HecEncoder::default(),
            HecEndpoint::Event,
            RequestLimits {
                max_events: 100,
                max_bytes: 1000,
                max_event_bytes: 1 << 20,
            },
        );
        let huge = "x".repeat(100_000);
        let records = RecordsBuilder::new()
            .log(1, None, &[("id", huge.as_str())])
            .log(2, None, &[("id", "small")])
            .build();
        let (batch, _receiver) = SinkBatch::new("ls", 1, 0, records);
        let full = push(&mut builder, batch);
        assert_eq!(full.len(), 1);
        assert!(full[0].body().len() > 100_000);
        assert_eq!(ids(&builder.take()), ["small"]);
        assert!(
            builder.current.body.capacity() <= 1000,
            "reserved {} bytes",
            builder.current.body.capacity()
        );
        assert!(builder.scratch.capacity() <= SCRATCH_CAPACITY);
    }

    #[test]
    fn an_oversized_event_goes_alone_even_below_max_bytes() {
        let mut builder = builder(100, usize::MAX, HecEndpoint::Event);
        let huge = "x".repeat(300);
        let records = RecordsBuilder::new()
            .log(1, None, &[("id", "a")])
            .log(2, None, &[("id", huge.as_str())])
            .log(3, None, &[("id", "b")])
            .build();
        let (batch, _receiver) = SinkBatch::new("ls", 1, 0, records);
        let full = push(&mut builder, batch);
        assert_eq!(full.iter().map(HecRequest::len).collect::<Vec<_>>(), [1, 1]);
        assert_eq!(ids(&full[0]), ["a"]);
        assert_eq!(ids(&builder.take()), ["b"]);
    }

    #[test]
    fn raw_events_are_lines() {
        let mut builder = builder(100, usize::MAX, HecEndpoint::Raw);
        let (batch, _) = sink_batch(1, 2);
        push(&mut builder, batch);
        let request = builder.take();
        let body = String::from_utf8(request.body().to_vec()).unwrap();
        assert_eq!(body.lines().count(), 2);
        assert!(body.ends_with('\n'));
        assert!(!request.event_text(0).ends_with(b"\n"));
    }

    #[tokio::test]
    async fn confirmations_reach_each_batch_of_a_shared_request() {
        let mut builder = builder(100, usize::MAX, HecEndpoint::Event);
        let (first, mut first_ack) = sink_batch(1, 2);
        let (second, mut second_ack) = sink_batch(2, 2);
        push(&mut builder, first);
        push(&mut builder, second);
        let request = builder.take();
        let labels = SinkLabels::new("request-unit-test");
        let (head, tail) = request.halves();
        drop(request);
        head.confirm(0..1, &labels);
        assert_eq!(first_ack.try_outcome(), None);
        tail.subset(1..2).confirm_all(&labels);
        head.confirm(1..2, &labels);
        assert_eq!(first_ack.try_outcome(), Some(DeliveryStatus::Delivered));
        assert_eq!(second_ack.try_outcome(), None);
        tail.confirm(0..1, &labels);
        assert_eq!(second_ack.await, DeliveryStatus::Delivered);
    }

    #[test]
    fn released_bodies_come_back_from_the_compressed_copy() {
        let mut builder = builder(100, usize::MAX, HecEndpoint::Event);
        let (batch, _) = sink_batch(1, 20);
        push(&mut builder, batch);
        let mut request = builder.take();
        let body = request.body().to_vec();
        let compressed = gzip(&body).unwrap();
        assert!(compressed.len() < body.len() / 4);
        assert_eq!(request.take_body(), body);
        assert!(request.body_released());
        assert!(!request.restore_body(b"short".to_vec()));
        assert!(request.body_released());
        assert!(request.restore_body(gunzip(&compressed).unwrap()));
        assert!(!request.body_released());
        assert_eq!(ids(&request.subset(19..20)), ["1-19"]);
    }

    #[test]
    fn compressed_requests_hand_their_body_buffers_on_to_later_requests() {
        let mut builder = builder(4, usize::MAX, HecEndpoint::Event);
        let (batch, _) = sink_batch(1, 9);
        builder.start(batch);
        let mut first = builder.next_full().unwrap();
        let (first_body, first_buffer) = (first.body().to_vec(), first.body().as_ptr());
        builder.compress(&mut first).unwrap();
        assert!(
            first.body_released(),
            "a compressed request holds only its payload"
        );
        let payload = first.take_compressed().unwrap();
        assert_eq!(gunzip(&payload).unwrap(), first_body);
        assert_eq!(payload.len(), gzip(&first_body).unwrap().len());

        let mut second = builder.next_full().unwrap();
        let second_buffer = second.body().as_ptr();
        assert_eq!(
            builder.current.body.as_ptr(),
            first_buffer,
            "the request after the second is encoded into the first one's body buffer"
        );
        builder.compress(&mut second).unwrap();
        assert_eq!(builder.spare_body.as_ptr(), second_buffer);
        assert!(builder.next_full().is_none());
        assert_eq!(ids(&builder.take()), ["1-8"]);
    }

    #[test]
    fn a_body_larger_than_a_full_request_is_not_kept() {
        let mut builder = builder(100, 64, HecEndpoint::Event);
        builder.limits.max_event_bytes = 4096;
        let mut batch = RecordsBuilder::new().group("t", "s", &[]);
        let large = "x".repeat(1000);
        batch = batch.log(1, None, &[("id", large.as_str())]);
        let (batch, _) = SinkBatch::new("ls", 1, 0, batch.build());
        builder.start(batch);
        let mut oversized = builder.next_full().unwrap();
        assert!(oversized.body.capacity() > 64);
        builder.compress(&mut oversized).unwrap();
        assert_eq!(builder.spare_body.capacity(), 0);
    }
}

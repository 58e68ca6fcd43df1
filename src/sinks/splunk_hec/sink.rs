//! The HEC sink's run loop: takes batches, has them encoded into requests one at a time, and
//! dispatches each request to a delivery task within the in-flight and pending limits; polls
//! indexer acknowledgements alongside.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::acks::AckQueries;
use super::request::{HecRequest, RequestBuilder};
use super::sender::{deliver, HeldBytes, Shared};
use crate::sinks::{Sink, SinkBatch, SinkError};

/// A Splunk HEC destination; create it with
/// [`SplunkHecSinkConfig::build`](super::SplunkHecSinkConfig::build).
#[derive(Debug)]
pub struct SplunkHecSink {
    pub(super) shared: Arc<Shared>,
    pub(super) builder: Arc<Mutex<RequestBuilder>>,
    batch_timeout: Duration,
    max_pending: usize,
    ack_poll_interval: Duration,
}

impl SplunkHecSink {
    /// A sink delivering through `shared`, encoding with `builder`; `batch_timeout` is the
    /// longest wait for a request to fill, `max_pending` the requests sent and not yet
    /// confirmed at most.
    pub(super) fn new(
        shared: Shared,
        builder: RequestBuilder,
        batch_timeout: Duration,
        max_pending: usize,
        ack_poll_interval: Duration,
    ) -> Self {
        Self {
            shared: Arc::new(shared),
            builder: Arc::new(Mutex::new(builder)),
            batch_timeout,
            max_pending,
            ack_poll_interval,
        }
    }

    /// The channel GUID this sink sends with every request.
    pub fn channel(&self) -> &str {
        self.shared.client.channel()
    }
}

#[async_trait]
impl Sink for SplunkHecSink {
    fn name(&self) -> &str {
        &self.shared.name
    }

    async fn healthcheck(&self) -> Result<(), SinkError> {
        match self.shared.client.health().await {
            Ok(()) => {
                self.shared.health.working();
                Ok(())
            }
            Err(error) => {
                self.shared.health.unhealthy(error.to_string());
                Err(error)
            }
        }
    }

    async fn run(
        self: Box<Self>,
        mut input: mpsc::Receiver<SinkBatch>,
        shutdown: CancellationToken,
    ) -> Result<(), SinkError> {
        let SplunkHecSink {
            shared,
            builder,
            batch_timeout,
            max_pending,
            ack_poll_interval,
        } = *self;
        let ack_stop = shutdown.child_token();
        let ack_task = tokio::spawn({
            let shared = shared.clone();
            let stop = ack_stop.clone();
            async move {
                let queries = AckQueries {
                    client: &shared.client,
                    health: &shared.health,
                    labels: &shared.labels,
                    interval: ack_poll_interval,
                    retry_max: shared.policy.retry_max,
                    ack_expected: shared.ack_expected,
                };
                shared.acks.run(queries, &shared.name, stop).await
            }
        });
        let mut dispatcher = Dispatcher {
            shared: &shared,
            pending: Arc::new(Semaphore::new(max_pending)),
            tasks: JoinSet::new(),
            shutdown: &shutdown,
        };
        let mut flush_at: Option<Instant> = None;
        let mut input_open = true;
        while input_open {
            let step = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(joined) = dispatcher.tasks.join_next(), if !dispatcher.tasks.is_empty() => {
                    report_task_end(&shared.name, joined);
                    continue;
                }
                _ = tokio::time::sleep_until(flush_at.unwrap_or_else(Instant::now)), if flush_at.is_some() => {
                    Step::Flush
                }
                received = input.recv() => match received {
                    Some(batch) => Step::Encode(batch),
                    None => Step::Closed,
                },
            };
            let dispatched = match step {
                Step::Flush => dispatch_pending(&builder, &mut dispatcher).await,
                Step::Closed => {
                    input_open = false;
                    dispatch_pending(&builder, &mut dispatcher).await
                }
                Step::Encode(batch) => encode_and_dispatch(&builder, batch, &mut dispatcher).await,
            };
            // `None` after a shutdown, else whether logs wait in the pending request.
            let waiting = dispatched.and_then(|open| {
                Ok(if open {
                    Some(!lock(&builder)?.is_empty())
                } else {
                    None
                })
            });
            match waiting {
                Ok(None) => break,
                Ok(Some(false)) => flush_at = None,
                Ok(Some(true)) => {
                    flush_at.get_or_insert_with(|| Instant::now() + batch_timeout);
                }
                Err(error) => {
                    ack_stop.cancel();
                    return Err(error);
                }
            }
        }
        dispatcher.drain().await;
        ack_stop.cancel();
        if let Err(error) = ack_task.await {
            tracing::error!(sink = %shared.name, %error, "acknowledgement task failed");
        }
        Ok(())
    }
}

fn lock(builder: &Mutex<RequestBuilder>) -> Result<MutexGuard<'_, RequestBuilder>, SinkError> {
    builder
        .lock()
        .map_err(|_| SinkError::Unavailable("an encoding task failed".into()))
}

/// Dispatches the pending request, if any. Returns `false` on shutdown.
async fn dispatch_pending(
    builder: &Arc<Mutex<RequestBuilder>>,
    dispatcher: &mut Dispatcher<'_>,
) -> Result<bool, SinkError> {
    let pending = prepare(builder, dispatcher.shared.gzip, |builder| {
        (!builder.is_empty()).then(|| builder.take())
    })
    .await?;
    match pending {
        Some(request) => Ok(dispatcher.dispatch(request).await),
        None => Ok(true),
    }
}

/// Encodes `batch` one request at a time, off the async workers (a request takes
/// milliseconds to encode and compress), and dispatches each full request before encoding the
/// next: while the collector is slow, the rest of the batch stays unencoded. Returns `false`
/// on shutdown.
async fn encode_and_dispatch(
    builder: &Arc<Mutex<RequestBuilder>>,
    batch: SinkBatch,
    dispatcher: &mut Dispatcher<'_>,
) -> Result<bool, SinkError> {
    lock(builder)?.start(batch);
    while let Some(request) =
        prepare(builder, dispatcher.shared.gzip, RequestBuilder::next_full).await?
    {
        if !dispatcher.dispatch(request).await {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The request `next` takes from the builder, made off the async workers and, with `gzip`,
/// compressed there: a request waiting for a slot or on the wire holds only its compressed
/// payload, and the sink holds at most one uncompressed body (the one being encoded).
async fn prepare(
    builder: &Arc<Mutex<RequestBuilder>>,
    gzip: bool,
    next: fn(&mut RequestBuilder) -> Option<HecRequest>,
) -> Result<Option<HecRequest>, SinkError> {
    let builder = builder.clone();
    tokio::task::spawn_blocking(move || {
        let mut builder = lock(&builder)?;
        let request = next(&mut builder);
        match request {
            Some(mut request) if gzip => {
                builder
                    .compress(&mut request)
                    .map_err(|error| SinkError::Unavailable(format!("gzip failed: {error}")))?;
                Ok(Some(request))
            }
            request => Ok(request),
        }
    })
    .await
    .map_err(|error| SinkError::Unavailable(format!("encoding task failed: {error}")))?
}

/// What the sink loop does next.
enum Step {
    /// The oldest pending event waited `batch.timeout`: send what there is.
    Flush,
    /// Encode a new batch.
    Encode(SinkBatch),
    /// The input closed: send what there is, then drain.
    Closed,
}

/// Starts request tasks within the in-flight and pending limits.
struct Dispatcher<'a> {
    shared: &'a Arc<Shared>,
    pending: Arc<Semaphore>,
    tasks: JoinSet<()>,
    shutdown: &'a CancellationToken,
}

impl Dispatcher<'_> {
    /// Starts delivering `request` once a pending slot and a connection slot are free.
    /// Returns `false` on shutdown.
    async fn dispatch(&mut self, request: HecRequest) -> bool {
        let held = HeldBytes::count(&self.shared.labels, request.held_bytes());
        let permits = async {
            let pending = self.pending.clone().acquire_owned().await.ok()?;
            let in_flight = self.shared.in_flight.acquire().await;
            Some((pending, in_flight))
        };
        let permits = tokio::select! {
            biased;
            _ = self.shutdown.cancelled() => None,
            permits = permits => permits,
        };
        let Some((pending, in_flight)) = permits else {
            return false;
        };
        self.tasks.spawn(deliver(
            self.shared.clone(),
            request,
            held,
            in_flight,
            pending,
            self.shutdown.clone(),
        ));
        true
    }

    /// Waits for every request task; on shutdown, stops them (their batches stay
    /// unacknowledged).
    async fn drain(&mut self) {
        loop {
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => {
                    self.tasks.shutdown().await;
                    return;
                }
                joined = self.tasks.join_next() => match joined {
                    Some(joined) => report_task_end(&self.shared.name, joined),
                    None => return,
                },
            }
        }
    }
}

fn report_task_end(sink: &str, joined: Result<(), tokio::task::JoinError>) {
    if let Err(error) = joined {
        if error.is_panic() {
            tracing::error!(sink, %error, "request task panicked; its batches stay unacknowledged");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RecordsBuilder;
    use crate::sinks::splunk_hec::SplunkHecSinkConfig;

    #[tokio::test]
    async fn a_stalled_collector_holds_back_encoding() {
        // A collector that reads the first request and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config: SplunkHecSinkConfig = toml::from_str(&format!(
            r#"
            url = "http://{}"
            token = "unit"
            compression = "none"
            max_in_flight = 1
            max_pending_acks = 1
            request_timeout = "1h"
            batch = {{ max_events = 10 }}
            "#,
            listener.local_addr().unwrap()
        ))
        .unwrap();
        let sink = config.build("hec-unit-stalled").unwrap();
        let shutdown = CancellationToken::new();
        let mut dispatcher = Dispatcher {
            shared: &sink.shared,
            pending: Arc::new(Semaphore::new(sink.max_pending)),
            tasks: JoinSet::new(),
            shutdown: &shutdown,
        };
        let mut records = RecordsBuilder::new();
        for time in 0..1000 {
            records = records.log(time, None, &[("field", "value")]);
        }
        let (batch, _receiver) = SinkBatch::new("ls", 0, 0, records.build());
        let first_request_arrived = async {
            let (mut connection, _) = listener.accept().await.unwrap();
            let mut head = [0u8; 64];
            tokio::io::AsyncReadExt::read_exact(&mut connection, &mut head)
                .await
                .unwrap();
            connection
        };
        let _connection = tokio::select! {
            _ = encode_and_dispatch(&sink.builder, batch, &mut dispatcher) => {
                panic!("the batch cannot be dispatched while the collector does not answer")
            }
            connection = first_request_arrived => connection,
        };
        // At most one request is in its delivery task and one waits for permits: 98 of the
        // batch's 100 requests (or more) are not encoded yet.
        let unencoded = std::iter::from_fn(|| sink.builder.lock().unwrap().next_full()).count();
        assert!(unencoded >= 98, "only {unencoded} requests left to encode");
        shutdown.cancel();
        dispatcher.drain().await;
    }
}

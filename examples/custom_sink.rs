//! A custom destination written against the public [`Sink`] trait, fed by the consumer-group
//! runtime through the fan-out pipeline, exactly as `siem-forwarder run` wires the built-in
//! sinks.
//!
//! It starts the embedded log service on a loopback port, writes logs with two topics into a
//! 4-shard logstore, then consumes them as consumer group `custom-sink-example`. The sink
//! counts logs per topic and acknowledges each batch only after it has "delivered" it (here:
//! added it to its totals). Once every written log was counted it asks the consumer to shut
//! down, which drains, commits the final checkpoints and releases the shards. The example then
//! checks that every shard's checkpoint reached the end of the shard.
//!
//!     cargo run --example custom_sink
//!
//! Set `RUST_LOG=info` to see the consumer group at work on stderr.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{ensure, Context};
use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use siem_forwarder::common::time::unix_now;
use siem_forwarder::common::units::HumanDuration;
use siem_forwarder::common::Secret;
use siem_forwarder::consumer::{self, ConsumerConfig, StartPosition};
use siem_forwarder::local_server::{
    LocalServer, LocalServerConfig, LogstoreSpec, DEFAULT_MAX_BODY_BYTES,
};
use siem_forwarder::pipeline::{fan_out, SINK_QUEUE};
use siem_forwarder::producer::generator::AuditLogGenerator;
use siem_forwarder::sinks::{next_batch, Sink, SinkBatch, SinkError};
use siem_forwarder::source::api::cursor::CursorFrom;
use siem_forwarder::source::api::put_logs::PutTarget;
use siem_forwarder::source::protobuf::{Log, LogGroup};
use siem_forwarder::source::{cursor, Client, ClientConfig};

const PROJECT: &str = "example-project";
const LOGSTORE: &str = "audit";
const SHARDS: u32 = 4;
const GROUP: &str = "custom-sink-example";
const ACCESS_KEY_ID: &str = "example-id";
const ACCESS_KEY_SECRET: &str = "example-secret";

/// Generated ActionTrail-like audit logs written per shard.
const AUDIT_LOGS_PER_SHARD: usize = 500;
/// Hand-built application logs written per shard, under a second topic.
const APP_LOGS_PER_SHARD: usize = 25;

/// Counts logs per topic. A real sink would send each batch to its destination in `run` and
/// acknowledge it once the destination confirmed it.
struct TopicCounter {
    name: String,
    /// Logs after which the consumer is asked to stop.
    expected: usize,
    /// Cancelled once `expected` logs were counted: stops the consumer.
    all_counted: CancellationToken,
}

#[async_trait]
impl Sink for TopicCounter {
    fn name(&self) -> &str {
        &self.name
    }

    // No `healthcheck`: the default passes, as counting in memory cannot fail. A network sink
    // would check there that its destination is reachable and accepts its credentials.

    async fn run(
        self: Box<Self>,
        mut input: mpsc::Receiver<SinkBatch>,
        shutdown: CancellationToken,
    ) -> Result<(), SinkError> {
        let mut per_topic: BTreeMap<String, usize> = BTreeMap::new();
        let mut total = 0;
        // Batches not acknowledged when shutdown comes are dropped: their shard keeps its
        // checkpoint before them and the next owner gets them again.
        while let Some(SinkBatch { batch, ack }) = next_batch(&mut input, &shutdown).await {
            // "Deliver" the batch. Records are views into the pulled buffer: no copy is made
            // until a field is turned into an owned value.
            let mut in_batch: BTreeMap<&str, usize> = BTreeMap::new();
            for record in batch.records.iter() {
                *in_batch.entry(record.topic).or_default() += 1;
            }
            for (topic, count) in &in_batch {
                *per_topic.entry((*topic).to_owned()).or_default() += count;
            }
            total += batch.records.len();
            println!(
                "{}: delivered {} logs from shard {} ({in_batch:?})",
                self.name,
                batch.records.len(),
                batch.shard
            );
            // Only now may the shard's checkpoint move past this batch.
            ack.delivered();
            if total >= self.expected && !self.all_counted.is_cancelled() {
                println!("{}: all {total} logs counted, stopping", self.name);
                self.all_counted.cancel();
            }
        }
        println!("{}: totals per topic {per_topic:?}", self.name);
        Ok(())
    }
}

/// Writes the example's logs into every shard and returns how many were written.
async fn fill(client: &Client) -> anyhow::Result<usize> {
    let now = unix_now();
    let mut generator = AuditLogGenerator::new(42);
    let mut written = 0;
    for shard in client.list_shards(LOGSTORE).await? {
        let target = PutTarget::HashKey(&shard.inclusive_begin_key);
        let audit = generator.group(AUDIT_LOGS_PER_SHARD, now);
        client.put_logs(LOGSTORE, target, &audit).await?;
        let app = LogGroup {
            logs: (0..APP_LOGS_PER_SHARD)
                .map(|index| Log {
                    time: now,
                    time_ns: None,
                    contents: vec![
                        ("user".to_owned(), format!("user{index}")),
                        ("result".to_owned(), "success".to_owned()),
                    ],
                })
                .collect(),
            topic: Some("app_login".to_owned()),
            source: Some("10.0.0.7".to_owned()),
            tags: Vec::new(),
        };
        client.put_logs(LOGSTORE, target, &app).await?;
        written += audit.logs.len() + app.logs.len();
    }
    Ok(written)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Consumer-group events on stderr, filtered by RUST_LOG (quiet by default).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();

    // The embedded log service, in a temporary directory, on a free loopback port.
    let data_dir = tempfile::tempdir()?;
    let server = LocalServer::open(LocalServerConfig {
        data_dir: data_dir.path().to_owned(),
        access_key_id: ACCESS_KEY_ID.to_owned(),
        access_key_secret: Secret::new(ACCESS_KEY_SECRET),
        region: siem_forwarder::local_server::DEFAULT_REGION.to_owned(),
        max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        logstores: vec![LogstoreSpec {
            project: PROJECT.to_owned(),
            logstore: LOGSTORE.to_owned(),
            shards: SHARDS,
        }],
    })?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let server_stop = CancellationToken::new();
    let server_task = tokio::spawn(server.run(listener, server_stop.clone().cancelled_owned()));

    let client = Client::new(ClientConfig::new(
        &endpoint,
        PROJECT,
        ACCESS_KEY_ID,
        Secret::new(ACCESS_KEY_SECRET),
    ))?;
    let expected = fill(&client)
        .await
        .context("cannot write the example logs")?;
    println!("wrote {expected} logs to {SHARDS} shards of {LOGSTORE} at {endpoint}");

    // consumer -> fan_out -> sink, the way `siem-forwarder run` wires it.
    let shutdown = CancellationToken::new();
    let sink: Box<dyn Sink> = Box::new(TopicCounter {
        name: "topic-counter".to_owned(),
        expected,
        all_counted: shutdown.clone(),
    });
    sink.healthcheck().await?;
    let (sink_tx, sink_rx) = mpsc::channel(SINK_QUEUE);
    // The sink's stop token is never cancelled here: the consumer drains first, then the
    // pipeline closes the sink's input, which ends its `run`.
    let sink_task = tokio::spawn(sink.run(sink_rx, CancellationToken::new()));
    let (batches_tx, batches_rx) = mpsc::channel(16);
    let pipeline = tokio::spawn(fan_out(batches_rx, vec![sink_tx], None));

    let mut config = ConsumerConfig::new(GROUP);
    config.start = StartPosition::Begin;
    // Short intervals so the example finishes in seconds; production keeps the defaults.
    config.heartbeat_interval = HumanDuration(Duration::from_secs(1));
    config.checkpoint_interval = HumanDuration(Duration::from_secs(1));
    config.fetch_interval = HumanDuration(Duration::from_millis(200));
    // Returns once shut down: every shard drained, committed its checkpoint and was released.
    let logstores = [LOGSTORE.to_owned()];
    let consuming = consumer::run(
        client.clone(),
        &logstores,
        config,
        batches_tx,
        // Shard releases, for sinks that hold batches on purpose; this one holds none.
        tokio::sync::broadcast::channel(1).0,
        shutdown.clone(),
    );
    tokio::time::timeout(Duration::from_secs(60), consuming)
        .await
        .context("the consumer did not finish within 60 s")??;
    pipeline.await?;
    sink_task.await??;

    // At-least-once made visible: each shard's committed checkpoint is its end cursor.
    for shard in client.list_shards(LOGSTORE).await? {
        let end = client
            .get_cursor(LOGSTORE, shard.shard_id, CursorFrom::End)
            .await?;
        let committed = client
            .get_checkpoint(LOGSTORE, GROUP, shard.shard_id)
            .await?
            .map(|checkpoint| checkpoint.checkpoint)
            .unwrap_or_default();
        println!(
            "shard {}: checkpoint at log group {} of {}",
            shard.shard_id,
            cursor::decode(&committed).unwrap_or(-1),
            cursor::decode(&end)?,
        );
        ensure!(
            committed == end,
            "shard {} was not committed to its end",
            shard.shard_id
        );
    }

    server_stop.cancel();
    server_task.await??;
    Ok(())
}

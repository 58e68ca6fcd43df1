//! The Splunk HEC sink against a Splunk-like collector (`support/hec_server.rs`), through the
//! public API: config parsed from TOML, `build`, `run` on a task, batches with ack receivers.

#[path = "support/hec_server.rs"]
mod hec_server;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use hec_server::{HecServer, HecServerOptions, IndexedEvent};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde_json::json;
use siem_forwarder::model::{AckReceiver, DeliveryStatus, RecordsBuilder};
use siem_forwarder::sinks::splunk_hec::SplunkHecSinkConfig;
use siem_forwarder::sinks::{Sink, SinkBatch, SinkError};
use siem_forwarder::telemetry::metrics::SinkLabels;
use siem_forwarder::telemetry::{health, metrics, HealthState};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const BASE_TIME: u32 = 1_700_000_000;
const AUDIT_TOPIC: &str = "actiontrail_audit_event";

/// Test settings: short timers so that retries, pauses and acks happen within seconds. Keys
/// in `extra` replace the defaults.
fn config(server: &HecServer, extra: &str) -> SplunkHecSinkConfig {
    let base = format!(
        r#"
        url = "{url}/services/collector"
        token = "{token}"
        index = "alicloud"
        sourcetype = "alicloud:actiontrail"
        compression = "gzip"
        batch = {{ max_events = 500, max_bytes = "256KiB", timeout = "50ms" }}
        embed_json = {{ {AUDIT_TOPIC} = ["event"] }}
        indexed_fields = ["__tag__:region", "action"]
        retry_initial_backoff = "50ms"
        retry_max_backoff = "1s"
        pause_retry_interval = "200ms"
        ack_poll_interval = "50ms"
        request_timeout = "5s"
        "#,
        url = server.url(),
        token = server.token(),
    );
    let mut table: toml::Table = base.parse().expect("base config");
    table.extend(extra.parse::<toml::Table>().expect("extra config"));
    toml::Value::Table(table)
        .try_into()
        .expect("test config parses")
}

/// The `time` text expected for log number `n`: nanoseconds `n * 1000 + 7`, so the
/// microseconds are `n` and the 7 ns must be cut, not rounded.
fn expected_time(n: u32) -> String {
    if n == 0 {
        (BASE_TIME).to_string()
    } else {
        format!("{}.{:06}", BASE_TIME + n, n)
    }
}

/// A batch of realistic audit logs with ids `first..first + count` from `shard`.
fn audit_batch(
    shard: u32,
    sequence: u64,
    first: u32,
    count: u32,
    poison: Option<u32>,
) -> (SinkBatch, AckReceiver) {
    let source = format!("10.0.0.{shard}");
    let mut builder =
        RecordsBuilder::new().group(AUDIT_TOPIC, &source, &[("region", "cn-hangzhou")]);
    for n in first..first + count {
        let id = n.to_string();
        let marker = if poison == Some(n) { "POISON" } else { "ok" };
        let event = format!(
            r#"{{"eventName":"ConsoleSignin","eventId":"{id}","userIdentity":{{"type":"ram-user","userName":"alice"}},"sourceIpAddress":"203.0.113.{shard}","note":"{marker}"}}"#
        );
        builder = builder.log(
            BASE_TIME + n,
            Some(n * 1000 + 7),
            &[
                ("id", id.as_str()),
                ("action", "login"),
                ("event", event.as_str()),
            ],
        );
    }
    SinkBatch::new("actiontrail", shard, sequence, builder.build())
}

struct Running {
    channel: String,
    input: Option<mpsc::Sender<SinkBatch>>,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), SinkError>>,
}

impl Running {
    fn start(config: &SplunkHecSinkConfig, name: &str) -> Self {
        let sink = config.build(name).expect("sink builds");
        let channel = sink.channel().to_owned();
        let (input, receiver) = mpsc::channel(64);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(Box::new(sink).run(receiver, shutdown.clone()));
        Self {
            channel,
            input: Some(input),
            shutdown,
            task,
        }
    }

    async fn send(&self, batch: SinkBatch) {
        self.input
            .as_ref()
            .expect("input open")
            .send(batch)
            .await
            .expect("sink running");
    }

    /// Sends every batch, returning their ack receivers in order.
    async fn send_all(
        &self,
        batches: impl IntoIterator<Item = (SinkBatch, AckReceiver)>,
    ) -> Vec<AckReceiver> {
        let mut receivers = Vec::new();
        for (batch, receiver) in batches {
            self.send(batch).await;
            receivers.push(receiver);
        }
        receivers
    }

    /// Batches sent but not yet taken by the sink.
    fn queued(&self) -> usize {
        let input = self.input.as_ref().expect("input open");
        input.max_capacity() - input.capacity()
    }

    /// Closes the input and waits for the sink to hand everything over.
    async fn finish(mut self) {
        self.input = None;
        let result = tokio::time::timeout(Duration::from_secs(30), &mut self.task)
            .await
            .expect("sink stops after its input closes");
        result.expect("sink task").expect("sink run");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A collector with indexer acknowledgement: it hands out `ackId`s.
async fn ack_server() -> HecServer {
    HecServer::start(HecServerOptions {
        ack: true,
        ..HecServerOptions::default()
    })
    .await
}

/// The health check of a sink built from `config` as `name`.
async fn healthcheck(config: &SplunkHecSinkConfig, name: &str) -> Result<(), SinkError> {
    config.build(name).expect("sink builds").healthcheck().await
}

/// A dead-letter file in a directory of its own.
struct DeadLetters {
    path: std::path::PathBuf,
    _directory: tempfile::TempDir,
}

impl DeadLetters {
    fn new() -> Self {
        let directory = tempfile::tempdir().unwrap();
        Self {
            path: directory.path().join("dead.jsonl"),
            _directory: directory,
        }
    }

    /// The sink setting that writes to this file.
    fn setting(&self) -> String {
        format!("dead_letter_path = {:?}", self.path.display().to_string())
    }

    /// The letters written so far.
    fn read(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.path)
            .expect("dead-letter file")
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON letter"))
            .collect()
    }
}

/// Polls `condition` until it holds, failing the test after `limit`.
async fn eventually(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn all_delivered(receivers: Vec<AckReceiver>, limit: Duration) {
    let outcomes = tokio::time::timeout(limit, futures::future::join_all(receivers))
        .await
        .expect("every batch settles in time");
    for outcome in outcomes {
        assert_eq!(outcome, DeliveryStatus::Delivered);
    }
}

fn none_settled(receivers: &mut [AckReceiver]) -> bool {
    receivers
        .iter_mut()
        .all(|receiver| receiver.try_outcome().is_none())
}

/// Events by id, failing on a duplicate.
fn by_id(events: &[IndexedEvent]) -> BTreeMap<u32, &IndexedEvent> {
    let mut map = BTreeMap::new();
    for event in events {
        let id: u32 = event.value["event"]["id"]
            .as_str()
            .expect("id field")
            .parse()
            .expect("numeric id");
        assert!(map.insert(id, event).is_none(), "event {id} indexed twice");
    }
    map
}

/// Acknowledgement ids the server answered `false` so far.
fn unreleased_acks(server: &HecServer) -> u64 {
    server.count(|c| &c.ack_ids_unreleased)
}

fn counter(family: &Family<SinkLabels, Counter>, name: &str) -> u64 {
    family.get_or_create(&SinkLabels::new(name)).get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_run_indexes_20000_logs_exactly_once_with_exact_time_and_fields() {
    let server = HecServer::start(HecServerOptions::default()).await;
    let config = config(&server, "");
    let running = Running::start(&config, "hec-clean");
    // Batches of 400 in requests of at most 500: most requests carry parts of two batches
    // from different shards.
    let receivers = running
        .send_all(
            (0..50u32)
                .map(|index| audit_batch(index % 4, u64::from(index / 4), index * 400, 400, None)),
        )
        .await;
    all_delivered(receivers, Duration::from_secs(60)).await;
    let sink_channel = running.channel.clone();
    running.finish().await;

    let events = server.events();
    assert_eq!(events.len(), 20_000);
    let indexed = by_id(&events);
    assert_eq!(indexed.len(), 20_000);
    for (&n, event) in &indexed {
        let time_key = format!("{{\"time\":{},", expected_time(n));
        assert!(event.raw.starts_with(&time_key), "{n}: {}", event.raw);
        let shard = (n / 400) % 4;
        let expected = [
            ("/index", json!("alicloud")),
            ("/sourcetype", json!("alicloud:actiontrail")),
            ("/host", json!(format!("10.0.0.{shard}"))),
            ("/fields/__tag__:region", json!("cn-hangzhou")),
            ("/fields/action", json!("login")),
            ("/event/__time__", json!(BASE_TIME + n)),
            ("/event/__topic__", json!(AUDIT_TOPIC)),
            // `event` was embedded as an object, not sent as a string.
            ("/event/event/eventId", json!(n.to_string())),
            ("/event/event/userIdentity/userName", json!("alice")),
        ];
        for (pointer, value) in expected {
            assert_eq!(event.value.pointer(pointer), Some(&value), "{n}: {pointer}");
        }
    }
    let requests = server.count(|c| &c.data_requests);
    assert!(requests >= 40, "batched into requests of at most 500");
    assert_eq!(server.count(|c| &c.gzip_requests), requests);
    let channels = server.channels_seen();
    assert_eq!(
        channels.into_iter().collect::<Vec<_>>(),
        [sink_channel],
        "the sink's channel GUID on every request"
    );
    assert_eq!(
        counter(&metrics().sink_delivered_events, "hec-clean"),
        20_000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_distant_collector_gets_more_requests_in_flight_than_the_start() {
    // 300 ms away: the adaptive concurrency grows past its start (4) while the latency holds;
    // a fixed concurrency stays at its number.
    let server = HecServer::start(HecServerOptions::default()).await;
    server.set_latency(Duration::from_millis(300));
    let batches = || {
        (0..40u32).map(|index| audit_batch(index % 8, u64::from(index / 8), index * 500, 500, None))
    };
    let small_requests = "batch = { max_events = 50, max_bytes = \"256KiB\", timeout = \"50ms\" }";
    let running = Running::start(&config(&server, small_requests), "hec-adaptive");
    let receivers = running.send_all(batches()).await;
    all_delivered(receivers, Duration::from_secs(120)).await;
    running.finish().await;
    assert_eq!(server.event_count(), 20_000);
    let most = server.count(|c| &c.most_data_requests_open);
    assert!(most > 8, "at most {most} requests in flight at once");
    assert!(most <= 32, "{most} requests in flight, above max_in_flight");

    let fixed = HecServer::start(HecServerOptions::default()).await;
    fixed.set_latency(Duration::from_millis(300));
    let extra = format!("{small_requests}\nrequest = {{ concurrency = 3 }}");
    let running = Running::start(&config(&fixed, &extra), "hec-fixed");
    let receivers = running.send_all(batches().take(4)).await;
    all_delivered(receivers, Duration::from_secs(120)).await;
    running.finish().await;
    assert_eq!(fixed.count(|c| &c.most_data_requests_open), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_collector_for_20_seconds_loses_nothing_and_acks_wait() {
    let server = HecServer::start(HecServerOptions::default()).await;
    server.set_busy(true);
    let running = Running::start(&config(&server, ""), "hec-busy");
    let mut receivers = running
        .send_all(
            (0..10u32)
                .map(|index| audit_batch(index % 2, u64::from(index), index * 100, 100, None)),
        )
        .await;
    let busy_until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < busy_until {
        assert!(none_settled(&mut receivers), "no ack while busy");
        assert_eq!(server.event_count(), 0);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let busy_answers = server.count(|c| &c.busy_answers);
    assert!(busy_answers >= 10, "the sink kept retrying: {busy_answers}");
    server.set_busy(false);
    all_delivered(receivers, Duration::from_secs(20)).await;
    running.finish().await;
    let events = server.events();
    assert_eq!(by_id(&events).len(), 1_000);
    assert!(counter(&metrics().sink_retries, "hec-busy") >= busy_answers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_event_is_dead_lettered_and_the_others_indexed_once() {
    let server = HecServer::start(HecServerOptions::default()).await;
    server.set_reject_marker(Some("POISON"));
    let dead_letters = DeadLetters::new();
    let config = config(&server, &dead_letters.setting());
    let running = Running::start(&config, "hec-bad-event");
    let (first, first_ack) = audit_batch(0, 0, 0, 50, Some(17));
    let (second, second_ack) = audit_batch(1, 0, 50, 50, None);
    running.send(first).await;
    running.send(second).await;
    all_delivered(vec![first_ack, second_ack], Duration::from_secs(20)).await;
    running.finish().await;

    let events = server.events();
    let indexed = by_id(&events);
    let expected: BTreeSet<u32> = (0..100).filter(|&n| n != 17).collect();
    assert_eq!(indexed.keys().copied().collect::<BTreeSet<_>>(), expected);
    let letters = dead_letters.read();
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter["code"], 6);
    assert!(letter["reason"]
        .as_str()
        .unwrap()
        .contains("Invalid data format"));
    assert_eq!(letter["shard"], "actiontrail/0");
    assert_eq!(letter["sink"], "hec-bad-event");
    assert_eq!(letter["event"]["event"]["id"], "17");
    assert!(letter["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        counter(&metrics().sink_dead_lettered_events, "hec-bad-event"),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_token_pauses_the_sink_until_the_token_is_accepted_again() {
    let server = HecServer::start(HecServerOptions::default()).await;
    server.set_token_accepted(false);
    let config = config(&server, "");
    let refused = healthcheck(&config, "hec-token-probe")
        .await
        .expect_err("the health check reports the refused token");
    assert!(matches!(refused, SinkError::Rejected(_)), "{refused}");
    let running = Running::start(&config, "hec-token");
    let mut receivers = running
        .send_all((0..3u32).map(|index| audit_batch(index, 0, index * 100, 100, None)))
        .await;
    eventually("unhealthy sink", Duration::from_secs(10), || {
        matches!(health().get("sink:hec-token"), Some(HealthState::Unhealthy(reason)) if reason.contains("Invalid token"))
    })
    .await;
    eventually("several paused attempts", Duration::from_secs(10), || {
        server.count(|c| &c.token_refusals) >= 6
    })
    .await;
    assert!(none_settled(&mut receivers), "nothing settled while paused");
    assert_eq!(server.event_count(), 0);

    server.set_token_accepted(true);
    all_delivered(receivers, Duration::from_secs(10)).await;
    assert_eq!(health().get("sink:hec-token"), Some(HealthState::Healthy));
    running.finish().await;
    assert_eq!(by_id(&server.events()).len(), 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withheld_ack_is_resent_after_the_timeout_and_settles_only_after_the_ack() {
    let server = ack_server().await;
    server.set_withhold_acks(true);
    let config = config(&server, "ack = true\nack_timeout = \"500ms\"");
    let running = Running::start(&config, "hec-ack");
    let (batch, mut receiver) = audit_batch(0, 0, 0, 10, None);
    running.send(batch).await;
    let issued = || server.count(|c| &c.ack_ids_issued);
    eventually(
        "a resend after the ack timeout",
        Duration::from_secs(10),
        || issued() >= 2,
    )
    .await;
    assert_eq!(
        receiver.try_outcome(),
        None,
        "no ack settled before the indexer ack"
    );
    assert!(server.event_count() >= 20, "the request was sent again");

    server.set_withhold_acks(false);
    all_delivered(vec![receiver], Duration::from_secs(10)).await;
    assert!(server.count(|c| &c.ack_ids_released) >= 1);
    running.finish().await;
    let events = server.events();
    let ids: BTreeSet<&str> = events
        .iter()
        .map(|event| event.value["event"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 10);
    let channels = server.channels_seen();
    assert_eq!(channels.len(), 1, "data and ack requests share one channel");
    assert!(events
        .iter()
        .all(|event| event.channel.as_ref() == channels.first()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_requests_are_split_and_oversized_events_dead_lettered() {
    let server = HecServer::start(HecServerOptions {
        max_content_length: 4_000,
        ..HecServerOptions::default()
    })
    .await;
    let dead_letters = DeadLetters::new();
    let config = config(
        &server,
        &format!("{}\nmax_event_bytes = 8000", dead_letters.setting()),
    );
    let running = Running::start(&config, "hec-413");
    let (batch, receiver) = audit_batch(0, 0, 0, 40, None);
    running.send(batch).await;
    let mut receivers = vec![receiver];
    // One event over the collector's limit (413 when alone), one over max_event_bytes (never
    // sent).
    for (shard, size) in [(8, 5_000), (9, 10_000)] {
        let blob = "x".repeat(size);
        let records = RecordsBuilder::new()
            .group("other", "", &[])
            .log(BASE_TIME, None, &[("id", "1000"), ("blob", blob.as_str())])
            .build();
        let (batch, receiver) = SinkBatch::new("actiontrail", shard, 0, records);
        running.send(batch).await;
        receivers.push(receiver);
    }
    all_delivered(receivers, Duration::from_secs(20)).await;
    running.finish().await;
    let events = server.events();
    assert_eq!(
        by_id(&events).keys().copied().collect::<Vec<_>>(),
        (0..40).collect::<Vec<_>>()
    );
    let too_large = server.count(|c| &c.too_large);
    assert!(too_large >= 2, "split after 413: {too_large}");
    let mut letters = dead_letters.read();
    letters.sort_by_key(|letter| letter["shard"].as_str().unwrap_or_default().to_owned());
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0]["shard"], "actiontrail/8");
    assert_eq!(letters[0]["code"], 413);
    assert_eq!(letters[1]["shard"], "actiontrail/9");
    assert!(letters[1]["reason"]
        .as_str()
        .unwrap()
        .contains("exceeds max_event_bytes"));
    assert_eq!(
        letters[1]["event"]["event"]["blob"].as_str().map(str::len),
        Some(10_000)
    );
}

fn certificate_authority(name: &str) -> (rcgen::CertifiedIssuer<'static, rcgen::KeyPair>, String) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let issuer =
        rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap();
    let pem = issuer.pem();
    (issuer, pem)
}

/// A server certificate for `localhost` and `hec.internal` signed by `issuer`; with
/// `client_ca`, clients must present a certificate signed by it.
fn tls_server_config(
    issuer: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    client_ca: Option<&rcgen::CertifiedIssuer<'static, rcgen::KeyPair>>,
) -> Arc<rustls::ServerConfig> {
    let key = rcgen::KeyPair::generate().unwrap();
    let certificate =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "hec.internal".to_owned()])
            .unwrap()
            .signed_by(&key, issuer)
            .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(client_ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(client_ca.der().clone()).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(
            vec![certificate.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    Arc::new(config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_ca_file_works_and_an_untrusted_certificate_is_refused() {
    let (issuer, ca_pem) = certificate_authority("hec test ca");
    let (_, other_ca_pem) = certificate_authority("somebody else's ca");
    let directory = tempfile::tempdir().unwrap();
    let trusted = directory.path().join("ca.pem");
    let untrusted = directory.path().join("other-ca.pem");
    std::fs::write(&trusted, ca_pem).unwrap();
    std::fs::write(&untrusted, other_ca_pem).unwrap();
    let server = HecServer::start(HecServerOptions {
        tls: Some(tls_server_config(&issuer, None)),
        ..HecServerOptions::default()
    })
    .await;

    let tls_line = |path: &std::path::Path| {
        format!(
            "tls = {{ ca_file = {:?}, verify = true }}",
            path.display().to_string()
        )
    };
    let good = config(&server, &tls_line(&trusted));
    healthcheck(&good, "hec-tls")
        .await
        .expect("trusted certificate passes the health check");
    let running = Running::start(&good, "hec-tls");
    let (batch, receiver) = audit_batch(0, 0, 0, 20, None);
    running.send(batch).await;
    all_delivered(vec![receiver], Duration::from_secs(10)).await;
    running.finish().await;
    assert_eq!(by_id(&server.events()).len(), 20);

    // Connecting by IP address to a certificate issued for a name: `server_name` is the name
    // presented (SNI) and verified.
    let port = server.url().rsplit(':').next().unwrap().to_owned();
    let by_address = config(
        &server,
        &format!(
            "url = \"https://127.0.0.1:{port}\"\ntls = {{ ca_file = {:?}, server_name = \"hec.internal\" }}",
            trusted.display().to_string()
        ),
    );
    healthcheck(&by_address, "hec-tls-sni")
        .await
        .expect("server_name is verified instead of the address");

    // Verification turned off by configuration accepts the certificate whoever signed it.
    healthcheck(
        &config(&server, "tls = { verify = false }"),
        "hec-tls-unverified",
    )
    .await
    .expect("verify = false skips the certificate check");

    let bad = config(&server, &tls_line(&untrusted));
    let error = healthcheck(&bad, "hec-tls-untrusted")
        .await
        .expect_err("untrusted certificate is refused");
    let message = error.to_string();
    assert!(
        message.contains("invalid peer certificate") && message.contains("UnknownIssuer"),
        "{message}"
    );
    assert!(matches!(
        health().get("sink:hec-tls-untrusted"),
        Some(HealthState::Unhealthy(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_endpoint_sends_one_line_per_log_with_static_metadata() {
    let server = HecServer::start(HecServerOptions::default()).await;
    let config = config(
        &server,
        "endpoint = \"raw\"\nindexed_fields = []\ncompression = \"none\"",
    );
    let running = Running::start(&config, "hec-raw");
    let (batch, receiver) = audit_batch(0, 0, 0, 30, None);
    running.send(batch).await;
    all_delivered(vec![receiver], Duration::from_secs(10)).await;
    running.finish().await;
    let events = server.events();
    assert_eq!(events.len(), 30);
    assert_eq!(events[3].value["id"], "3");
    assert!(events[3].value["event"].is_object());
    assert_eq!(server.count(|c| &c.gzip_requests), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_leaves_unconfirmed_batches_unacknowledged() {
    let server = HecServer::start(HecServerOptions::default()).await;
    server.set_busy(true);
    let running = Running::start(&config(&server, ""), "hec-shutdown");
    let (batch, receiver) = audit_batch(0, 0, 0, 10, None);
    running.send(batch).await;
    eventually("a busy answer", Duration::from_secs(10), || {
        server.count(|c| &c.busy_answers) >= 1
    })
    .await;
    running.shutdown.cancel();
    let outcome = tokio::time::timeout(Duration::from_secs(5), receiver)
        .await
        .expect("settles at shutdown");
    assert!(matches!(outcome, DeliveryStatus::Failed(_)), "{outcome:?}");
    assert_eq!(server.event_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_ids_are_awaited_even_when_ack_is_not_configured() {
    let server = ack_server().await;
    server.set_withhold_acks(true);
    let running = Running::start(&config(&server, "ack = false"), "hec-ack-detect");
    let (batch, mut receiver) = audit_batch(0, 0, 0, 10, None);
    running.send(batch).await;
    eventually("the data request", Duration::from_secs(10), || {
        server.event_count() == 10
    })
    .await;
    // The sink asked for the acknowledgement and was told "not yet" three times.
    eventually(
        "three unanswered ack queries",
        Duration::from_secs(10),
        || unreleased_acks(&server) >= 3,
    )
    .await;
    assert_eq!(
        receiver.try_outcome(),
        None,
        "waits for the ackId it was given"
    );
    server.set_withhold_acks(false);
    all_delivered(vec![receiver], Duration::from_secs(10)).await;
    running.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_acks_are_bounded_and_hold_back_further_requests() {
    let server = ack_server().await;
    server.set_withhold_acks(true);
    let config = config(
        &server,
        "ack = true\nmax_pending_acks = 1\nmax_in_flight = 1\nbatch = { max_events = 10 }",
    );
    let running = Running::start(&config, "hec-ack-bound");
    let mut receivers = running
        .send_all((0..3u32).map(|index| audit_batch(0, u64::from(index), index * 10, 10, None)))
        .await;
    let requests = || server.count(|c| &c.data_requests);
    eventually("the first request", Duration::from_secs(10), || {
        requests() == 1
    })
    .await;
    // The sink took the second batch (the third waits in the input), and the first request's
    // acknowledgement was queried three times since: the second request is being held back.
    eventually(
        "the second batch taken and three unanswered ack queries",
        Duration::from_secs(10),
        || running.queued() == 1 && unreleased_acks(&server) >= 3,
    )
    .await;
    assert_eq!(requests(), 1, "no second request while one awaits its ack");
    assert!(none_settled(&mut receivers));
    server.set_withhold_acks(false);
    all_delivered(receivers, Duration::from_secs(10)).await;
    running.finish().await;
    assert_eq!(by_id(&server.events()).len(), 30);
    assert_eq!(requests(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_nearly_full_answers_count_as_success() {
    let server = HecServer::start(HecServerOptions::default()).await;
    server.set_nearly_full(true);
    let config = config(&server, "batch = { max_events = 10 }");
    let running = Running::start(&config, "hec-nearly-full");
    let receivers = running
        .send_all((0..5u32).map(|index| audit_batch(0, u64::from(index), index * 10, 10, None)))
        .await;
    all_delivered(receivers, Duration::from_secs(10)).await;
    running.finish().await;
    assert_eq!(by_id(&server.events()).len(), 50);
    assert_eq!(
        counter(&metrics().sink_failed_requests, "hec-nearly-full"),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resend_after_an_ack_timeout_that_meets_a_data_error_is_split() {
    let server = ack_server().await;
    server.set_withhold_acks(true);
    let dead_letters = DeadLetters::new();
    let config = config(
        &server,
        &format!(
            "ack = true\nack_timeout = \"500ms\"\n{}",
            dead_letters.setting()
        ),
    );
    let running = Running::start(&config, "hec-ack-resend-split");
    let (batch, mut receiver) = audit_batch(0, 0, 0, 10, Some(5));
    running.send(batch).await;
    let issued = || server.count(|c| &c.ack_ids_issued);
    // At least one: the resend 500 ms later may already be in when this test gets to run.
    eventually("the first request", Duration::from_secs(10), || {
        issued() >= 1
    })
    .await;
    // A resend (after the ack timeout, from the kept gzip payload) meets a rejection.
    server.set_reject_marker(Some("POISON"));
    eventually("the rejected resend", Duration::from_secs(10), || {
        server.count(|c| &c.data_errors) >= 1
    })
    .await;
    eventually("the rest sent again", Duration::from_secs(10), || {
        issued() >= 2
    })
    .await;
    assert_eq!(
        receiver.try_outcome(),
        None,
        "the rest still awaits its ack"
    );
    server.set_withhold_acks(false);
    all_delivered(vec![receiver], Duration::from_secs(10)).await;
    running.finish().await;
    let letters = dead_letters.read();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["event"]["event"]["id"], "5");
    let ids: BTreeSet<String> = server
        .events()
        .iter()
        .map(|event| event.value["event"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 10, "every event was indexed at least once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_client_certificate_when_the_collector_requires_one() {
    let (issuer, ca_pem) = certificate_authority("hec server ca");
    let (client_issuer, _) = certificate_authority("hec client ca");
    let server = HecServer::start(HecServerOptions {
        tls: Some(tls_server_config(&issuer, Some(&client_issuer))),
        ..HecServerOptions::default()
    })
    .await;
    let directory = tempfile::tempdir().unwrap();
    let ca_file = directory.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let client_key = rcgen::KeyPair::generate().unwrap();
    let client_certificate = rcgen::CertificateParams::new(vec!["forwarder".to_owned()])
        .unwrap()
        .signed_by(&client_key, &client_issuer)
        .unwrap();
    let cert_file = directory.path().join("client.pem");
    let key_file = directory.path().join("client.key");
    std::fs::write(&cert_file, client_certificate.pem()).unwrap();
    std::fs::write(&key_file, client_key.serialize_pem()).unwrap();

    let without = config(
        &server,
        &format!("tls = {{ ca_file = {:?} }}", ca_file.display().to_string()),
    );
    assert!(
        healthcheck(&without, "hec-mtls-missing").await.is_err(),
        "the collector refuses a client without a certificate"
    );
    let with = config(
        &server,
        &format!(
            "tls = {{ ca_file = {:?}, cert_file = {:?}, key_file = {:?} }}",
            ca_file.display().to_string(),
            cert_file.display().to_string(),
            key_file.display().to_string()
        ),
    );
    let running = Running::start(&with, "hec-mtls");
    let (batch, receiver) = audit_batch(0, 0, 0, 20, None);
    running.send(batch).await;
    all_delivered(vec![receiver], Duration::from_secs(10)).await;
    running.finish().await;
    assert_eq!(by_id(&server.events()).len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_endpoint_404_from_a_load_balancer_never_confirms_pending_batches() {
    let server = ack_server().await;
    server.set_ack_unavailable(true);
    let running = Running::start(&config(&server, "ack = true"), "hec-ack-404");
    let (batch, mut receiver) = audit_batch(0, 0, 0, 10, None);
    running.send(batch).await;
    let unavailable = || server.count(|c| &c.ack_unavailable_answers);
    eventually(
        "three 404 answers to ack queries",
        Duration::from_secs(10),
        || unavailable() >= 3,
    )
    .await;
    assert_eq!(
        receiver.try_outcome(),
        None,
        "a 404 without a HEC code says nothing about indexing"
    );
    assert!(
        matches!(health().get("sink:hec-ack-404"), Some(HealthState::Unhealthy(reason)) if reason.contains("acknowledgement") && reason.contains("404")),
        "{:?}",
        health().get("sink:hec-ack-404")
    );
    assert!(counter(&metrics().sink_failed_requests, "hec-ack-404") >= 3);

    server.set_ack_unavailable(false);
    all_delivered(vec![receiver], Duration::from_secs(10)).await;
    assert!(
        server.count(|c| &c.ack_ids_released) >= 1,
        "confirmed by the indexer acknowledgement"
    );
    eventually("healthy again", Duration::from_secs(10), || {
        health().get("sink:hec-ack-404") == Some(HealthState::Healthy)
    })
    .await;
    running.finish().await;
    assert_eq!(by_id(&server.events()).len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_disabled_releases_waiting_batches_and_later_ack_ids_are_awaited_again() {
    let server = ack_server().await;
    server.set_withhold_acks(true);
    let running = Running::start(&config(&server, "ack = true"), "hec-ack-disabled");
    let issued = || server.count(|c| &c.ack_ids_issued);
    let (first, first_ack) = audit_batch(0, 0, 0, 10, None);
    running.send(first).await;
    eventually("the first ackId", Duration::from_secs(10), || issued() >= 1).await;
    // The token's acknowledgement is turned off: code 14 means a 200 was final.
    server.set_ack_disabled(true);
    all_delivered(vec![first_ack], Duration::from_secs(10)).await;

    // And on again: a new ackId is awaited, not taken as final.
    server.set_ack_disabled(false);
    let (second, mut second_ack) = audit_batch(0, 1, 10, 10, None);
    running.send(second).await;
    eventually("the second ackId", Duration::from_secs(10), || {
        issued() >= 2
    })
    .await;
    let before = unreleased_acks(&server);
    eventually(
        "three unanswered ack queries",
        Duration::from_secs(10),
        || unreleased_acks(&server) >= before + 3,
    )
    .await;
    assert_eq!(second_ack.try_outcome(), None, "awaits its acknowledgement");
    server.set_withhold_acks(false);
    all_delivered(vec![second_ack], Duration::from_secs(10)).await;
    running.finish().await;
    assert_eq!(by_id(&server.events()).len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodyless_400_from_a_proxy_pauses_the_sink_and_dead_letters_nothing() {
    let server = HecServer::start(HecServerOptions::default()).await;
    server.set_proxy_bad_request(true);
    let dead_letters = DeadLetters::new();
    let config = config(&server, &dead_letters.setting());
    let running = Running::start(&config, "hec-proxy-400");
    let mut receivers = running
        .send_all((0..2u32).map(|index| audit_batch(index, 0, index * 20, 20, None)))
        .await;
    let rejections = || server.count(|c| &c.proxy_rejections);
    eventually("three proxy rejections", Duration::from_secs(10), || {
        rejections() >= 3
    })
    .await;
    assert!(
        matches!(health().get("sink:hec-proxy-400"), Some(HealthState::Unhealthy(reason)) if reason.contains("paused") && reason.contains("without a HEC code")),
        "{:?}",
        health().get("sink:hec-proxy-400")
    );
    assert!(
        none_settled(&mut receivers),
        "nothing settled while refused"
    );
    assert!(!dead_letters.path.exists(), "nothing dead-lettered");

    server.set_proxy_bad_request(false);
    all_delivered(receivers, Duration::from_secs(10)).await;
    running.finish().await;
    assert_eq!(by_id(&server.events()).len(), 40);
    assert!(!dead_letters.path.exists(), "nothing dead-lettered");
    assert_eq!(
        counter(&metrics().sink_dead_lettered_events, "hec-proxy-400"),
        0
    );
    assert_eq!(
        health().get("sink:hec-proxy-400"),
        Some(HealthState::Healthy)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_waiting_for_a_slot_hold_only_their_compressed_payload() {
    let server = ack_server().await;
    server.set_withhold_acks(true);
    let config = config(
        &server,
        "ack = true\nmax_pending_acks = 4\nmax_in_flight = 4\nbatch = { max_events = 100 }",
    );
    let running = Running::start(&config, "hec-held-bytes");
    let (batch, receiver) = audit_batch(0, 0, 0, 1000, None);
    running.send(batch).await;
    let held = || {
        metrics()
            .sink_request_bytes
            .get_or_create(&SinkLabels::new("hec-held-bytes"))
            .get()
    };
    // Four requests await their acknowledgement and hold every slot; the fifth is encoded and
    // waits for one, the other five are not encoded yet.
    eventually(
        "four requests sent and three unanswered ack queries",
        Duration::from_secs(10),
        || server.count(|c| &c.data_requests) == 4 && unreleased_acks(&server) >= 3,
    )
    .await;
    let five_requests = held();
    server.set_withhold_acks(false);
    all_delivered(vec![receiver], Duration::from_secs(10)).await;
    running.finish().await;
    assert_eq!(by_id(&server.events()).len(), 1000);
    // The ten requests' uncompressed bodies, counted as they were confirmed.
    let one_request = counter(&metrics().sink_delivered_bytes, "hec-held-bytes") / 10;
    assert!(
        five_requests > 0 && five_requests.unsigned_abs() < one_request,
        "five requests held {five_requests} bytes; one uncompressed request is {one_request}"
    );
    assert_eq!(
        held(),
        0,
        "every request's bytes are released once confirmed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_released_once_encoded_while_its_acknowledgement_waits_for_the_collector() {
    let server = ack_server().await;
    server.set_withhold_acks(true);
    let config = config(
        &server,
        "ack = true\nmax_pending_acks = 16\nmax_in_flight = 16\nbatch = { max_events = 100 }",
    );
    let running = Running::start(&config, "hec-released-once-encoded");
    let (mut batch, mut receiver) = audit_batch(0, 0, 0, 1000, None);
    // What the consumer's in-flight budget hangs on a pulled batch: held by the batch's memory.
    let memory: Arc<()> = Arc::new(());
    let held_by_the_batch = Arc::downgrade(&memory);
    Arc::get_mut(&mut batch.batch)
        .expect("the batch is not shared yet")
        .budget = Some(memory);
    running.send(batch).await;
    eventually(
        "all ten requests sent and awaiting their acknowledgement",
        Duration::from_secs(10),
        || server.count(|c| &c.data_requests) == 10,
    )
    .await;
    eventually(
        "the batch's memory released once every log is encoded",
        Duration::from_secs(10),
        || held_by_the_batch.upgrade().is_none(),
    )
    .await;
    assert_eq!(
        receiver.try_outcome(),
        None,
        "the batch is not acknowledged before the collector confirms it"
    );
    server.set_withhold_acks(false);
    all_delivered(vec![receiver], Duration::from_secs(10)).await;
    running.finish().await;
    assert_eq!(by_id(&server.events()).len(), 1000);
}

//! Throughput of the Splunk HEC path on ~1 KB audit logs (nested JSON text in `event`, user,
//! source IP, action, result, region), printed as figures (no assertions):
//!
//! 1. encode + gzip alone, on one thread;
//! 2. the whole sink, gzip on, to an in-process collector that only counts bytes;
//! 3. the same with indexer acknowledgement (the collector hands out `ackId`s and reports them
//!    indexed on the next query).
//!
//! CPU seconds are the whole process's (sink and the counting collector) from
//! `/proc/self/stat`, so "per core" figures are conservative.
//!
//! Run: `cargo bench --bench splunk_hec` (optionally `-- LOGS`, default 200000; add `encode`
//! for part 1 only, e.g. under `valgrind --tool=callgrind` for repeatable instruction counts).

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rand::Rng;
use siem_forwarder::encoding::hec::{HecEncoder, MetaSource};
use siem_forwarder::model::ack::channel;
use siem_forwarder::model::batch::{Batch, ShardKey};
use siem_forwarder::model::{DeliveryStatus, LogRecords, RecordsBuilder};
use siem_forwarder::sinks::splunk_hec::SplunkHecSinkConfig;
use siem_forwarder::sinks::{Sink, SinkBatch};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const LOGS_PER_BATCH: usize = 1_000;
const TOPIC: &str = "actiontrail_audit_event";

fn audit_batches(total: usize) -> Vec<LogRecords> {
    let mut rng = rand::thread_rng();
    let actions = [
        "ConsoleSignin",
        "CreateInstance",
        "DeleteBucket",
        "AttachPolicy",
        "RunCommand",
    ];
    let results = ["success", "failure"];
    let regions = [
        "cn-hangzhou",
        "cn-shanghai",
        "ap-southeast-1",
        "eu-central-1",
    ];
    (0..total.div_ceil(LOGS_PER_BATCH))
        .map(|batch| {
            let region = regions[batch % regions.len()];
            let mut builder =
                RecordsBuilder::new().group(TOPIC, "10.20.30.40", &[("region", region)]);
            for index in 0..LOGS_PER_BATCH.min(total - batch * LOGS_PER_BATCH) {
                let user = format!("user-{:04}", rng.gen_range(0..5_000));
                let ip = format!(
                    "{}.{}.{}.{}",
                    rng.gen_range(1..224),
                    rng.gen_range(0..256),
                    rng.gen_range(0..256),
                    rng.gen_range(1..255)
                );
                let action = actions[rng.gen_range(0..actions.len())];
                let result = results[usize::from(rng.gen_bool(0.1))];
                let request_id = format!("{:032x}", rng.gen::<u128>());
                let event = format!(
                    concat!(
                        r#"{{"eventId":"{request_id}","eventVersion":"1","eventSource":"ecs.aliyuncs.com","#,
                        r#""eventName":"{action}","eventType":"ApiCall","eventTime":"2026-11-22T03:00:{sec:02}Z","#,
                        r#""acsRegion":"{region}","sourceIpAddress":"{ip}","userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36","#,
                        r#""userIdentity":{{"type":"ram-user","principalId":"2{pid:015}","accountId":"1{acct:015}","userName":"{user}","accessKeyId":"LTAI{key:016x}"}},"#,
                        r#""requestParameters":{{"InstanceId":"i-bp{inst:016x}","RegionId":"{region}","ClientToken":"{token:08x}"}},"#,
                        r#""additionalEventData":{{"loginAccount":"{user}@1{acct:015}.onaliyun.com","mfaChecked":"true","callbackUrl":"https://ecs.console.aliyun.com/#/server/region/{region}"}},"#,
                        r#""resourceName":"acs:ecs:{region}:1{acct:015}:instance/i-bp{inst:016x}","#,
                        r#""responseElements":{{"RequestId":"{request_id}"}},"errorCode":"{error}","serviceName":"Ecs","apiVersion":"2014-05-26"}}"#
                    ),
                    request_id = request_id,
                    action = action,
                    sec = index % 60,
                    region = region,
                    ip = ip,
                    pid = rng.gen_range(0..1_000_000_000u64),
                    acct = rng.gen_range(0..1_000_000_000u64),
                    user = user,
                    key = rng.gen::<u64>(),
                    inst = rng.gen::<u64>(),
                    token = rng.gen::<u32>(),
                    error = if result == "success" { "" } else { "Forbidden.RAM" },
                );
                builder = builder.log(
                    1_763_780_400 + index as u32,
                    Some(rng.gen_range(0..1_000_000_000)),
                    &[
                        ("event", event.as_str()),
                        ("user", user.as_str()),
                        ("source_ip", ip.as_str()),
                        ("action", action),
                        ("result", result),
                        ("region", region),
                    ],
                );
            }
            builder.build()
        })
        .collect()
}

fn process_cpu_seconds() -> f64 {
    // Fields 14 and 15 of /proc/self/stat (after the command name) are user and system time in
    // clock ticks; Linux reports them at USER_HZ = 100.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|text| text.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn report(label: &str, raw_bytes: usize, events: usize, wall: Duration, cpu: f64) {
    let mib = raw_bytes as f64 / (1 << 20) as f64;
    println!(
        "{label:<28} {events:>8} logs {mib:>8.1} MiB raw  wall {wall:>6.2}s  {:>7.1} MiB/s  {:>9.0} logs/s  cpu {cpu:>6.2}s  {:>7.1} MiB/s per core",
        mib / wall.as_secs_f64(),
        events as f64 / wall.as_secs_f64(),
        mib / cpu.max(0.01),
        wall = wall.as_secs_f64(),
    );
}

fn encoder() -> HecEncoder {
    let mut encoder = HecEncoder::default();
    encoder.metadata.host = MetaSource {
        field: Some("__source__".into()),
        fallback: None,
    };
    encoder.metadata.index.fallback = Some("alicloud".into());
    encoder.metadata.sourcetype.fallback = Some("alicloud:actiontrail".into());
    encoder.indexed_fields = vec!["__tag__:region".into(), "action".into()];
    encoder
        .embed_json
        .insert(TOPIC.into(), vec!["event".into()]);
    encoder
}

fn bench_encode(batches: &[LogRecords]) {
    let encoder = encoder();
    let raw: usize = batches.iter().map(LogRecords::buffer_len).sum();
    let events: usize = batches.iter().map(LogRecords::len).sum();
    let cpu_before = process_cpu_seconds();
    let started = Instant::now();
    let mut body = Vec::with_capacity(2 << 20);
    let mut compressed_total = 0;
    let mut encoded_total = 0;
    for records in batches {
        body.clear();
        for record in records.iter() {
            encoder.encode_event(&record, &mut body);
        }
        encoded_total += body.len();
        let mut gzip = flate2::write::GzEncoder::new(
            Vec::with_capacity(body.len() / 4),
            flate2::Compression::fast(),
        );
        std::io::Write::write_all(&mut gzip, &body).expect("gzip to memory");
        compressed_total += gzip.finish().expect("gzip to memory").len();
    }
    let wall = started.elapsed();
    report(
        "encode + gzip (1 thread)",
        raw,
        events,
        wall,
        process_cpu_seconds() - cpu_before,
    );
    println!(
        "{:<28} encoded {:.1} MiB, gzipped {:.1} MiB (ratio {:.1})",
        "",
        encoded_total as f64 / (1 << 20) as f64,
        compressed_total as f64 / (1 << 20) as f64,
        encoded_total as f64 / compressed_total.max(1) as f64
    );
}

/// A collector that reads and counts bodies, answers success (with an `ackId` when `ack`), and
/// reports every queried id as indexed.
async fn counting_collector(ack: bool) -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let received = Arc::new(AtomicU64::new(0));
    let next_ack = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let counter = counter.clone();
            let next_ack = next_ack.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let counter = counter.clone();
                    let next_ack = next_ack.clone();
                    async move {
                        let is_ack = request.uri().path().ends_with("/ack");
                        let body = request
                            .into_body()
                            .collect()
                            .await
                            .map(|collected| collected.to_bytes())
                            .unwrap_or_default();
                        let answer = if is_ack {
                            let query: serde_json::Value =
                                serde_json::from_slice(&body).unwrap_or_default();
                            let acks: serde_json::Map<String, serde_json::Value> = query["acks"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .map(|id| (id.to_string(), serde_json::Value::Bool(true)))
                                .collect();
                            serde_json::json!({ "acks": acks }).to_string()
                        } else {
                            counter.fetch_add(body.len() as u64, Ordering::Relaxed);
                            if ack {
                                let id = next_ack.fetch_add(1, Ordering::Relaxed);
                                format!(r#"{{"text":"Success","code":0,"ackId":{id}}}"#)
                            } else {
                                r#"{"text":"Success","code":0}"#.to_owned()
                            }
                        };
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(answer))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (format!("http://{address}"), received)
}

async fn bench_sink(label: &str, batches: &[LogRecords], ack: bool) {
    let (url, received) = counting_collector(ack).await;
    let config: SplunkHecSinkConfig = toml::from_str(&format!(
        r#"
        url = "{url}"
        token = "bench"
        index = "alicloud"
        sourcetype = "alicloud:actiontrail"
        compression = "gzip"
        ack = {ack}
        ack_poll_interval = "20ms"
        indexed_fields = ["__tag__:region", "action"]
        embed_json = {{ {TOPIC} = ["event"] }}
        batch = {{ max_events = 1000, max_bytes = "1MiB", timeout = "100ms" }}
        "#
    ))
    .expect("bench config");
    let sink = config.build(label).expect("sink");
    let (input, receiver) = mpsc::channel(16);
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(Box::new(sink).run(receiver, shutdown.clone()));
    let raw: usize = batches.iter().map(LogRecords::buffer_len).sum();
    let events: usize = batches.iter().map(LogRecords::len).sum();
    let cpu_before = process_cpu_seconds();
    let started = Instant::now();
    let (outcome_sender, mut outcomes) = mpsc::unbounded_channel();
    for (sequence, records) in batches.iter().enumerate() {
        let (ack_token, ack_receiver) = channel();
        let batch = Batch {
            shard: ShardKey {
                logstore: "actiontrail".into(),
                shard: (sequence % 4) as u32,
            },
            sequence: sequence as u64,
            cursor: String::new(),
            next_cursor: String::new(),
            records: records.clone(),
            budget: None,
        };
        let outcome_sender = outcome_sender.clone();
        tokio::spawn(async move {
            let _ = outcome_sender.send(ack_receiver.await);
        });
        input
            .send(SinkBatch {
                batch: Arc::new(batch),
                ack: ack_token,
            })
            .await
            .expect("sink running");
    }
    drop(outcome_sender);
    let mut delivered = 0;
    while let Some(outcome) = outcomes.recv().await {
        assert_eq!(outcome, DeliveryStatus::Delivered);
        delivered += 1;
    }
    let wall = started.elapsed();
    let cpu = process_cpu_seconds() - cpu_before;
    assert_eq!(delivered, batches.len());
    report(label, raw, events, wall, cpu);
    println!(
        "{:<28} sent {:.1} MiB gzipped",
        "",
        received.load(Ordering::Relaxed) as f64 / (1 << 20) as f64
    );
    drop(input);
    let _ = running.await;
}

fn main() {
    let logs: usize = std::env::args()
        .skip(1)
        .find_map(|argument| argument.parse().ok())
        .unwrap_or(200_000);
    let batches = audit_batches(logs);
    let raw: usize = batches.iter().map(LogRecords::buffer_len).sum();
    println!(
        "{} audit logs, {:.0} bytes raw each on average",
        logs,
        raw as f64 / logs as f64
    );
    bench_encode(&batches);
    if std::env::args().any(|argument| argument == "encode") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        bench_sink("sink, gzip", &batches, false).await;
        bench_sink("sink, gzip, indexer ack", &batches, true).await;
    });
}

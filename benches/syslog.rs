//! Throughput of the syslog path, printed as figures (no assertions):
//!
//! 1. RFC 5424 + `kv` body encoding (with octet-counting framing) of realistic ~1 KB audit
//!    logs on one core, in MiB/s of raw log (the size of the pulled log data) and of output.
//! 2. The whole sink over TCP to an in-process receiver that discards what it reads: the sink
//!    runs on a single-threaded runtime (one core), batches of 5,000 logs, every ack awaited.
//!
//! Run with `cargo bench --bench syslog`.

use std::io::Read;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use siem_forwarder::encoding::field::ValueSource;
use siem_forwarder::encoding::framing::Framing;
use siem_forwarder::encoding::header::{HeaderFields, MessageBody};
use siem_forwarder::encoding::kv::KvFormat;
use siem_forwarder::encoding::rfc5424::{BomPolicy, Rfc5424Body, Rfc5424Encoder};
use siem_forwarder::encoding::severity::PriSource;
use siem_forwarder::encoding::Encoder;
use siem_forwarder::model::{ack, Batch, LogRecords, RecordsBuilder, ShardKey};
use siem_forwarder::sinks::syslog::SyslogSinkConfig;
use siem_forwarder::sinks::{Sink, SinkBatch};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const LOGS_PER_BATCH: usize = 5_000;
const MIB: f64 = 1024.0 * 1024.0;

/// A batch of ActionTrail-like audit logs of about 1 KB each.
fn audit_logs(count: usize) -> LogRecords {
    let mut builder = RecordsBuilder::new().group(
        "actiontrail_audit_event",
        "10.12.0.7",
        &[
            ("__hostname__", "trail-collector-3"),
            ("region", "cn-hangzhou"),
        ],
    );
    let actions = [
        "ConsoleSignin",
        "DescribeInstances",
        "DeleteBucket",
        "CreateAccessKey",
    ];
    for index in 0..count {
        let user = format!("user-{:04}@example.com", index % 5000);
        let ip = format!("192.168.{}.{}", index % 256, (index * 7) % 256);
        let request_id = format!("4C{:030X}", index * 2_654_435_761);
        let action = actions[index % actions.len()];
        let event = format!(
            "{{\"eventId\":\"{request_id}\",\"eventVersion\":\"1\",\"eventSource\":\"ecs.aliyuncs.com\",\
             \"eventName\":\"{action}\",\"eventTime\":\"2024-03-05T07:08:09Z\",\"eventType\":\"ApiCall\",\
             \"userIdentity\":{{\"type\":\"ram-user\",\"principalId\":\"2{index:015}\",\"accountId\":\"1234567890123456\",\
             \"userName\":\"{user}\",\"accessKeyId\":\"LTAI5t{index:016}\"}},\"sourceIpAddress\":\"{ip}\",\
             \"userAgent\":\"AlibabaCloud (Linux 5.10; x86_64) Python/3.11.7 Core/2.13.36 python-requests/2.31.0\",\
             \"requestParameters\":{{\"RegionId\":\"cn-hangzhou\",\"InstanceIds\":\"[\\\"i-bp67acfmxazb4p{index:06}\\\"]\",\
             \"PageSize\":50,\"PageNumber\":1}},\"serviceName\":\"Ecs\",\"requestId\":\"{request_id}\",\
             \"responseElements\":{{\"RequestId\":\"{request_id}\",\"TotalCount\":1,\"Status\":\"Running\",\
             \"VpcId\":\"vpc-bp1opxu1zkhn00gzv{index:05}\"}},\
             \"acsRegion\":\"cn-hangzhou\",\"errorCode\":\"\",\"errorMessage\":\"\"}}"
        );
        builder = builder.log(
            1_709_622_489 + index as u32,
            Some((index as u32 % 1000) * 1_000_000),
            &[
                ("event", event.as_str()),
                ("user", user.as_str()),
                ("source_ip", ip.as_str()),
                ("action", action),
                (
                    "result",
                    if index % 10 == 0 {
                        "failure"
                    } else {
                        "success"
                    },
                ),
                ("region", "cn-hangzhou"),
                ("level", if index % 10 == 0 { "WARN" } else { "INFO" }),
            ],
        );
    }
    builder.build()
}

fn encoder() -> Rfc5424Encoder {
    Rfc5424Encoder {
        header: HeaderFields {
            pri: PriSource {
                severity_field: Some("level".into()),
                ..PriSource::default()
            },
            hostname: ValueSource {
                field: Some("__source__".into()),
                fallback: String::new(),
            },
            app_name: ValueSource::fixed("siem-forwarder"),
            msgid: ValueSource {
                field: Some("action".into()),
                fallback: String::new(),
            },
            ..HeaderFields::default()
        },
        body: Rfc5424Body::Message(MessageBody::Kv(KvFormat::default())),
        bom: BomPolicy::Never,
    }
}

fn bench_encoding(records: &LogRecords) {
    let encoder = encoder();
    let mut message = Vec::with_capacity(4096);
    let mut framed = Vec::with_capacity(records.buffer_len() * 2);
    let mut rounds = 0u64;
    let mut output_bytes = 0u64;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        framed.clear();
        for record in records.iter() {
            message.clear();
            encoder.encode(&record, &mut message);
            Framing::OctetCounting.frame(&message, &mut framed);
        }
        output_bytes += framed.len() as u64;
        rounds += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    let raw = (rounds * records.buffer_len() as u64) as f64;
    println!(
        "encode rfc5424+kv: {:.0} MiB/s raw log, {:.0} MiB/s output, {:.0} logs/s ({} logs of {} raw bytes on average, one core)",
        raw / MIB / seconds,
        output_bytes as f64 / MIB / seconds,
        (rounds * records.len() as u64) as f64 / seconds,
        records.len(),
        records.buffer_len() / records.len(),
    );
}

/// Accepts connections and discards everything read; returns the port and the byte counter.
fn discarding_receiver() -> (u16, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut buffer = vec![0u8; 1 << 20];
                while let Ok(read) = stream.read(&mut buffer) {
                    if read == 0 {
                        break;
                    }
                    counter.fetch_add(read as u64, Ordering::Relaxed);
                }
            });
        }
    });
    (port, received)
}

fn bench_tcp(records: &LogRecords) {
    let (port, received) = discarding_receiver();
    let config: SyslogSinkConfig = toml::from_str(&format!(
        "name = \"bench\"\naddress = \"127.0.0.1:{port}\"\nprotocol = \"tcp\"\nseverity_field = \"level\"\nmsgid_field = \"action\""
    ))
    .expect("config");
    let sink = config.build("bench").expect("sink");
    let batches = 80;
    let prepared: Vec<Arc<Batch>> = (0..batches)
        .map(|sequence| {
            Arc::new(Batch {
                shard: ShardKey {
                    logstore: "bench".into(),
                    shard: 0,
                },
                sequence,
                cursor: String::new(),
                next_cursor: String::new(),
                records: records.clone(),
                budget: None,
            })
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let seconds = runtime.block_on(async move {
        let (input, receiver) = mpsc::channel(4);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(Box::new(sink).run(receiver, shutdown.clone()));
        let started = Instant::now();
        let mut acks = Vec::new();
        for batch in prepared {
            let (token, ack) = ack::channel();
            input
                .send(SinkBatch { batch, ack: token })
                .await
                .expect("sink running");
            acks.push(ack);
        }
        for ack in acks {
            let outcome = ack.await;
            assert_eq!(outcome, siem_forwarder::model::DeliveryStatus::Delivered);
        }
        let seconds = started.elapsed().as_secs_f64();
        shutdown.cancel();
        let _ = task.await;
        seconds
    });
    let raw = (batches * records.buffer_len() as u64) as f64;
    println!(
        "tcp sink rfc5424+kv: {:.0} MiB/s raw log, {:.0} MiB/s on the wire, {:.0} logs/s ({} batches of {} logs, sink on one core)",
        raw / MIB / seconds,
        received.load(Ordering::Relaxed) as f64 / MIB / seconds,
        (batches * records.len() as u64) as f64 / seconds,
        batches,
        records.len(),
    );
}

fn main() {
    let records = audit_logs(LOGS_PER_BATCH);
    bench_encoding(&records);
    bench_tcp(&records);
}

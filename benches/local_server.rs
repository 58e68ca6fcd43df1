//! PullLogs throughput of the embedded log service: fills a `local-server` process with
//! generated audit logs, pulls everything back over HTTP, and prints raw MiB/s and the
//! server's CPU time per raw GiB (read from /proc, so the client's decoding is not counted).
//!
//!     cargo bench --bench local_server            # 256 MiB of raw log
//!     BENCH_MIB=1024 cargo bench --bench local_server

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use siem_forwarder::common::Secret;
use siem_forwarder::producer::generator::AuditLogGenerator;
use siem_forwarder::source::api::cursor::CursorFrom;
use siem_forwarder::source::api::put_logs::PutTarget;
use siem_forwarder::source::{Client, ClientConfig};

const SHARDS: u32 = 8;
const LOGS_PER_GROUP: usize = 512;

/// User + system CPU seconds of a process.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("comm")
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[tokio::main]
async fn main() {
    let target_mib: usize = std::env::var("BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_siem-forwarder"))
        .args([
            "local-server",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--project",
            "bench",
        ])
        .args([
            "--logstore",
            &format!("audit:{SHARDS}"),
            "--access-key-id",
            "id",
            "--access-key-secret",
            "secret",
        ])
        .arg("--data-dir")
        .arg(data.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start local-server");
    let endpoint = format!("http://127.0.0.1:{port}");
    let client = Arc::new(
        Client::new(ClientConfig::new(
            &endpoint,
            "bench",
            "id",
            Secret::new("secret"),
        ))
        .unwrap(),
    );
    let started = Instant::now();
    let shards = loop {
        match client.list_shards("audit").await {
            Ok(shards) => break shards,
            Err(_) if started.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(error) => panic!("local-server did not start: {error}"),
        }
    };

    let mut generator = AuditLogGenerator::new(1);
    let mut written_bytes = 0usize;
    let mut written_logs = 0usize;
    let fill_started = Instant::now();
    let mut index = 0;
    while written_bytes < target_mib << 20 {
        let group = generator.group(LOGS_PER_GROUP, 1_700_000_000);
        written_bytes += group.to_bytes().len();
        written_logs += group.logs.len();
        let shard = &shards[index % shards.len()];
        client
            .put_logs(
                "audit",
                PutTarget::HashKey(&shard.inclusive_begin_key),
                &group,
            )
            .await
            .unwrap();
        index += 1;
    }
    println!(
        "filled {written_logs} logs, {:.0} MiB raw, in {:.1}s",
        written_bytes as f64 / 1048576.0,
        fill_started.elapsed().as_secs_f64()
    );

    let cpu_before = cpu_seconds(server.id());
    let pull_started = Instant::now();
    let mut tasks = Vec::new();
    for shard in shards {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut cursor = client
                .get_cursor("audit", shard.shard_id, CursorFrom::Begin)
                .await
                .unwrap();
            let (mut raw, mut logs) = (0usize, 0usize);
            loop {
                let pulled = client
                    .pull_logs("audit", shard.shard_id, &cursor, 1000)
                    .await
                    .unwrap();
                if pulled.group_count == 0 {
                    return (raw, logs);
                }
                raw += pulled.raw_size;
                logs += pulled.records.len();
                cursor = pulled.next_cursor;
            }
        }));
    }
    let (mut raw, mut logs) = (0usize, 0usize);
    for task in tasks {
        let (task_raw, task_logs) = task.await.unwrap();
        raw += task_raw;
        logs += task_logs;
    }
    let wall = pull_started.elapsed().as_secs_f64();
    let server_cpu = cpu_seconds(server.id()) - cpu_before;
    server.kill().ok();
    server.wait().ok();
    assert_eq!(logs, written_logs, "every log pulled back");
    let mib = raw as f64 / 1048576.0;
    println!(
        "cores: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "pulled {logs} logs, {mib:.0} MiB raw in {wall:.2}s: {:.0} MiB/s wall",
        mib / wall
    );
    println!(
        "server CPU {server_cpu:.2}s: {:.0} MiB/s of raw log per server core, {:.2} CPU-s per GiB",
        mib / server_cpu.max(0.001),
        server_cpu / (mib / 1024.0)
    );
}

//! Reading a logstore with the log-service client alone, without a consumer group: list the
//! shards, get each shard's begin and end cursors, and pull log groups between them, printing
//! every log. This is the raw API the consumer-group runtime is built on; it keeps no
//! checkpoint, so running it twice prints the same logs twice.
//!
//! It starts the embedded log service on a loopback port and writes a few generated audit logs
//! first, so it needs no setup:
//!
//!     cargo run --example consume_once

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use siem_forwarder::common::time::unix_now;
use siem_forwarder::common::Secret;
use siem_forwarder::local_server::{
    LocalServer, LocalServerConfig, LogstoreSpec, DEFAULT_MAX_BODY_BYTES,
};
use siem_forwarder::model::LogRecord;
use siem_forwarder::producer::generator::AuditLogGenerator;
use siem_forwarder::source::api::cursor::CursorFrom;
use siem_forwarder::source::api::put_logs::PutTarget;
use siem_forwarder::source::{Client, ClientConfig};

const PROJECT: &str = "example-project";
const LOGSTORE: &str = "audit";
const SHARDS: u32 = 2;
const ACCESS_KEY_ID: &str = "example-id";
const ACCESS_KEY_SECRET: &str = "example-secret";

/// Log groups written per shard, and logs per group.
const GROUPS_PER_SHARD: usize = 2;
const LOGS_PER_GROUP: usize = 3;

/// Log groups asked for per pull (the API allows 1 to 1000). Small here so that the loop
/// below pulls more than once per shard.
const GROUPS_PER_PULL: u32 = 1;

/// Longest field value printed; the audit logs' `event` field is a kilobyte of JSON.
const MAX_VALUE_CHARS: usize = 60;

/// One log on one line: time, topic, source, then its fields as `key=value`.
fn print_log(shard: u32, record: &LogRecord<'_>) {
    let time = chrono::DateTime::from_timestamp(i64::from(record.time), 0)
        .map(|time| time.to_rfc3339())
        .unwrap_or_else(|| record.time.to_string());
    let mut line = format!(
        "shard {shard} {time} topic={} source={}",
        record.topic, record.source
    );
    for (key, value) in record.fields.iter() {
        let mut shown: String = value.chars().take(MAX_VALUE_CHARS).collect();
        if shown.len() < value.len() {
            shown.push_str("...");
        }
        line.push_str(&format!(" {key}={shown}"));
    }
    println!("{line}");
}

/// Writes `GROUPS_PER_SHARD` groups of generated audit logs into every shard.
async fn fill(client: &Client) -> anyhow::Result<()> {
    let mut generator = AuditLogGenerator::new(7);
    for shard in client.list_shards(LOGSTORE).await? {
        for _ in 0..GROUPS_PER_SHARD {
            let group = generator.group(LOGS_PER_GROUP, unix_now());
            client
                .put_logs(
                    LOGSTORE,
                    PutTarget::HashKey(&shard.inclusive_begin_key),
                    &group,
                )
                .await?;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
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

    // The same client the forwarder uses against https://cn-hangzhou.log.aliyuncs.com.
    let client = Client::new(ClientConfig::new(
        &endpoint,
        PROJECT,
        ACCESS_KEY_ID,
        Secret::new(ACCESS_KEY_SECRET),
    ))?;
    fill(&client)
        .await
        .context("cannot write the example logs")?;

    let mut total = 0;
    for shard in client.list_shards(LOGSTORE).await? {
        let id = shard.shard_id;
        let mut cursor = client.get_cursor(LOGSTORE, id, CursorFrom::Begin).await?;
        // The end is read once: logs written after this point are left for the next run.
        let end = client.get_cursor(LOGSTORE, id, CursorFrom::End).await?;
        println!("shard {id} ({}): cursors {cursor} .. {end}", shard.status);
        let mut pulls = 0;
        while cursor != end {
            let pulled = client
                .pull_logs(LOGSTORE, id, &cursor, GROUPS_PER_PULL)
                .await
                .with_context(|| format!("cannot pull shard {id} at cursor {cursor}"))?;
            pulls += 1;
            for record in pulled.records.iter() {
                print_log(id, &record);
            }
            total += pulled.records.len();
            if pulled.next_cursor == cursor {
                // No progress before `end`: stop rather than loop forever.
                break;
            }
            cursor = pulled.next_cursor;
        }
        println!("shard {id}: read up to {cursor} in {pulls} pulls");
    }
    let written = SHARDS as usize * GROUPS_PER_SHARD * LOGS_PER_GROUP;
    println!("read {total} logs, {written} written");
    anyhow::ensure!(total == written, "read {total} logs but wrote {written}");

    server_stop.cancel();
    server_task.await??;
    Ok(())
}

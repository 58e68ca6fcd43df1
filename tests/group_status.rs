//! `siem-forwarder status --config`: the consumer group as the log service records it, with a
//! real forwarder process and a second consumer (a stand-in for another consumer library,
//! heartbeating and checkpointing through the client) sharing one group, plus a logstore the
//! group never consumed.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use siem_forwarder::source::cursor;
use tokio::io::AsyncBufReadExt as _;
use tokio_util::sync::CancellationToken;

use support::forwarder::{consumer_with_timeout, Forwarder};
use support::{
    forwarder_status as status, put_audit_logs, shared, wait_until, TestServer, AK_ID, AK_SECRET,
    PROJECT,
};

const GROUP: &str = "g";
const OTHER: &str = "python-sdk-consumer";

/// A configuration naming both logstores (the forwarder itself consumes only `audit`).
fn status_config(server: &TestServer, dir: &Path) -> String {
    let path = dir.join("status.toml");
    std::fs::write(
        &path,
        format!(
            "[source]\nendpoint = \"{}\"\nproject = \"{PROJECT}\"\nlogstores = [\"audit\", \"spare\"]\n\
             access_key_id = \"{AK_ID}\"\naccess_key_secret = \"${{TEST_AK_SECRET}}\"\n\
             [consumer]\ngroup = \"{GROUP}\"\n[[sinks]]\ntype = \"null\"\n",
            server.endpoint()
        ),
    )
    .expect("write config");
    path.display().to_string()
}

/// The shards of `logstore` in a `--json` document, by id.
fn shards(document: &Value, logstore: &str) -> BTreeMap<u64, Value> {
    document["logstores"]
        .as_array()
        .expect("logstores")
        .iter()
        .find(|entry| entry["logstore"] == logstore)
        .expect("logstore listed")["shards"]
        .as_array()
        .expect("shards")
        .iter()
        .map(|shard| (shard["shard"].as_u64().expect("id"), shard.clone()))
        .collect()
}

fn summary(document: &Value, logstore: &str) -> Value {
    document["logstores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["logstore"] == logstore)
        .unwrap()["summary"]
        .clone()
}

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_view_names_every_owner_the_lag_and_the_shards_nobody_holds() {
    let server = TestServer::start(&[("audit", 4), ("spare", 2)]).await;
    let client = server.client();
    let dir = tempfile::tempdir().unwrap();
    // Two log groups per shard in both logstores.
    put_audit_logs(&client, "audit", 80, 10, 1).await;
    put_audit_logs(&client, "spare", 40, 10, 2).await;

    // The other consumer joins first, takes every shard, checkpoints one log group into each
    // and keeps heartbeating what it is told to hold (so it hands shards over on rebalance).
    client
        .create_consumer_group("audit", GROUP, 4, false)
        .await
        .unwrap();
    let first = client.heartbeat("audit", GROUP, OTHER, &[]).await.unwrap();
    assert_eq!(first, [0, 1, 2, 3]);
    for shard in &first {
        client
            .update_checkpoint("audit", GROUP, OTHER, *shard, &cursor::encode(1), true)
            .await
            .unwrap();
    }
    let other_stop = CancellationToken::new();
    let other = tokio::spawn({
        let client = client.clone();
        let stop = other_stop.clone();
        async move {
            let mut held = first;
            while !stop.is_cancelled() {
                if let Ok(assigned) = client.heartbeat("audit", GROUP, OTHER, &held).await {
                    held = assigned;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    });

    let consumer = consumer_with_timeout(GROUP, "fwd-a", 4);
    let mut forwarder = Forwarder::spawn(&server, dir.path(), "audit", &consumer, "");
    wait_until(
        "the forwarder to hold two shards and deliver their logs",
        Duration::from_secs(60),
        || {
            let held = forwarder.assigned().len();
            let delivered = forwarder.delivered().len();
            async move { held == 2 && delivered == 20 }
        },
    )
    .await;
    let config = status_config(&server, dir.path());
    let fwd_shards = forwarder.assigned();
    let latest = shared(Value::Null);
    wait_until(
        "the forwarder's checkpoints to reach the end of its shards",
        Duration::from_secs(30),
        || {
            let config = config.clone();
            let fwd_shards = fwd_shards.clone();
            let latest = latest.clone();
            async move {
                let document: Value =
                    serde_json::from_str(&status(&["--config", &config, "--json"]).await)
                        .expect("status --json prints JSON");
                let audit = shards(&document, "audit");
                *latest.lock().unwrap() = document;
                fwd_shards
                    .iter()
                    .all(|shard| audit[&u64::from(*shard)]["lag_log_groups"] == 0)
            }
        },
    )
    .await;

    let document = latest.lock().unwrap().clone();
    // The stable shape.
    assert_eq!(
        keys(&document),
        ["group", "logstores", "observed_at", "project"]
    );
    assert_eq!(document["group"], GROUP);
    assert_eq!(document["project"], PROJECT);
    let audit = shards(&document, "audit");
    assert_eq!(
        keys(&audit[&0]),
        [
            "checkpoint",
            "checkpoint_data_time",
            "checkpoint_updated_at",
            "consumer",
            "lag_log_groups",
            "lag_seconds",
            "newest_data_time",
            "shard",
            "state"
        ]
    );
    // Owners and lags: the forwarder's shards are consumed to the end, the other consumer's
    // shards trail by the one log group it never checkpointed.
    for (id, shard) in &audit {
        assert_eq!(shard["state"], "readwrite");
        assert!(
            shard["newest_data_time"].as_i64().unwrap() > 1_600_000_000,
            "{shard}"
        );
        if fwd_shards.contains(&(*id as u32)) {
            assert_eq!(shard["consumer"], "fwd-a", "{shard}");
            assert_eq!(shard["checkpoint"], cursor::encode(2));
            assert_eq!(shard["lag_seconds"], 0);
        } else {
            assert_eq!(shard["consumer"], OTHER, "{shard}");
            assert_eq!(shard["checkpoint"], cursor::encode(1));
            assert_eq!(shard["lag_log_groups"], 1);
            assert!(shard["lag_seconds"].as_i64().unwrap() >= 0, "{shard}");
        }
        assert!(shard["checkpoint_updated_at"].as_i64().is_some(), "{shard}");
        assert!(shard["checkpoint_data_time"].as_i64().is_some(), "{shard}");
    }
    let audit_summary = summary(&document, "audit");
    assert_eq!(audit_summary["shards"], 4);
    assert_eq!(audit_summary["consumers"], 2);
    assert_eq!(audit_summary["unowned_shards"], 0);
    assert_eq!(audit_summary["backlog_log_groups"], 2);
    // The logstore the group never consumed: no owner, everything is backlog.
    let spare = shards(&document, "spare");
    assert_eq!(spare.len(), 2);
    for shard in spare.values() {
        assert_eq!(shard["consumer"], Value::Null, "{shard}");
        assert_eq!(shard["checkpoint"], Value::Null, "{shard}");
        assert_eq!(shard["lag_log_groups"], 2, "{shard}");
    }
    let spare_summary = summary(&document, "spare");
    assert_eq!(spare_summary["unowned_shards"], 2);
    assert_eq!(spare_summary["backlog_log_groups"], 4);

    // The table says the same.
    let table = status(&["--config", &config]).await;
    assert!(
        table.contains("audit: 4 shards, 2 consumers, 0 unowned")
            && table.contains("backlog 2 log groups"),
        "{table}"
    );
    assert!(
        table.contains("spare: 2 shards, 0 consumers, 2 unowned"),
        "{table}"
    );
    assert_eq!(table.matches("fwd-a").count(), 2, "{table}");
    assert_eq!(table.matches(OTHER).count(), 2, "{table}");
    assert_eq!(table.matches("- (none)").count(), 2, "{table}");

    // Once every consumer stopped, what is written next is the group's lag.
    forwarder.terminate(Duration::from_secs(30)).await;
    other_stop.cancel();
    other.await.unwrap();
    put_audit_logs(&client, "audit", 40, 10, 3).await;
    let after: Value =
        serde_json::from_str(&status(&["--config", &config, "--json"]).await).unwrap();
    assert_eq!(summary(&after, "audit")["backlog_log_groups"], 2 + 4);
    assert_eq!(summary(&after, "audit")["consumers"], 2);

    // `--watch` refreshes: one JSON document per line.
    let mut watching = tokio::process::Command::new(env!("CARGO_BIN_EXE_siem-forwarder"))
        .args(["status", "--config", &config, "--json", "--watch", "1"])
        .env("TEST_AK_SECRET", AK_SECRET)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(watching.stdout.take().unwrap()).lines();
    for _ in 0..2 {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("a refresh within the interval")
            .unwrap()
            .expect("a line");
        let document: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(summary(&document, "audit")["backlog_log_groups"], 6);
    }
    watching.kill().await.unwrap();
}

//! The `null` sink in a running forwarder process: it acknowledges every batch without sending
//! anything, so the group's checkpoints reach the end of the data, and its counters show every
//! log it dropped.

mod support;

use std::time::Duration;

use siem_forwarder::source::api::cursor::CursorFrom;
use support::forwarder::{fast_consumer, Forwarder};
use support::{http_get, metric_sum, put_audit_logs, wait_until, TestServer};

const LOGS: usize = 3_000;

#[tokio::test]
async fn null_sink_acknowledges_every_batch_and_counts_what_it_dropped() {
    let server = TestServer::start(&[("audit", 2)]).await;
    let client = server.client();
    put_audit_logs(&client, "audit", LOGS, 250, 71).await;
    let ends = futures::future::join_all(
        (0..2).map(|shard| client.get_cursor("audit", shard, CursorFrom::End)),
    )
    .await
    .into_iter()
    .collect::<Result<Vec<_>, _>>()
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sinks = "\n[[sinks]]\ntype = \"null\"\nname = \"blackhole\"\nformat = \"rfc5424\"\n\n\
                 [telemetry]\nlisten = \"127.0.0.1:0\"\n";
    let mut forwarder = Forwarder::spawn(
        &server,
        dir.path(),
        "audit",
        &fast_consumer("g", "n1"),
        sinks,
    );
    let metrics_url = format!("{}/metrics", forwarder.telemetry_url().await);
    let events = "siem_forwarder_sink_delivered_events_total{sink=\"blackhole\"}";
    wait_until(
        "the null sink to take every log",
        Duration::from_secs(30),
        || {
            let url = metrics_url.clone();
            async move { metric_sum(&http_get(&url).await.1, events) >= LOGS as f64 }
        },
    )
    .await;
    let metrics = http_get(&metrics_url).await.1;
    assert_eq!(metric_sum(&metrics, events), LOGS as f64, "each log once");
    let bytes = metric_sum(
        &metrics,
        "siem_forwarder_sink_delivered_bytes_total{sink=\"blackhole\"}",
    );
    assert!(
        bytes > (LOGS * 500) as f64,
        "the encoded RFC 5424 bytes are counted: {bytes}"
    );
    // A checkpoint moves only past batches that every sink acknowledged.
    wait_until(
        "checkpoints at the end of both shards",
        Duration::from_secs(30),
        || {
            let (client, ends) = (&client, &ends);
            async move {
                let Ok(checkpoints) = client.get_checkpoints("audit", "g").await else {
                    return false;
                };
                checkpoints.len() == 2
                    && checkpoints
                        .iter()
                        .all(|c| ends.get(c.shard as usize) == Some(&c.checkpoint))
            }
        },
    )
    .await;
    let (code, _) = forwarder.terminate(Duration::from_secs(20)).await;
    assert_eq!(code, Some(0));
    assert!(
        forwarder
            .logged_line(
                "the null sink drops every log it is given; checkpoints move past them",
                "sink",
                "blackhole"
            )
            .is_some(),
        "the null sink says loudly that it drops logs"
    );
}

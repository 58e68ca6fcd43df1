//! The telemetry endpoint of a running forwarder process: `/metrics` counters move, `/status`
//! lists every shard, `/healthz` and `/readyz` answer, `status` renders it, a catch-up's ETA
//! holds, and no secret shows up in the process's logs or metrics.

mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use siem_forwarder::producer::generator::AuditLogGenerator;
use siem_forwarder::source::api::put_logs::PutTarget;

use support::forwarder::{fast_consumer, Forwarder};
use support::{http_get, metric_sum, put_audit_logs, wait_until, TestServer, AK_SECRET};

/// The sum of `delivered_logs` over every shard in a `/status` document (0 when unparsable).
fn delivered_per_status(text: &str) -> u64 {
    let status: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    status["shards"].as_array().map_or(0, |shards| {
        shards
            .iter()
            .filter_map(|s| s["delivered_logs"].as_u64())
            .sum()
    })
}

#[tokio::test]
async fn metrics_and_status_show_a_running_forwarder_without_secrets() {
    let server = TestServer::start(&[("audit", 4)]).await;
    let client = server.client();
    put_audit_logs(&client, "audit", 4_000, 500, 61).await;
    let dir = tempfile::tempdir().unwrap();
    // Port 0: the process binds a free port itself and logs it (a port picked here could be
    // taken by someone else before the process binds it).
    let telemetry = "\n[telemetry]\nlisten = \"127.0.0.1:0\"\n";
    let mut forwarder = Forwarder::spawn(
        &server,
        dir.path(),
        "audit",
        &fast_consumer("g", "m1"),
        telemetry,
    );
    let base = forwarder.telemetry_url().await;

    wait_until("/healthz", Duration::from_secs(30), || async {
        http_get(&format!("{base}/healthz")).await.0 == 200
    })
    .await;
    wait_until(
        "the first logs to be delivered",
        Duration::from_secs(30),
        || {
            let url = format!("{base}/metrics");
            async move {
                metric_sum(
                    &http_get(&url).await.1,
                    "siem_forwarder_sink_delivered_events_total",
                ) >= 4_000.0
            }
        },
    )
    .await;
    // The sink counts a batch before the shard hears of its delivery and records the
    // checkpoint lag, so wait for the shards' own count too.
    wait_until(
        "the first logs delivered per /status",
        Duration::from_secs(30),
        || {
            let url = format!("{base}/status");
            async move { delivered_per_status(&http_get(&url).await.1) >= 4_000 }
        },
    )
    .await;
    let (_, first) = http_get(&format!("{base}/metrics")).await;
    let pulled_before = metric_sum(&first, "siem_forwarder_pulled_logs_total");
    assert!(pulled_before >= 4_000.0, "{first}");
    assert_eq!(
        metric_sum(&first, "siem_forwarder_held_shards{logstore=\"audit\"}"),
        4.0
    );
    assert!(
        first.contains("siem_forwarder_checkpoint_lag_seconds{"),
        "lag per shard"
    );
    assert!(
        first.contains("siem_forwarder_inflight_bytes"),
        "in-flight bytes"
    );

    put_audit_logs(&client, "audit", 2_000, 500, 62).await;
    wait_until("the counters to move", Duration::from_secs(30), || {
        let url = format!("{base}/metrics");
        async move {
            metric_sum(&http_get(&url).await.1, "siem_forwarder_pulled_logs_total")
                >= pulled_before + 2_000.0
        }
    })
    .await;

    let (code, ready) = http_get(&format!("{base}/readyz")).await;
    assert_eq!(
        code, 200,
        "ready once the sink and consumer are healthy: {ready}"
    );
    // Pulled logs are counted before the sink delivers them, so wait for delivery itself.
    wait_until(
        "all logs delivered per /status",
        Duration::from_secs(30),
        || {
            let url = format!("{base}/status");
            async move { delivered_per_status(&http_get(&url).await.1) >= 6_000 }
        },
    )
    .await;
    let (_, status_text) = http_get(&format!("{base}/status")).await;
    let status: serde_json::Value = serde_json::from_str(&status_text).unwrap();
    let shards = status["shards"].as_array().unwrap();
    let listed: Vec<u64> = shards
        .iter()
        .map(|s| s["shard"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, [0, 1, 2, 3], "every shard listed");
    assert!(shards
        .iter()
        .all(|s| s["consumer"] == "m1" && s["phase"] == "consuming"));
    assert_eq!(delivered_per_status(&status_text), 6_000, "nothing twice");
    wait_until("checkpoints in /status", Duration::from_secs(10), || {
        let url = format!("{base}/status");
        async move {
            let status: serde_json::Value =
                serde_json::from_str(&http_get(&url).await.1).unwrap_or_default();
            status["shards"]
                .as_array()
                .is_some_and(|shards| shards.iter().all(|s| s["checkpoint"] != ""))
        }
    })
    .await;

    let table = siem_forwarder::cli::render_status(&status);
    assert!(
        table.contains("ready: yes") && table.contains("consumer:audit"),
        "{table}"
    );
    assert_eq!(
        table
            .lines()
            .filter(|line| line.starts_with("audit "))
            .count(),
        4,
        "{table}"
    );

    let (code, _) = forwarder.terminate(Duration::from_secs(20)).await;
    assert_eq!(code, Some(0));
    let logs = std::fs::read_to_string(&forwarder.log).unwrap();
    for text in [&logs, &first, &status_text] {
        assert!(!text.contains(AK_SECRET), "the AccessKey secret leaked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catch_up_eta_is_within_a_factor_of_two_of_the_time_it_took() {
    let server = TestServer::start(&[("audit", 1)]).await;
    let client = server.client();
    // 60 log groups stamped over the last two hours. One group per pull, and the pacing after
    // a small pull (at least 500 ms) sets a steady speed: catching up takes about 30 s.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    let mut generator = AuditLogGenerator::new(5);
    for index in 0..60 {
        let group = generator.group(10, now - 7200 + index * 122);
        client
            .put_logs("audit", PutTarget::LoadBalanced, &group)
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let consumer = format!("{}max_fetch_groups = 1\n", fast_consumer("g", "eta"));
    let telemetry = "\n[telemetry]\nlisten = \"127.0.0.1:0\"\n";
    let forwarder = Forwarder::spawn(&server, dir.path(), "audit", &consumer, telemetry);
    let status_url = format!("{}/status", forwarder.telemetry_url().await);
    let catching_up = || async {
        let document: serde_json::Value =
            serde_json::from_str(&http_get(&status_url).await.1).unwrap_or_default();
        document["catch_up"]["shards"]
            .as_array()
            .and_then(|shards| shards.first().cloned())
    };

    // The first estimate once a fifth of the lag is worked off (the speed is measured by then).
    let deadline = Instant::now() + Duration::from_secs(120);
    let (estimated_at, eta) = loop {
        assert!(Instant::now() < deadline, "no estimate within 120 s");
        if let Some(shard) = catching_up().await {
            if let (Some(percent), Some(eta)) =
                (shard["percent"].as_f64(), shard["eta_seconds"].as_f64())
            {
                if percent >= 20.0 {
                    break (Instant::now(), eta);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    wait_until(
        "the shard to catch up",
        Duration::from_secs(240),
        || async { catching_up().await.is_none() },
    )
    .await;
    let took = estimated_at.elapsed().as_secs_f64();
    assert_eq!(forwarder.delivered().len(), 600, "every log delivered");
    assert!(
        eta >= took / 2.0 && eta <= took * 2.0,
        "the ETA of {eta:.1} s is within a factor of two of the {took:.1} s it took"
    );
}

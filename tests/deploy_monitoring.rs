//! The monitoring recipes in `deploy/`: Prometheus accepts the alerting rules
//! (`promtool check rules`, installed by `scripts/setup-prometheus.sh`), and every metric the
//! rules and the Grafana dashboard name is one a running forwarder exports. The same run
//! shows a catch-up through the public surface: a forwarder starting far behind reports its
//! progress in `/status` and `/metrics` and reaches 100%.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use support::forwarder::{fast_consumer, Forwarder};
use support::{http_get, metric_sum, put_audit_logs, wait_until, TestServer};

const RULES: &str = "deploy/prometheus/alerts.yml";
const DASHBOARD: &str = "deploy/grafana/siem-forwarder.json";

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// Every `siem_forwarder_*` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("siem_forwarder_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// The sample names a Prometheus scrape of `exposition` stores: each sample line's name, and
/// for every declared family its name (and `_total` for counters), so that families without
/// samples yet count too.
fn exported_names(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let mut parts = declared.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            names.insert(name.to_owned());
            if kind == "counter" {
                names.insert(format!("{name}_total"));
            }
        } else if !line.starts_with('#') {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_owned());
        }
    }
    names
}

#[test]
fn promtool_accepts_the_alerting_rules() {
    let output = std::process::Command::new("promtool")
        .args(["check", "rules", RULES])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("promtool runs (install it with scripts/setup-prometheus.sh)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    assert!(text.contains("SUCCESS"), "{text}");
}

#[test]
fn the_dashboard_is_grafana_json_with_a_query_per_panel() {
    let dashboard: serde_json::Value = serde_json::from_str(&read(DASHBOARD)).unwrap();
    assert_eq!(dashboard["uid"], "siem-forwarder");
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 10);
    let mut ids = BTreeSet::new();
    for panel in panels {
        assert!(ids.insert(panel["id"].as_u64().unwrap()), "unique ids");
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}", panel["title"]);
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            assert!(expr.contains("siem_forwarder_"), "{expr}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_of_the_rules_and_dashboard_is_exported_and_a_catch_up_reaches_100_percent() {
    let server = TestServer::start(&[("audit", 2)]).await;
    // The generated logs are stamped 2023-11-14: the forwarder starts years behind.
    put_audit_logs(&server.client(), "audit", 2_000, 100, 7).await;
    let dir = tempfile::tempdir().unwrap();
    let telemetry = "\n[telemetry]\nlisten = \"127.0.0.1:0\"\n";
    let mut forwarder = Forwarder::spawn(
        &server,
        dir.path(),
        "audit",
        &fast_consumer("g", "m1"),
        telemetry,
    );
    let base = forwarder.telemetry_url().await;
    let metrics_url = format!("{base}/metrics");
    wait_until(
        "every shard's catch-up to reach 100%",
        Duration::from_secs(60),
        || {
            let url = metrics_url.clone();
            async move {
                let text = http_get(&url).await.1;
                metric_sum(&text, "siem_forwarder_sink_delivered_events_total") >= 2_000.0
                    && text
                        .lines()
                        .filter(|line| line.starts_with("siem_forwarder_catch_up_percent{"))
                        .filter(|line| line.ends_with(" 100.0") || line.ends_with(" 100"))
                        .count()
                        == 2
            }
        },
    )
    .await;
    let exposition = http_get(&metrics_url).await.1;
    let (_, status) = http_get(&format!("{base}/status")).await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert!(
        status["catch_up"]["shards"].as_array().unwrap().is_empty(),
        "caught up: {status}"
    );
    assert!(
        status["catch_up"].get("summary").is_some(),
        "the catch-up summary is part of /status: {status}"
    );

    let exported = exported_names(&exposition);
    let named: BTreeSet<String> = metric_names(&read(RULES))
        .into_iter()
        .chain(metric_names(&read(DASHBOARD)))
        .collect();
    assert!(named.len() >= 15, "{named:?}");
    let missing: Vec<&String> = named.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "named by the rules or the dashboard but not exported: {missing:?}\n{exposition}"
    );
    forwarder.terminate(Duration::from_secs(30)).await;
}

//! The `[transform]` section applied by a running forwarder before its sinks.

mod support;

use std::time::Duration;

use support::forwarder::{fast_consumer, Forwarder};
use support::{put_audit_logs, wait_until, TestServer};

#[tokio::test]
async fn transforms_apply_before_the_sinks() {
    let server = TestServer::start(&[("audit", 2)]).await;
    put_audit_logs(&server.client(), "audit", 1_000, 250, 91).await;
    let dir = tempfile::tempdir().unwrap();
    let transform = r#"
[transform]
drop = ['result == "failure"']
expand_json = { actiontrail_audit_event = ["event"] }
exclude = ["event.requestParameters.ClientToken"]
rename = { source_ip = "src" }
add_fields = { environment = "test" }
"#;
    let forwarder = Forwarder::spawn(
        &server,
        dir.path(),
        "audit",
        &fast_consumer("g", "x1"),
        transform,
    );
    wait_until("the successful logs", Duration::from_secs(60), || {
        let delivered = forwarder.delivered().len();
        async move { delivered >= 850 }
    })
    .await;
    let logs = forwarder.delivered();
    assert!(logs.len() < 1_000, "failures were dropped: {}", logs.len());
    for log in &logs {
        assert_eq!(log["result"], "success");
        assert!(log.get("event").is_none(), "event was expanded");
        assert!(log["event.userIdentity.userName"].is_string());
        assert!(log.get("event.requestParameters.ClientToken").is_none());
        assert_eq!(log["src"], log["event.sourceIpAddress"]);
        assert!(log.get("source_ip").is_none());
        assert_eq!(log["environment"], "test");
        assert_eq!(log["__topic__"], "actiontrail_audit_event");
    }
}

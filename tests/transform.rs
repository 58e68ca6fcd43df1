//! The `[transform]` section applied by a running forwarder before its sinks.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use siem_forwarder::local_server::generator::AuditLogGenerator;
use support::forwarder::{event_id, fast_consumer, Forwarder};
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
    // The logs written above, regenerated: the ids of the successful ones must arrive, and
    // only those.
    let mut generator = AuditLogGenerator::new(91);
    let successful: BTreeSet<String> = (0..1_000)
        .map(|_| generator.log(1_700_000_000))
        .filter(|log| {
            log.contents
                .iter()
                .any(|(key, value)| key == "result" && value == "success")
        })
        .filter_map(|log| {
            log.contents
                .into_iter()
                .find(|(key, _)| key == "event_id")
                .map(|(_, id)| id)
        })
        .collect();
    assert!(
        (1..1_000).contains(&successful.len()),
        "the generated logs include failures to drop"
    );
    wait_until("the successful logs", Duration::from_secs(60), || {
        let delivered = forwarder.delivered().len();
        let expected = successful.len();
        async move { delivered >= expected }
    })
    .await;
    let logs = forwarder.delivered();
    let ids: BTreeSet<String> = logs.iter().map(event_id).collect();
    assert_eq!(logs.len(), ids.len(), "each log once");
    assert_eq!(
        ids, successful,
        "exactly the successful logs, failures dropped"
    );
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

//! The `[transform]` section applied by a running forwarder before its sinks.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use siem_forwarder::producer::generator::AuditLogGenerator;
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
dotted_json = { actiontrail_audit_event = ["event"] }
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

/// `siem-forwarder validate` on a configuration whose `[transform]` and HEC sink set
/// `extra_transform` and `extra_hec`: whether it passed, and what it wrote to stderr.
fn validate_with(extra_transform: &str, extra_hec: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("forwarder.toml");
    let text = format!(
        "[source]\nendpoint = \"http://127.0.0.1:9\"\nproject = \"my-project\"\n\
         logstores = [\"audit\"]\naccess_key_id = \"id\"\naccess_key_secret = \"secret\"\n\
         [consumer]\ngroup = \"g\"\n[transform]\n{extra_transform}\n\
         [[sinks]]\ntype = \"splunk_hec\"\nurl = \"http://127.0.0.1:8088\"\ntoken = \"t\"\n\
         dead_letter_path = \"{}\"\n{extra_hec}\n",
        dir.path().join("dead.jsonl").display()
    );
    std::fs::write(&config, text).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_siem-forwarder"))
        .args(["validate", "--config"])
        .arg(&config)
        .env_clear()
        .output()
        .expect("run siem-forwarder validate");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn old_names_of_json_settings_are_accepted_with_a_deprecation_warning() {
    let topics = "{ actiontrail_audit_event = [\"event\"] }";
    let (passed, stderr) = validate_with(
        &format!("expand_json = {topics}"),
        &format!("expand_json = {topics}"),
    );
    assert!(passed, "{stderr}");
    for expected in [
        "deprecated setting `transform.expand_json`: renamed to `transform.dotted_json`",
        "deprecated setting `expand_json (splunk_hec sink)`: renamed to `embed_json (splunk_hec sink)`",
    ] {
        assert!(stderr.contains(expected), "{expected:?} not in {stderr}");
    }
    let (passed, stderr) = validate_with(
        &format!("dotted_json = {topics}"),
        &format!("embed_json = {topics}"),
    );
    assert!(passed && !stderr.contains("deprecated"), "{stderr}");
    let (passed, stderr) = validate_with(
        &format!("dotted_json = {topics}\nexpand_json = {topics}"),
        "",
    );
    assert!(
        !passed && stderr.contains("transform.expand_json"),
        "{stderr}"
    );
}

//! The README's first command: `run --config config/quickstart.toml` starts the embedded log
//! service, forwards generated audit logs as RFC 5424 lines on stdout, and stops cleanly on
//! SIGINT.

mod support;

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[tokio::test]
async fn quickstart_prints_rfc5424_lines_and_stops_on_sigint() {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_siem-forwarder"))
        .args(["run", "--config"])
        .arg(support::repo_root().join("config/quickstart.toml"))
        .env("SIEM_FORWARDER_DATA", data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut parsed = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), async {
        while parsed.len() < 2_000 {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("stdout open until all logs are printed");
            parsed.push(
                syslog_rfc5424::parse_message(&line)
                    .unwrap_or_else(|e| panic!("not RFC 5424 ({e}): {line}")),
            );
        }
    })
    .await;
    assert!(read.is_ok(), "only {} lines within a minute", parsed.len());
    let first = &parsed[0];
    assert_eq!(first.appname.as_deref(), Some("siem-forwarder"));
    assert_eq!(first.hostname.as_deref(), Some("actiontrail.aliyuncs.com"));
    assert!(
        first.msg.contains("__topic__=actiontrail_audit_event||")
            && first.msg.contains("event_id=")
    );

    let pid = child.id().unwrap().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .unwrap()
        .success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("stops on SIGINT")
        .unwrap();
    assert!(status.success(), "clean exit, got {status}");
    assert!(
        data.path()
            .join("siem-demo/actiontrail/consumer-groups.json")
            .exists(),
        "checkpoints kept"
    );
}

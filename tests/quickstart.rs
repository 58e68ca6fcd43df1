//! The README's first command: `run --config config/quickstart.toml` starts the embedded log
//! service, forwards generated audit logs as RFC 5424 lines on stdout, and stops cleanly on
//! SIGINT.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use siem_forwarder::common::Secret;
use siem_forwarder::local_server::{LocalServer, LocalServerConfig, DEFAULT_MAX_BODY_BYTES};
use siem_forwarder::source::api::cursor::CursorFrom;
use siem_forwarder::source::{Client, ClientConfig};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

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
    assert_checkpoints_at_the_end(data.path()).await;
}

/// Opens the stopped quickstart's data directory with the embedded server and checks that
/// group `quickstart` stored, for every shard, a checkpoint at the end of the shard: a rerun
/// resumes there and prints nothing already printed.
async fn assert_checkpoints_at_the_end(data: &Path) {
    let server = LocalServer::open(LocalServerConfig {
        data_dir: data.to_owned(),
        access_key_id: "quickstart".into(),
        access_key_secret: Secret::new("quickstart-secret"),
        region: siem_forwarder::local_server::DEFAULT_REGION.into(),
        max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        logstores: Vec::new(),
    })
    .expect("open the quickstart data");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let serving = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { server.run(listener, shutdown.cancelled_owned()).await }
    });
    let client = Client::new(ClientConfig::new(
        &endpoint,
        "siem-demo",
        "quickstart",
        Secret::new("quickstart-secret"),
    ))
    .unwrap();
    let shards = client.list_shards("actiontrail").await.unwrap();
    assert_eq!(shards.len(), 4);
    let checkpoints = client
        .get_checkpoints("actiontrail", "quickstart")
        .await
        .unwrap();
    for shard in &shards {
        let end = client
            .get_cursor("actiontrail", shard.shard_id, CursorFrom::End)
            .await
            .unwrap();
        let stored = checkpoints
            .iter()
            .find(|checkpoint| checkpoint.shard == shard.shard_id)
            .map(|checkpoint| checkpoint.checkpoint.as_str());
        assert_eq!(
            stored,
            Some(end.as_str()),
            "shard {}: the checkpoint is the end of the printed logs",
            shard.shard_id
        );
    }
    shutdown.cancel();
    serving.await.unwrap().unwrap();
}

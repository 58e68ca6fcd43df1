//! The local server through its HTTP API: durability across restarts, and bad input answered
//! with the SLS error code and status while the server stays up.

mod support;

use rand::RngCore;
use siem_forwarder::producer::generator::AuditLogGenerator;
use siem_forwarder::source::api::cursor::CursorFrom;
use siem_forwarder::source::api::put_logs::PutTarget;
use siem_forwarder::source::protobuf::{Log, LogGroup};
use siem_forwarder::source::{ApiErrorCode, Client, ClientError};
use std::time::Duration;

use support::forwarder::{fast_consumer, Forwarder};
use support::{v4_client_for, wait_until, RawRequest, TestServer, AK_SECRET, PROJECT, REGION};

async fn pull_everything(client: &Client, logstore: &str) -> usize {
    let mut total = 0;
    for shard in client.list_shards(logstore).await.unwrap() {
        let mut cursor = client
            .get_cursor(logstore, shard.shard_id, CursorFrom::Begin)
            .await
            .unwrap();
        loop {
            let pulled = client
                .pull_logs(logstore, shard.shard_id, &cursor, 1000)
                .await
                .unwrap();
            if pulled.group_count == 0 {
                break;
            }
            total += pulled.records.len();
            cursor = pulled.next_cursor;
        }
    }
    total
}

#[tokio::test]
async fn restart_between_writing_and_reading_loses_nothing() {
    let mut server = TestServer::start(&[("audit", 3)]).await;
    let client = server.client();
    let mut generator = AuditLogGenerator::new(3);
    for _ in 0..12 {
        client
            .put_logs(
                "audit",
                PutTarget::LoadBalanced,
                &generator.group(250, 1_700_000_000),
            )
            .await
            .unwrap();
    }
    client
        .create_consumer_group("audit", "g", 30, false)
        .await
        .unwrap();
    client
        .update_checkpoint("audit", "g", "c1", 1, "Mg==", true)
        .await
        .unwrap();

    server.restart().await;
    let client = server.client();

    assert_eq!(pull_everything(&client, "audit").await, 3000);
    let checkpoint = client
        .get_checkpoint("audit", "g", 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (checkpoint.checkpoint.as_str(), checkpoint.consumer.as_str()),
        ("Mg==", "c1")
    );
    assert!(
        checkpoint.update_time > 1_700_000_000_000_000,
        "microseconds"
    );
    let never = client
        .get_checkpoint("audit", "g", 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        never.checkpoint, "",
        "a shard never checkpointed is listed with an empty cursor"
    );
    let groups = client.list_consumer_groups("audit").await.unwrap();
    assert_eq!((groups[0].name.as_str(), groups[0].timeout), ("g", 30));
}

#[tokio::test]
async fn a_v4_signing_client_writes_reads_and_consumes() {
    let server = TestServer::start(&[("audit", 2)]).await;
    let client = v4_client_for(&server.endpoint(), PROJECT, AK_SECRET);
    let mut generator = AuditLogGenerator::new(5);
    for _ in 0..4 {
        client
            .put_logs(
                "audit",
                PutTarget::LoadBalanced,
                &generator.group(50, 1_700_000_000),
            )
            .await
            .unwrap();
    }
    assert_eq!(pull_everything(&client, "audit").await, 200);
    client
        .create_consumer_group("audit", "g", 30, false)
        .await
        .unwrap();
    let mut held = client.heartbeat("audit", "g", "c1", &[]).await.unwrap();
    held.sort_unstable();
    assert_eq!(held, [0, 1]);
    client
        .update_checkpoint("audit", "g", "c1", 1, "MQ==", false)
        .await
        .unwrap();
    let checkpoint = client
        .get_checkpoint("audit", "g", 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(checkpoint.checkpoint, "MQ==");

    // A v4 client with the wrong secret is refused.
    let forged = v4_client_for(&server.endpoint(), PROJECT, "wrong-secret");
    assert_eq!(
        api_code(forged.list_shards("audit").await),
        (401, ApiErrorCode::SignatureNotMatch)
    );
}

#[tokio::test]
async fn the_forwarder_configured_for_v4_consumes_through_the_real_binary() {
    let server = TestServer::start(&[("audit", 2)]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut forwarder = Forwarder::spawn_with_source(
        &server,
        dir.path(),
        &["audit"],
        &format!("signature_version = \"v4\"\nregion = \"{REGION}\"\n"),
        &fast_consumer("g", "v4"),
        "",
    );
    let client = server.client();
    let mut generator = AuditLogGenerator::new(4);
    client
        .put_logs(
            "audit",
            PutTarget::LoadBalanced,
            &generator.group(300, 1_700_000_000),
        )
        .await
        .unwrap();
    wait_until(
        "the v4 forwarder to deliver",
        Duration::from_secs(60),
        || {
            let delivered = forwarder.delivered().len();
            async move { delivered >= 300 }
        },
    )
    .await;
    let (code, _) = forwarder.terminate(Duration::from_secs(30)).await;
    assert_eq!(code, Some(0));
    assert_eq!(forwarder.delivered().len(), 300);

    // The same configuration scoped to another region is refused: the forwarder signs v4.
    let wrong_dir = tempfile::tempdir().unwrap();
    let mut wrong = Forwarder::spawn_with_source(
        &server,
        wrong_dir.path(),
        &["audit"],
        "signature_version = \"v4\"\nregion = \"cn-shanghai\"\n",
        &fast_consumer("g2", "v4-wrong"),
        "",
    );
    wait_until(
        "the wrong-region forwarder to be refused",
        Duration::from_secs(60),
        || {
            let refused = wrong.log_lines().iter().any(|line| {
                line.to_string()
                    .contains("401 Unauthorized: the signature is scoped to region `cn-shanghai`")
            });
            async move { refused }
        },
    )
    .await;
    assert!(wrong.delivered().is_empty());
    if wrong.running() {
        wrong.kill().await;
    }
}

/// Writes a single small log to any writable shard of `audit`.
async fn put_one_log(client: &Client) {
    let group = LogGroup {
        logs: vec![Log {
            time: 1,
            time_ns: None,
            contents: vec![("k".into(), "v".into())],
        }],
        ..LogGroup::default()
    };
    client
        .put_logs("audit", PutTarget::LoadBalanced, &group)
        .await
        .unwrap();
}

fn api_code(result: Result<impl std::fmt::Debug, ClientError>) -> (u16, ApiErrorCode) {
    match result {
        Err(ClientError::Api(error)) => (error.status, error.code),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Sends a request signed (or not) by hand, for bodies the client would never produce.
async fn raw_request(
    server: &TestServer,
    method: &'static str,
    path: &str,
    body: Vec<u8>,
    sign: bool,
) -> (u16, serde_json::Value) {
    let request = RawRequest::new(method, path, body);
    let request = if sign { request.signed() } else { request };
    request.send(&server.endpoint()).await
}

#[tokio::test]
async fn bad_input_gets_the_sls_error_and_the_server_stays_up() {
    let server = TestServer::start_with_limit(&[("audit", 2)], 1 << 20).await;
    let client = server.client();

    // Malformed protobuf.
    let (status, body) = raw_request(
        &server,
        "POST",
        "/logstores/audit/shards/lb",
        b"\x0a\xff\xff".to_vec(),
        true,
    )
    .await;
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (400, Some("PostBodyInvalid")),
        "{body}"
    );
    assert!(body["errorMessage"].as_str().unwrap().contains("protobuf"));

    // Unsigned, and signed with the wrong secret.
    let (status, body) =
        raw_request(&server, "GET", "/logstores/audit/shards", Vec::new(), false).await;
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (401, Some("Unauthorized"))
    );
    let wrong_secret = server.client_with(PROJECT, "not-the-secret");
    assert_eq!(
        api_code(wrong_secret.list_shards("audit").await),
        (401, ApiErrorCode::SignatureNotMatch)
    );

    // Unknown project, logstore and shard.
    let elsewhere = server.client_with("no-such-project", AK_SECRET);
    assert_eq!(
        api_code(elsewhere.list_shards("audit").await),
        (404, ApiErrorCode::ProjectNotExist)
    );
    assert_eq!(
        api_code(client.list_shards("nope").await),
        (404, ApiErrorCode::LogStoreNotExist)
    );
    assert_eq!(
        api_code(client.get_cursor("audit", 7, CursorFrom::Begin).await),
        (400, ApiErrorCode::ShardNotExist)
    );

    // Invalid cursors: not base64, and beyond the end.
    assert_eq!(
        api_code(client.pull_logs("audit", 0, "%%%", 10).await),
        (400, ApiErrorCode::InvalidCursor)
    );
    assert_eq!(
        api_code(client.pull_logs("audit", 0, "OTk=", 10).await),
        (400, ApiErrorCode::InvalidCursor)
    );

    // A body over the limit (random bytes do not compress).
    let mut noise = vec![0u8; 3 << 20];
    rand::thread_rng().fill_bytes(&mut noise);
    let noise: String = noise
        .iter()
        .map(|b| char::from(b'a' + b % 26))
        .collect::<String>();
    let huge = LogGroup {
        logs: vec![Log {
            time: 1,
            time_ns: None,
            contents: vec![("blob".into(), noise)],
        }],
        ..LogGroup::default()
    };
    assert_eq!(
        api_code(
            client
                .put_logs("audit", PutTarget::LoadBalanced, &huge)
                .await
        ),
        (413, ApiErrorCode::PostBodyTooLarge)
    );

    // Still serving.
    put_one_log(&client).await;
    assert_eq!(pull_everything(&client, "audit").await, 1);
}

#[tokio::test]
async fn split_and_merge_reshape_shards_and_survive_a_restart() {
    let mut server = TestServer::start(&[("audit", 2)]).await;
    let client = server.client();
    let merged = client.merge_shards("audit", 0).await.unwrap();
    let shape: Vec<(u32, &str, &str)> = merged
        .iter()
        .map(|s| {
            (
                s.shard_id,
                s.status.as_str(),
                s.inclusive_begin_key.as_str(),
            )
        })
        .collect();
    assert_eq!(
        shape[..2],
        [
            (0, "readonly", "00000000000000000000000000000000"),
            (1, "readonly", "80000000000000000000000000000000")
        ]
    );
    assert_eq!(
        (merged[2].shard_id, merged[2].status.as_str()),
        (2, "readwrite")
    );
    assert_eq!(
        merged[2].exclusive_end_key,
        "ffffffffffffffffffffffffffffffff"
    );
    assert_eq!(
        api_code(client.merge_shards("audit", 2).await).0,
        400,
        "no neighbour to merge with"
    );
    assert_eq!(
        api_code(client.split_shard("audit", 2, "00").await).0,
        400,
        "key outside the range"
    );

    server.restart().await;
    let client = server.client();
    let shards = client.list_shards("audit").await.unwrap();
    assert_eq!(shards.iter().filter(|s| s.is_readwrite()).count(), 1);
    put_one_log(&client).await;
    let end = client
        .get_cursor("audit", 2, CursorFrom::End)
        .await
        .unwrap();
    assert_eq!(end, "MQ==", "writes go to the merged shard");
}

#[tokio::test]
async fn a_throttled_shard_answers_403_shard_read_quota_exceed_past_its_pulls_per_second() {
    let server = TestServer::start_throttled(&[("audit", 2)], 2).await;
    let client = server.client();
    let cursor = client
        .get_cursor("audit", 0, CursorFrom::Begin)
        .await
        .unwrap();
    // Three pulls of shard 0 within a second: the third is refused. Retried until three
    // fall into one window, however slow the machine.
    let mut refused = None;
    for _ in 0..20 {
        let started = std::time::Instant::now();
        let outcomes = [
            client.pull_logs("audit", 0, &cursor, 10).await,
            client.pull_logs("audit", 0, &cursor, 10).await,
            client.pull_logs("audit", 0, &cursor, 10).await,
        ];
        if started.elapsed() < std::time::Duration::from_millis(900) {
            let [first, second, third] = outcomes;
            assert!(
                first.is_ok() && second.is_ok(),
                "two pulls a second are answered"
            );
            refused = Some(api_code(third));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    assert_eq!(
        refused,
        Some((403, ApiErrorCode::ShardReadQuotaExceed)),
        "the third pull within a second"
    );
    let other = client
        .get_cursor("audit", 1, CursorFrom::Begin)
        .await
        .unwrap();
    assert!(
        client.pull_logs("audit", 1, &other, 10).await.is_ok(),
        "another shard has its own quota"
    );
}

#[tokio::test]
async fn a_heartbeat_reporting_shards_for_an_unknown_consumer_gets_not_exist_consumer_with_body() {
    let server = TestServer::start(&[("audit", 2)]).await;
    let client = server.client();
    client
        .create_consumer_group("audit", "g", 30, false)
        .await
        .unwrap();
    assert_eq!(
        api_code(client.heartbeat("audit", "g", "ghost", &[0, 1]).await),
        (400, ApiErrorCode::NotExistConsumerWithBody),
        "not registered silently with shards it may not own"
    );
    assert_eq!(
        client.heartbeat("audit", "g", "ghost", &[]).await.unwrap(),
        [0, 1],
        "an empty list joins"
    );
}

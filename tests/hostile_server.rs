//! The `local-server` binary against hostile clients: forged, replayed and unsupported
//! signatures (v1 and v4, v4 for another region), bodies that do not match their headers, oversized and truncated bodies,
//! slow headers and absurd declared sizes. Each gets its SLS error (or a closed
//! connection), and the process keeps answering correctly signed requests.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use siem_forwarder::source::api::cursor::CursorFrom;
use siem_forwarder::source::api::put_logs::PutTarget;
use siem_forwarder::source::protobuf::{Log, LogGroup};
use siem_forwarder::source::Client;
use support::{client_for, RawRequest, AK_ID, AK_SECRET, PROJECT, REGION};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// Largest body the server under test accepts.
const MAX_BODY_BYTES: usize = 1 << 20;

/// Generous bound for anything the server should do "soon" on a busy machine.
const SOON: Duration = Duration::from_secs(60);

/// The binary's command with the environment's AccessKey variables removed.
fn local_server_command(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_siem-forwarder"));
    command
        .arg("local-server")
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("SLS_AK_ID")
        .env_remove("SLS_AK_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// A `local-server` process on a free loopback port.
struct ServerProcess {
    child: Child,
    endpoint: String,
    _data: tempfile::TempDir,
}

impl ServerProcess {
    async fn start() -> Self {
        let data = tempfile::tempdir().unwrap();
        let max_body = MAX_BODY_BYTES.to_string();
        let mut child = local_server_command(data.path())
            .args(["--listen", "127.0.0.1:0", "--project", PROJECT])
            .args(["--logstore", "audit:2", "--max-body-bytes", &max_body])
            .args(["--header-read-timeout", "2s"])
            .args(["--access-key-id", AK_ID, "--access-key-secret", AK_SECRET])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self {
            endpoint: support::local_server_endpoint(&mut child).await,
            child,
            _data: data,
        }
    }

    fn address(&self) -> &str {
        self.endpoint.trim_start_matches("http://")
    }

    fn client(&self) -> Client {
        client_for(&self.endpoint, PROJECT, AK_SECRET)
    }

    async fn send(&self, request: &RawRequest) -> (u16, String) {
        let (status, body) = request.send(&self.endpoint).await;
        (status, body["errorCode"].as_str().unwrap_or("").to_owned())
    }

    /// The process is running and answers a correctly signed request.
    async fn assert_serving(&mut self, after: &str) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "the server exited after {after}"
        );
        let shards = self.client().list_shards("audit").await;
        assert!(
            shards.is_ok_and(|shards| shards.len() == 2),
            "the server does not answer a signed request after {after}"
        );
    }

    async fn end_of_shard(&self, shard: u32) -> String {
        self.client()
            .get_cursor("audit", shard, CursorFrom::End)
            .await
            .unwrap()
    }
}

fn one_log_group() -> LogGroup {
    LogGroup {
        logs: vec![Log {
            time: 1,
            time_ns: None,
            contents: vec![("k".into(), "v".into())],
        }],
        ..LogGroup::default()
    }
}

const PUT_PATH: &str = "/logstores/audit/shards/0";

fn date(offset_secs: i64) -> String {
    let now = SystemTime::now();
    let shift = Duration::from_secs(offset_secs.unsigned_abs());
    let at = if offset_secs < 0 {
        now - shift
    } else {
        now + shift
    };
    httpdate::fmt_http_date(at)
}

#[tokio::test]
async fn forged_unsupported_and_stale_signatures_are_refused() {
    let mut server = ServerProcess::start().await;
    let list = || RawRequest::new("GET", "/logstores/audit/shards", Vec::new());

    let forged = list().with(
        "authorization",
        &format!("LOG {AK_ID}:AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
    );
    assert_eq!(
        server.send(&forged).await,
        (401, "SignatureNotMatch".into())
    );
    server.assert_serving("a forged signature").await;

    let unknown = list().with("authorization", "Bearer abc");
    assert_eq!(server.send(&unknown).await, (401, "Unauthorized".into()));
    server.assert_serving("an unknown scheme").await;

    let v4 = list().signed_v4(REGION);
    let authorization = v4.headers["authorization"].to_str().unwrap();
    let forged_v4 = v4.clone().with(
        "authorization",
        &format!(
            "{}{}",
            &authorization[..authorization.len() - 64],
            "0".repeat(64)
        ),
    );
    assert_eq!(
        server.send(&forged_v4).await,
        (401, "SignatureNotMatch".into())
    );
    server.assert_serving("a forged v4 signature").await;
    let unscoped = list().with(
        "authorization",
        &format!("SLS4-HMAC-SHA256 Credential={AK_ID}/20260101/{REGION}/sls/aliyun_v4_request"),
    );
    assert_eq!(server.send(&unscoped).await, (401, "Unauthorized".into()));
    server
        .assert_serving("a v4 header without a signature")
        .await;

    for (offset, what) in [(-20 * 60, "an expired date"), (20 * 60, "a future date")] {
        let stale = list().with("date", &date(offset)).signed();
        assert_eq!(
            server.send(&stale).await,
            (400, "RequestTimeExpired".into()),
            "{what}"
        );
        server.assert_serving(what).await;
    }
    let undated = list().with("date", "not a date").signed();
    assert_eq!(
        server.send(&undated).await,
        (400, "InvalidRequestTime".into())
    );
    server.assert_serving("an unparseable date").await;
}

/// `x-log-date` shifted by `offset_secs` from now, in the v4 format.
fn v4_date(offset_secs: i64) -> String {
    let parsed = httpdate::parse_http_date(&date(offset_secs)).unwrap();
    siem_forwarder::source::auth::v4::format_date(parsed)
}

#[tokio::test]
async fn v4_signatures_are_verified_with_region_date_and_body() {
    let mut server = ServerProcess::start().await;
    let put = || RawRequest::new("POST", PUT_PATH, one_log_group().to_bytes());

    let other_region = put().signed_v4("cn-shanghai");
    assert_eq!(
        server.send(&other_region).await,
        (401, "Unauthorized".into())
    );
    server
        .assert_serving("a v4 signature for another region")
        .await;

    for (offset, what) in [(-20 * 60, "an expired date"), (20 * 60, "a future date")] {
        let mut stale = put().signed_v4(REGION);
        stale.headers.insert(
            siem_forwarder::source::auth::v4::DATE_HEADER,
            v4_date(offset).parse().unwrap(),
        );
        assert_eq!(
            server.send(&stale).await,
            (400, "RequestTimeExpired".into()),
            "{what}"
        );
        server.assert_serving(what).await;
    }

    let mut altered = put().signed_v4(REGION);
    altered.body = b"\x0a\x03\x08\x02\x10\x00".to_vec();
    altered.headers.remove("content-md5");
    assert_eq!(
        server.send(&altered).await,
        (401, "SignatureNotMatch".into())
    );
    server
        .assert_serving("a body that does not match x-log-content-sha256")
        .await;
    assert_eq!(server.end_of_shard(0).await, "MA==", "nothing was stored");

    let mut good = put();
    good.headers.remove("content-md5");
    assert_eq!(
        server.send(&good.signed_v4(REGION)).await,
        (200, String::new())
    );
    assert_eq!(server.end_of_shard(0).await, "MQ==");
}

#[tokio::test]
async fn a_replayed_put_with_an_old_date_writes_nothing() {
    let mut server = ServerProcess::start().await;
    let captured = RawRequest::new("POST", PUT_PATH, one_log_group().to_bytes())
        .with("date", &date(-16 * 60))
        .signed();
    assert_eq!(
        server.send(&captured).await,
        (400, "RequestTimeExpired".into())
    );
    assert_eq!(server.end_of_shard(0).await, "MA==", "nothing was stored");
    server.assert_serving("a replay").await;

    // The same request, fresh, is stored.
    let fresh = RawRequest::new("POST", PUT_PATH, one_log_group().to_bytes()).signed();
    assert_eq!(server.send(&fresh).await, (200, String::new()));
    assert_eq!(server.end_of_shard(0).await, "MQ==");
}

#[tokio::test]
async fn bodies_that_do_not_match_their_headers_are_refused() {
    let mut server = ServerProcess::start().await;

    let mut unhashed = RawRequest::new("POST", PUT_PATH, one_log_group().to_bytes());
    unhashed.headers.remove("content-md5");
    assert_eq!(
        server.send(&unhashed.signed()).await,
        (400, "MissingContentMD5".into())
    );
    server.assert_serving("a body without content-md5").await;

    let mut altered = RawRequest::new("POST", PUT_PATH, one_log_group().to_bytes()).signed();
    altered.body = b"\x0a\x03\x08\x02\x10\x00".to_vec();
    assert_eq!(
        server.send(&altered).await,
        (400, "InvalidContentMD5".into())
    );
    server.assert_serving("a mismatched content-md5").await;

    let garbage = RawRequest::new("POST", PUT_PATH, b"\x0a\xff\xff\xff".to_vec()).signed();
    assert_eq!(server.send(&garbage).await, (400, "PostBodyInvalid".into()));
    server.assert_serving("garbage protobuf").await;

    let oversized = RawRequest::new("POST", PUT_PATH, vec![b'x'; MAX_BODY_BYTES + 1]).signed();
    assert_eq!(
        server.send(&oversized).await,
        (413, "PostBodyTooLarge".into())
    );
    server.assert_serving("an oversized body").await;

    let absurd = RawRequest::new("POST", PUT_PATH, vec![0u8; 100])
        .with("x-log-compresstype", "lz4")
        .with("x-log-bodyrawsize", "1000000000000000")
        .signed();
    assert_eq!(server.send(&absurd).await, (400, "ParameterInvalid".into()));
    server.assert_serving("an absurd x-log-bodyrawsize").await;
    assert_eq!(server.end_of_shard(0).await, "MA==", "nothing was stored");

    // Our own client still writes.
    let first_key = "0".repeat(32);
    server
        .client()
        .put_logs("audit", PutTarget::HashKey(&first_key), &one_log_group())
        .await
        .unwrap();
    assert_eq!(server.end_of_shard(0).await, "MQ==");
}

/// Reads until the server closes the connection (EOF or reset).
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(read @ 1..) = stream.read(&mut buffer).await {
        received.extend_from_slice(&buffer[..read]);
    }
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test]
async fn truncated_bodies_and_slow_headers_do_not_hold_the_server() {
    let mut server = ServerProcess::start().await;

    // A signed PutLogs whose body stops short of its Content-Length, then the client leaves.
    let request = RawRequest::new("POST", PUT_PATH, one_log_group().to_bytes()).signed();
    let mut head = format!("POST {PUT_PATH} HTTP/1.1\r\n");
    for (name, value) in &request.headers {
        head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    head.push_str("content-length: 1000\r\n\r\n");
    let mut truncated = TcpStream::connect(server.address()).await.unwrap();
    truncated.write_all(head.as_bytes()).await.unwrap();
    truncated.write_all(&request.body).await.unwrap();
    drop(truncated);
    server.assert_serving("a truncated body").await;
    assert_eq!(server.end_of_shard(0).await, "MA==", "nothing was stored");

    // Half a request line, then silence: closed after the header read timeout (2 s here).
    let mut slow = TcpStream::connect(server.address()).await.unwrap();
    slow.write_all(b"POST /logstores/au").await.unwrap();
    let answer = tokio::time::timeout(SOON, read_until_closed(&mut slow))
        .await
        .expect("the server closes a connection stuck in its headers");
    assert!(!answer.starts_with("HTTP/1.1 2"), "{answer}");
    server.assert_serving("a slow request line").await;
}

#[tokio::test]
async fn the_default_secret_and_path_like_names_are_refused_at_start() {
    let data = tempfile::tempdir().unwrap();
    let output = local_server_command(&data.path().join("data"))
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("--access-key-secret") && stderr.contains("SLS_AK_KEY"),
        "{stderr}"
    );

    for name in ["../x", "/abs", "a/b"] {
        for option in ["--logstore", "--project"] {
            let output = local_server_command(&data.path().join("data"))
                .args([option, name])
                .output()
                .await
                .unwrap();
            assert!(!output.status.success(), "{option} {name} was accepted");
        }
    }
    let created: Vec<_> = std::fs::read_dir(data.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert!(
        created.is_empty(),
        "nothing is created for a refused start: {created:?}"
    );
}

//! A real S3-compatible server for the object storage tests: moto (an independent Python
//! implementation of the S3 API) on a free loopback port, and boto3 to create buckets and read
//! back every object. Both live in `.venv/s3`, which `scripts/setup-s3.sh` creates; the helper
//! runs that script itself when the venv is missing, so the tests never skip.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use siem_forwarder::source::api::cursor::CursorFrom;
use siem_forwarder::source::Client;

use super::{put_audit_logs, repo_root, TestServer};

const TOOL: &str = "tests/python/s3_tool.py";

/// The venv's interpreter (`S3_PYTHON` overrides), installing moto first when missing.
pub fn s3_python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            if let Some(python) = std::env::var_os("S3_PYTHON") {
                return PathBuf::from(python);
            }
            let setup = std::process::Command::new(repo_root().join("scripts/setup-s3.sh"))
                .status()
                .expect("run scripts/setup-s3.sh");
            assert!(setup.success(), "scripts/setup-s3.sh failed: {setup}");
            repo_root().join(".venv/s3/bin/python")
        })
        .clone()
}

/// One S3 object as boto3 read it.
#[derive(Debug, Clone)]
pub struct StoredObject {
    /// Object name.
    pub key: String,
    /// Stored (compressed) size.
    pub size: u64,
    /// `Content-Type` it was stored with.
    pub content_type: String,
    /// Its logs, decompressed and parsed.
    pub logs: Vec<Value>,
}

/// A moto server, stopped when dropped.
pub struct S3Server {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// moto's standard error: one line per request (method, path, status).
    log: tempfile::NamedTempFile,
    _child: Child,
}

impl S3Server {
    /// Starts moto on a free port.
    pub async fn start() -> Self {
        let log = tempfile::NamedTempFile::new().expect("moto log file");
        let mut child = Command::new(s3_python())
            .arg(repo_root().join(TOOL))
            .arg("serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log.reopen().expect("open moto log"))
            .kill_on_drop(true)
            .spawn()
            .expect("start moto");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let port = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.expect("read moto output") {
                if let Some(port) = line.strip_prefix("PORT ") {
                    return port.trim().parse::<u16>().expect("port number");
                }
            }
            panic!("moto exited before it listened");
        })
        .await
        .expect("moto listens within 60 s");
        Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
            _child: child,
        }
    }

    /// The port moto listens on.
    pub fn port(&self) -> u16 {
        let port = self
            .endpoint
            .rsplit(':')
            .next()
            .expect("endpoint has a port");
        port.parse().expect("port number")
    }

    /// The requests moto served so far, one line each, as its HTTP server logs them:
    /// `127.0.0.1 - - [date] "PUT /path HTTP/1.1" 200 -`.
    pub fn request_log(&self) -> String {
        std::fs::read_to_string(self.log.path()).expect("read moto log")
    }

    async fn tool(&self, args: &[&str]) -> Vec<u8> {
        self.tool_with_input(args, &[]).await
    }

    async fn tool_with_input(&self, args: &[&str], input: &[u8]) -> Vec<u8> {
        use tokio::io::AsyncWriteExt as _;
        let mut child = Command::new(s3_python())
            .arg(repo_root().join(TOOL))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run s3_tool.py");
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(input).await.expect("write to s3_tool.py");
        drop(stdin);
        let output = child.wait_with_output().await.expect("run s3_tool.py");
        assert!(
            output.status.success(),
            "s3_tool.py {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    }

    /// Creates `bucket`.
    pub async fn create_bucket(&self, bucket: &str) {
        self.tool(&["create", &self.endpoint, bucket]).await;
    }

    /// boto3's `head_object` of `key`: `etag`, `size`, `metadata` (the `x-amz-meta-*`
    /// pairs), `storage_class`, `sse` and `last_modified`.
    pub async fn head(&self, bucket: &str, key: &str) -> Value {
        let head = self.tool(&["head", &self.endpoint, bucket, key]).await;
        serde_json::from_slice(&head).expect("head is JSON")
    }

    /// Stores `body` as `key` with boto3.
    pub async fn put(&self, bucket: &str, key: &str, body: &[u8]) {
        self.tool_with_input(&["put", &self.endpoint, bucket, key], body)
            .await;
    }

    /// Every object of `bucket`, read and decompressed by boto3 and Python's gzip.
    pub async fn objects(&self, bucket: &str) -> Vec<StoredObject> {
        self.dump(&["dump", &self.endpoint, bucket]).await
    }

    /// Like [`S3Server::objects`], with CSV objects read as rows (arrays of strings) by
    /// Python's csv module with `delimiter` and `quote`.
    pub async fn csv_objects(
        &self,
        bucket: &str,
        delimiter: &str,
        quote: &str,
    ) -> Vec<StoredObject> {
        self.dump(&["dump", &self.endpoint, bucket, delimiter, quote])
            .await
    }

    async fn dump(&self, args: &[&str]) -> Vec<StoredObject> {
        let dump = self.tool(args).await;
        let objects: Vec<Value> = serde_json::from_slice(&dump).expect("dump is JSON");
        objects
            .into_iter()
            .map(|object| StoredObject {
                key: object["key"].as_str().expect("key").to_owned(),
                size: object["size"].as_u64().expect("size"),
                content_type: object["content_type"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                logs: object["logs"].as_array().expect("logs").clone(),
            })
            .collect()
    }
}

/// The bucket the archive tests write to.
pub const BUCKET: &str = "archive";

/// One test's world: a moto server (with the bucket created when `bucket`), an embedded log
/// service with one logstore `audit` of `shards` shards holding `logs` generated logs in groups
/// of `group_size` (from `seed`), the shards' end cursors and a scratch directory.
pub struct World {
    /// The S3 server.
    pub s3: S3Server,
    /// The log service.
    pub server: TestServer,
    /// A client of the log service.
    pub client: Client,
    /// The end cursor of each shard.
    pub ends: Vec<String>,
    /// Scratch directory.
    pub dir: tempfile::TempDir,
}

impl World {
    /// Starts the servers and puts the logs.
    pub async fn start(
        bucket: bool,
        shards: u32,
        logs: usize,
        group_size: usize,
        seed: u64,
    ) -> Self {
        let s3 = S3Server::start().await;
        if bucket {
            s3.create_bucket(BUCKET).await;
        }
        let server = TestServer::start(&[("audit", shards)]).await;
        let client = server.client();
        put_audit_logs(&client, "audit", logs, group_size, seed).await;
        let ends = shard_ends(&client, shards).await;
        Self {
            s3,
            server,
            client,
            ends,
            dir: tempfile::tempdir().unwrap(),
        }
    }
}

/// The `[[sinks]]` entry of the archive (files sealed after 3 s or 500 logs), with extra
/// lines.
pub fn archive_sink(s3: &S3Server, extra: &str) -> String {
    archive_sink_sealed(s3, "max_age = \"3s\"\nmax_events = 500", extra)
}

/// The `[[sinks]]` entry of the archive with the seal rules `seal`, and extra lines.
pub fn archive_sink_sealed(s3: &S3Server, seal: &str, extra: &str) -> String {
    archive_sink_at(&s3.endpoint, seal, extra)
}

/// The `[[sinks]]` entry of the archive at `endpoint` with the seal rules `seal`, and extra
/// lines.
pub fn archive_sink_at(endpoint: &str, seal: &str, extra: &str) -> String {
    format!(
        "\n[[sinks]]\ntype = \"object_storage\"\nname = \"archive\"\nendpoint = \"{endpoint}\"\n\
         region = \"us-east-1\"\nbucket = \"{BUCKET}\"\naccess_key_id = \"test\"\n\
         secret_access_key = \"test\"\n{seal}\n\
         retry = {{ initial = \"200ms\", max = \"1s\" }}\n{extra}\n\
         [telemetry]\nlisten = \"127.0.0.1:0\"\n"
    )
}

/// The end cursor of each shard of `audit`.
pub async fn shard_ends(client: &Client, shards: u32) -> Vec<String> {
    futures::future::try_join_all(
        (0..shards).map(|shard| client.get_cursor("audit", shard, CursorFrom::End)),
    )
    .await
    .unwrap()
}

/// True when `group`'s checkpoint of every shard is its end.
pub async fn checkpoints_at(client: &Client, group: &str, ends: &[String]) -> bool {
    let Ok(checkpoints) = client.get_checkpoints("audit", group).await else {
        return false;
    };
    checkpoints.len() == ends.len()
        && checkpoints
            .iter()
            .all(|c| ends.get(c.shard as usize) == Some(&c.checkpoint))
}

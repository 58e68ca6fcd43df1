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

use super::repo_root;

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
    /// The access key (id, secret) the server accepts; any key while signatures go unchecked.
    pub keys: (String, String),
    /// moto's standard error: one line per request (method, path, status).
    log: tempfile::NamedTempFile,
    _child: Child,
}

impl S3Server {
    /// Starts moto on a free port, accepting any signature.
    pub async fn start() -> Self {
        Self::launch(false).await
    }

    /// Starts moto on a free port with the bucket [`super::archive_world::BUCKET`] and an IAM
    /// user allowed to write and read it, checking the SigV4 signature of every request (and
    /// the key's policy) from then on; [`S3Server::keys`] are the user's key.
    pub async fn start_with_auth() -> Self {
        Self::launch(true).await
    }

    async fn launch(auth: bool) -> Self {
        let log = tempfile::NamedTempFile::new().expect("moto log file");
        let mut child = Command::new(s3_python())
            .arg(repo_root().join(TOOL))
            .arg("serve")
            .args(auth.then_some(super::archive_world::BUCKET))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log.reopen().expect("open moto log"))
            .kill_on_drop(true)
            .spawn()
            .expect("start moto");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let (port, keys) = tokio::time::timeout(Duration::from_secs(60), async {
            let mut port = None;
            while let Some(line) = lines.next_line().await.expect("read moto output") {
                if let Some(number) = line.strip_prefix("PORT ") {
                    port = Some(number.trim().parse::<u16>().expect("port number"));
                    if !auth {
                        break;
                    }
                } else if let Some(key) = line.strip_prefix("KEY ") {
                    let (id, secret) = key.trim().split_once(' ').expect("KEY <id> <secret>");
                    return (
                        port.expect("PORT before KEY"),
                        (id.to_owned(), secret.to_owned()),
                    );
                }
            }
            match port {
                Some(port) => (port, ("test".to_owned(), "test".to_owned())),
                None => panic!("moto exited before it listened"),
            }
        })
        .await
        .expect("moto listens within 60 s");
        Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            keys,
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
            .env("AWS_ACCESS_KEY_ID", &self.keys.0)
            .env("AWS_SECRET_ACCESS_KEY", &self.keys.1)
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

    /// Every `.parquet` object of `bucket` as pyarrow reads it (`objects`: key, content type,
    /// schema, rows, row groups, codecs, created_by), and DuckDB's `count(*)` over them all
    /// (`duckdb_count`).
    pub async fn parquet(&self, bucket: &str) -> Value {
        let dump = self.tool(&["parquet", &self.endpoint, bucket]).await;
        serde_json::from_slice(&dump).expect("parquet dump is JSON")
    }

    /// The rows of every `.csv.gz` object of `bucket` as DuckDB's `read_csv` reads them (a
    /// header row, every column text, `null_value` as null), each an object by column name.
    pub async fn duckdb_csv(
        &self,
        bucket: &str,
        delimiter: &str,
        quote: &str,
        null_value: &str,
    ) -> Vec<Value> {
        let args = [
            "duckdb-csv",
            &self.endpoint,
            bucket,
            delimiter,
            quote,
            null_value,
        ];
        let dump = self.tool(&args).await;
        serde_json::from_slice(&dump).expect("duckdb dump is JSON")
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

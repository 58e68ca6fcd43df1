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
    _child: Child,
}

impl S3Server {
    /// Starts moto on a free port.
    pub async fn start() -> Self {
        let mut child = Command::new(s3_python())
            .arg(repo_root().join(TOOL))
            .arg("serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
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
            _child: child,
        }
    }

    async fn tool(&self, args: &[&str]) -> Vec<u8> {
        let output = Command::new(s3_python())
            .arg(repo_root().join(TOOL))
            .args(args)
            .output()
            .await
            .expect("run s3_tool.py");
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

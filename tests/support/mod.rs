//! Helpers shared by the integration tests: an in-process local log service on
//! `127.0.0.1:0`, the official Python SDK's interpreter, and waiting on conditions.
#![allow(dead_code)] // each test binary uses a different subset

pub mod archive_world;
pub mod forwarder;
pub mod s3;
pub mod s3_fault_proxy;

use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, HeaderValue};
use siem_forwarder::common::shutdown::CancellationToken;
use siem_forwarder::common::Secret;
use siem_forwarder::local_server::{
    ConnectionLimits, DeniedAction, LocalServer, LocalServerConfig, LogstoreSpec, StsConfig,
};
use siem_forwarder::source::auth::{self, SignedRequest};
use siem_forwarder::source::{Client, ClientConfig};

pub const PROJECT: &str = "test-project";
pub const AK_ID: &str = "test-ak-id";
pub const AK_SECRET: &str = "test-ak-secret";
/// The region the test server answers as (signature v4 is scoped to it).
pub const REGION: &str = "cn-hangzhou";

/// A local log service running on a tokio task, stored in a temporary directory.
pub struct TestServer {
    pub address: SocketAddr,
    pub data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
    logstores: Vec<(String, u32)>,
    pub max_body_bytes: usize,
    /// PullLogs calls each shard answers per second (unlimited when `None`).
    pub read_qps_per_shard: Option<NonZeroU32>,
    /// Actions refused as a RAM policy would refuse them.
    pub denied_actions: Vec<DeniedAction>,
    /// Temporary credentials the server hands out (none when `None`).
    pub sts: Option<StsConfig>,
    /// Connections served at once.
    pub max_connections: usize,
}

impl TestServer {
    /// Starts a server with the given `(logstore, shards)` in [`PROJECT`].
    pub async fn start(logstores: &[(&str, u32)]) -> Self {
        Self::start_with_limit(
            logstores,
            siem_forwarder::local_server::DEFAULT_MAX_BODY_BYTES,
        )
        .await
    }

    /// Like [`TestServer::start`], throttling each shard to `per_second` pulls a second.
    pub async fn start_throttled(logstores: &[(&str, u32)], per_second: u32) -> Self {
        let mut server = Self::start(logstores).await;
        server.read_qps_per_shard = NonZeroU32::new(per_second);
        server.restart().await;
        server
    }

    /// Like [`TestServer::start`], handing out temporary credentials for `role` that live
    /// `ttl` (instance metadata and `AssumeRoleWithOIDC` on the server's address).
    pub async fn start_with_sts(logstores: &[(&str, u32)], role: &str, ttl: Duration) -> Self {
        let mut server = Self::start(logstores).await;
        server.sts = Some(StsConfig {
            role: role.into(),
            ttl,
        });
        server.restart().await;
        server
    }

    /// Like [`TestServer::start`], serving `max_connections` connections at once.
    pub async fn start_with_connections(logstores: &[(&str, u32)], max_connections: usize) -> Self {
        let mut server = Self::start(logstores).await;
        server.max_connections = max_connections;
        server.restart().await;
        server
    }

    /// Like [`TestServer::start`] with a request body limit.
    pub async fn start_with_limit(logstores: &[(&str, u32)], max_body_bytes: usize) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut server = Self {
            address: "127.0.0.1:0".parse().unwrap(),
            data_dir: temp.path().to_owned(),
            _temp: Some(temp),
            shutdown: CancellationToken::new(),
            task: None,
            logstores: logstores.iter().map(|(n, s)| (n.to_string(), *s)).collect(),
            max_body_bytes,
            read_qps_per_shard: None,
            denied_actions: Vec::new(),
            sts: None,
            max_connections: ConnectionLimits::default().max_connections,
        };
        server.launch("127.0.0.1:0".parse().unwrap()).await;
        server
    }

    async fn launch(&mut self, bind: SocketAddr) {
        let config = LocalServerConfig {
            data_dir: self.data_dir.clone(),
            access_key_id: AK_ID.into(),
            access_key_secret: Secret::new(AK_SECRET),
            region: REGION.into(),
            max_body_bytes: self.max_body_bytes,
            logstores: self
                .logstores
                .iter()
                .map(|(logstore, shards)| LogstoreSpec {
                    project: PROJECT.into(),
                    logstore: logstore.clone(),
                    shards: *shards,
                })
                .collect(),
        };
        let server = LocalServer::open(config).expect("open local server");
        server.limit_reads_per_shard(self.read_qps_per_shard);
        server.deny_actions(&self.denied_actions);
        server.issue_temporary_credentials(self.sts.clone());
        let listener = tokio::net::TcpListener::bind(bind).await.expect("bind");
        self.address = listener.local_addr().unwrap();
        self.shutdown = CancellationToken::new();
        let shutdown = self.shutdown.clone();
        let limits = ConnectionLimits {
            max_connections: self.max_connections,
            ..ConnectionLimits::default()
        };
        self.task = Some(tokio::spawn(async move {
            server
                .run_with(listener, async move { shutdown.cancelled().await }, limits)
                .await
                .expect("local server run");
        }));
    }

    /// Stops the server and waits until it is gone.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
    }

    /// Stops the server and starts it again on the same data directory and port.
    pub async fn restart(&mut self) {
        self.stop().await;
        let address = self.address;
        self.launch(address).await;
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// A client of [`PROJECT`] with the right key.
    pub fn client(&self) -> Client {
        self.client_with(PROJECT, AK_SECRET)
    }

    /// A client of `project` signing with `secret`, without retries.
    pub fn client_with(&self, project: &str, secret: &str) -> Client {
        client_for(&self.endpoint(), project, secret)
    }
}

/// A client of the server at `endpoint` for `project`, signing as [`AK_ID`] with `secret`,
/// without retries.
pub fn client_for(endpoint: &str, project: &str, secret: &str) -> Client {
    let mut config = ClientConfig::new(endpoint, project, AK_ID, Secret::new(secret));
    config.max_attempts = 1;
    Client::new(config).expect("client")
}

/// Like [`client_for`], signing with signature v4 for [`REGION`].
pub fn v4_client_for(endpoint: &str, project: &str, secret: &str) -> Client {
    let mut config = ClientConfig::new(endpoint, project, AK_ID, Secret::new(secret));
    config.max_attempts = 1;
    config.signing = auth::Signing::V4 {
        region: REGION.into(),
    };
    Client::new(config).expect("client")
}

/// A request built (and signed) by hand, to send what the client never would.
#[derive(Debug, Clone)]
pub struct RawRequest {
    pub method: &'static str,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl RawRequest {
    /// An unsigned request to [`PROJECT`] with the headers the SDKs send, dated now, and a
    /// `Content-MD5` when there is a body.
    pub fn new(method: &'static str, path: &str, body: Vec<u8>) -> Self {
        let mut headers = HeaderMap::new();
        let mut set = |name: &'static str, value: &str| {
            headers.insert(name, HeaderValue::from_str(value).unwrap());
        };
        set("date", &httpdate::fmt_http_date(SystemTime::now()));
        set("x-log-apiversion", "0.6.0");
        set("x-log-signaturemethod", "hmac-sha1");
        set("x-log-bodyrawsize", &body.len().to_string());
        set("content-type", "application/x-protobuf");
        set("host", &format!("{PROJECT}.127.0.0.1"));
        if !body.is_empty() {
            set("content-md5", &auth::content_md5(&body));
        }
        Self {
            method,
            path: path.to_owned(),
            headers,
            body,
        }
    }

    /// Sets a header (before signing, for it to be covered).
    pub fn with(mut self, name: &'static str, value: &str) -> Self {
        self.headers
            .insert(name, HeaderValue::from_str(value).unwrap());
        self
    }

    /// Signs the request as it stands with [`AK_ID`] and [`AK_SECRET`].
    pub fn signed(self) -> Self {
        let authorization = auth::authorization(
            AK_ID,
            AK_SECRET,
            &SignedRequest {
                method: self.method,
                path: &self.path,
                query: &[],
                headers: &self.headers,
            },
        );
        self.with("authorization", &authorization)
    }

    /// Signs the request as it stands with signature v4 for `region`, as [`AK_ID`] with
    /// [`AK_SECRET`]: adds `x-log-date` (now) and the body's `x-log-content-sha256` first.
    pub fn signed_v4(self, region: &str) -> Self {
        let now = auth::v4::format_date(SystemTime::now());
        let digest = auth::v4::content_sha256(&self.body);
        let request = self
            .with(auth::v4::DATE_HEADER, &now)
            .with(auth::v4::CONTENT_SHA256_HEADER, &digest);
        let authorization = auth::v4::authorization(
            AK_ID,
            AK_SECRET,
            region,
            &SignedRequest {
                method: request.method,
                path: &request.path,
                query: &[],
                headers: &request.headers,
            },
        );
        request.with("authorization", &authorization)
    }

    /// Sends it to `endpoint`: the status and the JSON body (null when it is not JSON).
    pub async fn send(&self, endpoint: &str) -> (u16, serde_json::Value) {
        let response = reqwest::Client::new()
            .request(
                self.method.parse().unwrap(),
                format!("{endpoint}{}", self.path),
            )
            .headers(self.headers.clone())
            .body(self.body.clone())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap();
        (status, serde_json::from_slice(&body).unwrap_or_default())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The repository root.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Python interpreter of the virtualenv with the official SDK (made by
/// `scripts/setup-python-sdk.sh`, which `scripts/test.sh` runs).
pub fn sdk_python() -> PathBuf {
    let python = std::env::var_os("SLS_SDK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/sls-sdk/bin/python"));
    assert!(
        python.exists(),
        "the official Python SDK is not installed at {}; run scripts/test.sh (or scripts/setup-python-sdk.sh)",
        python.display()
    );
    python
}

/// Environment that makes the Python SDK reach `server` through `HTTP_PROXY`, and the
/// endpoint to give it: a made-up host name on the server's port.
pub fn sdk_proxy_env(server: &TestServer) -> (String, Vec<(&'static str, String)>) {
    let proxy = format!("http://{}", server.address);
    let endpoint = format!("sls.test:{}", server.address.port());
    let env = vec![
        ("HTTP_PROXY", proxy.clone()),
        ("http_proxy", proxy),
        ("NO_PROXY", String::new()),
        ("no_proxy", String::new()),
    ];
    (endpoint, env)
}

/// Polls `condition` every 100 ms until it returns true (then true) or `timeout` passes
/// (then false).
pub async fn poll_until<F, Fut>(timeout: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if condition().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Like [`poll_until`], failing the test on timeout.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    assert!(
        poll_until(timeout, condition).await,
        "timed out after {timeout:?} waiting for {what}"
    );
}

/// Writes `count` generated audit logs, spread evenly over the shards of `logstore` in
/// groups of `group_size`, stamped `time`; returns nothing until every write succeeded.
pub async fn put_audit_logs(
    client: &Client,
    logstore: &str,
    count: usize,
    group_size: usize,
    seed: u64,
) {
    put_audit_logs_into(client, logstore, None, count, group_size, seed).await;
}

/// Like [`put_audit_logs`], into shard `only` of `logstore` alone when it is `Some`.
pub async fn put_audit_logs_into(
    client: &Client,
    logstore: &str,
    only: Option<u32>,
    count: usize,
    group_size: usize,
    seed: u64,
) {
    use siem_forwarder::producer::generator::AuditLogGenerator;
    use siem_forwarder::source::api::put_logs::PutTarget;
    let mut shards = client.list_shards(logstore).await.expect("list shards");
    shards.retain(|shard| only.is_none_or(|only| shard.shard_id == only));
    assert!(!shards.is_empty(), "{logstore} has no shard {only:?}");
    let mut generator = AuditLogGenerator::new(seed);
    let mut written = 0;
    let mut index = 0;
    while written < count {
        let size = group_size.min(count - written);
        let shard = &shards[index % shards.len()];
        let group = generator.group(size, 1_700_000_000);
        client
            .put_logs(
                logstore,
                PutTarget::HashKey(&shard.inclusive_begin_key),
                &group,
            )
            .await
            .expect("put logs");
        written += size;
        index += 1;
    }
}

/// GETs `url`: the status code and the body, or `(0, "")` when the request fails.
pub async fn http_get(url: &str) -> (u16, String) {
    match reqwest::get(url).await {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        }
        Err(_) => (0, String::new()),
    }
}

/// The sum of the Prometheus samples in `metrics` whose line starts with `prefix`.
pub fn metric_sum(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Shares a value between a test and the closures it polls with.
pub fn shared<T>(value: T) -> Arc<std::sync::Mutex<T>> {
    Arc::new(std::sync::Mutex::new(value))
}

/// Temporary credentials as the local server's instance metadata or `AssumeRoleWithOIDC`
/// hand them out (see [`TestServer::start_with_sts`]).
#[derive(Debug, Clone)]
pub struct Temporary {
    pub id: String,
    pub secret: String,
    pub token: String,
}

impl Temporary {
    /// Reads `AccessKeyId`, `AccessKeySecret` and `SecurityToken` from a metadata answer or
    /// the `Credentials` of an `AssumeRoleWithOIDC` answer.
    pub fn from_json(value: &serde_json::Value) -> Self {
        let field = |name: &str| {
            value[name]
                .as_str()
                .unwrap_or_else(|| panic!("no {name} in {value}"))
                .to_owned()
        };
        Self {
            id: field("AccessKeyId"),
            secret: field("AccessKeySecret"),
            token: field("SecurityToken"),
        }
    }

    /// A client of [`PROJECT`] signing with these credentials and `signing`, sending `token`
    /// as the security token (none when `None`), without retries.
    pub fn client_with_token(
        &self,
        endpoint: &str,
        signing: auth::Signing,
        token: Option<&str>,
    ) -> Client {
        let mut config = ClientConfig::new(endpoint, PROJECT, &self.id, Secret::new(&self.secret));
        config.security_token = token.map(Secret::new);
        config.signing = signing;
        config.max_attempts = 1;
        Client::new(config).expect("client")
    }

    /// Like [`Temporary::client_with_token`] with their own token.
    pub fn client(&self, endpoint: &str, signing: auth::Signing) -> Client {
        self.client_with_token(endpoint, signing, Some(&self.token))
    }
}

/// Fresh credentials for `role` from the instance metadata of the server at `endpoint`
/// (without a metadata session token).
pub async fn metadata_credentials(endpoint: &str, role: &str) -> Temporary {
    let url = format!("{endpoint}/latest/meta-data/ram/security-credentials/{role}");
    let response = reqwest::get(&url).await.expect("the metadata answers");
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    assert_eq!(status, 200, "{url}: {body}");
    Temporary::from_json(&serde_json::from_str(&body).expect("metadata json"))
}

/// Runs `siem-forwarder status ARGS` (with `TEST_AK_SECRET` set, for configurations that name
/// it); its stdout, failing the test on a non-zero exit.
pub async fn forwarder_status(args: &[&str]) -> String {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_siem-forwarder"))
        .arg("status")
        .args(args)
        .env("TEST_AK_SECRET", AK_SECRET)
        .output()
        .await
        .expect("run status");
    assert!(
        output.status.success(),
        "status failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("status prints utf-8")
}

/// The endpoint of a `local-server` child started with `--listen 127.0.0.1:0` and a piped
/// stdout, from the `listening on ADDRESS` line it prints first (within a minute).
pub async fn local_server_endpoint(child: &mut tokio::process::Child) -> String {
    use tokio::io::AsyncBufReadExt as _;
    let stdout = child.stdout.take().expect("the server's stdout is piped");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the server prints its address")
        .unwrap()
        .expect("stdout open until the address is printed");
    let address = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line `{line}`"));
    format!("http://{address}")
}

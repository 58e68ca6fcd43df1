//! An embedded, SLS-compatible log service: the default source for trying the forwarder
//! without a cloud account, and the peer of the tests. It stores shards and checkpoints in a
//! data directory, verifies request signatures against one AccessKey (and, when given a role,
//! the temporary credentials it issues itself: see [`LocalServer::issue_temporary_credentials`]),
//! and runs consumer-group assignment with the group timeout and release-before-grant hand-over.
//!
//! Start it with [`LocalServer::open`] and [`LocalServer::run`] (or [`LocalServer::run_with`]
//! for other [`ConnectionLimits`]).
//!
//! The server mirrors the client (`source::api`): `routes` reads and authenticates a request
//! and its table picks the handler; `api/*` holds one file per API operation; `state/*` is the
//! object tree they act on (`registry`: projects and logstores, `logstore`: a logstore's
//! shards, `groups`: its consumer groups and checkpoints), over `store` (shard files) and
//! `assignment` (which consumer holds which shard). `sts` issues temporary credentials,
//! `deny` and `throttle` imitate RAM policies and read quotas.

mod api;
mod assignment;
mod deny;
mod routes;
mod state;
pub mod store;
mod sts;
mod throttle;

use std::future::Future;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::common::Secret;
pub use deny::{DeniedAction, UnknownAction};
pub use routes::decode_query;
pub use state::{valid_name, Checkpoint, Failure};
pub use store::StoreError;
pub use sts::{StsConfig, MAX_STS_TTL};

/// Default upper bound of a request body (PutLogs), in bytes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 << 20;

/// Default number of connections served at once; further clients wait to be accepted.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

/// Default time a client has to send a request's headers, idle keep-alive time included.
/// Longer than the forwarder's own client keeps an idle connection (50 s), so that client
/// closes first and never reuses a connection the server is closing.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Bounds on the connections the server keeps, so slow or numerous clients cannot exhaust
/// its tasks and file descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once; the next client is accepted when one closes.
    pub max_connections: usize,
    /// A connection that does not deliver a request's headers within this time (an idle
    /// keep-alive connection included) is closed.
    pub header_read_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
        }
    }
}

/// A logstore to create at start-up when it does not exist yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogstoreSpec {
    /// Project name.
    pub project: String,
    /// Logstore name.
    pub logstore: String,
    /// Number of shards for a new logstore.
    pub shards: u32,
}

/// The region the local server answers as unless told otherwise.
pub const DEFAULT_REGION: &str = "cn-hangzhou";

/// How to run the local server.
#[derive(Debug, Clone)]
pub struct LocalServerConfig {
    /// Where shards and checkpoints are stored.
    pub data_dir: PathBuf,
    /// The one AccessKey id requests must be signed with.
    pub access_key_id: String,
    /// Its secret.
    pub access_key_secret: Secret,
    /// The region this service answers as: a v4 signature must be scoped to it, as the real
    /// service requires the region of its endpoint. Default [`DEFAULT_REGION`].
    pub region: String,
    /// Largest accepted request body in bytes; larger bodies get 413 `PostBodyTooLarge`.
    pub max_body_bytes: usize,
    /// Logstores to create when missing.
    pub logstores: Vec<LogstoreSpec>,
}

/// The embedded log service.
#[derive(Debug)]
pub struct LocalServer {
    config: LocalServerConfig,
    projects: state::Projects,
    requests: AtomicU64,
    read_quota: throttle::ReadQuota,
    denials: deny::Denials,
    sts: RwLock<Option<Arc<sts::Issuer>>>,
}

impl LocalServer {
    /// Opens the data directory (creating it and the configured logstores when missing).
    ///
    /// # Errors
    ///
    /// Fails when the data directory cannot be read or written.
    pub fn open(config: LocalServerConfig) -> Result<Arc<Self>, StoreError> {
        let projects = state::Projects::open(&config.data_dir)?;
        for spec in &config.logstores {
            projects
                .ensure_project(&spec.project)?
                .ensure_logstore(&spec.logstore, spec.shards)?;
        }
        Ok(Arc::new(Self {
            config,
            projects,
            requests: AtomicU64::new(0),
            read_quota: throttle::ReadQuota::default(),
            denials: deny::Denials::default(),
            sts: RwLock::new(None),
        }))
    }

    /// Throttles reads as the real log service does: past `per_second` PullLogs calls in a
    /// second, a shard answers 403 `ShardReadQuotaExceed`. `None` (the default) never throttles.
    pub fn limit_reads_per_shard(&self, per_second: Option<NonZeroU32>) {
        self.read_quota.set_limit(per_second);
    }

    /// Denies `actions` as a RAM policy would: 401 `Unauthorized`, "denied by sts or ram".
    /// Empty (the default) denies nothing.
    pub fn deny_actions(&self, actions: &[DeniedAction]) {
        self.denials.set(actions);
    }

    /// Hands out temporary credentials for `config.role` on the server's own address, as the
    /// ECS instance metadata service and STS `AssumeRoleWithOIDC` do, and accepts requests
    /// signed with them until they expire (then 401 `SecurityTokenExpired`). Each call starts a
    /// new issuer (credentials issued before are refused from then on); `None` (the default)
    /// turns it off.
    pub fn issue_temporary_credentials(&self, config: Option<StsConfig>) {
        *self.sts.write().expect("sts lock") =
            config.map(|config| Arc::new(sts::Issuer::new(config)));
    }

    fn sts(&self) -> Option<Arc<sts::Issuer>> {
        self.sts.read().expect("sts lock").clone()
    }

    fn next_request_id(&self) -> String {
        format!(
            "LOCAL{:016X}",
            self.requests.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Serves HTTP/1.1 (keep-alive) on `listener` with the default [`ConnectionLimits`]
    /// until `shutdown` completes, then stops accepting and lets open connections finish
    /// their current request.
    ///
    /// # Errors
    ///
    /// Returns an error only if accepting fails persistently.
    pub async fn run(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        self.run_with(listener, shutdown, ConnectionLimits::default())
            .await
    }

    /// Like [`LocalServer::run`] with the given limits.
    ///
    /// # Errors
    ///
    /// Returns an error only if accepting fails persistently.
    pub async fn run_with(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
        limits: ConnectionLimits,
    ) -> std::io::Result<()> {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
        tokio::pin!(shutdown);
        let mut accept_errors = 0u32;
        loop {
            // Wait for a free slot before accepting, so clients over the cap wait in the
            // listen backlog instead of costing a task each.
            let permit = tokio::select! {
                permit = connections.clone().acquire_owned() => {
                    permit.expect("the connection semaphore is never closed")
                }
                () = &mut shutdown => break,
            };
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => {
                        accept_errors = 0;
                        accepted
                    }
                    Err(error) => {
                        // Running out of file descriptors is transient; back off and retry.
                        accept_errors += 1;
                        tracing::warn!(%error, "local server accept failed");
                        if accept_errors > 100 {
                            return Err(error);
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(10 * u64::from(accept_errors))).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let server = self.clone();
            let service = service_fn(move |request| {
                let server = server.clone();
                async move { Ok::<_, std::convert::Infallible>(server.handle(request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .serve_connection(TokioIo::new(stream), service);
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "local server connection ended with an error");
                }
                drop(permit);
            });
        }
        drop(listener);
        tokio::select! {
            () = graceful.shutdown() => {}
            () = tokio::time::sleep(std::time::Duration::from_secs(5)) => {
                tracing::warn!("local server connections still open after 5s; closing");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// Serves an empty data directory with `limits` until the returned sender is dropped.
    async fn serve(
        limits: ConnectionLimits,
    ) -> (
        std::net::SocketAddr,
        tempfile::TempDir,
        tokio::sync::oneshot::Sender<()>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let server = LocalServer::open(LocalServerConfig {
            data_dir: dir.path().to_owned(),
            access_key_id: "id".into(),
            access_key_secret: Secret::new("secret"),
            region: DEFAULT_REGION.into(),
            max_body_bytes: 1 << 20,
            logstores: Vec::new(),
        })
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run_with(
            listener,
            async move {
                let _ = stopped.await;
            },
            limits,
        ));
        (address, dir, stop)
    }

    const REQUEST: &[u8] =
        b"GET /logstores HTTP/1.1\r\nHost: p.example\r\nConnection: close\r\n\r\n";

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
    async fn a_connection_that_never_finishes_its_headers_is_closed() {
        let limits = ConnectionLimits {
            max_connections: 4,
            header_read_timeout: Duration::from_millis(300),
        };
        let (address, _dir, _stop) = serve(limits).await;
        let mut slow = TcpStream::connect(address).await.unwrap();
        slow.write_all(b"GET /logst").await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(30), read_until_closed(&mut slow))
            .await
            .expect("the server closes a connection stuck in its headers");
        assert!(!answer.starts_with("HTTP/1.1 2"), "{answer}");
        // Still serving.
        let mut next = TcpStream::connect(address).await.unwrap();
        next.write_all(REQUEST).await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(30), read_until_closed(&mut next))
            .await
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    }

    #[tokio::test]
    async fn connections_over_the_cap_wait_for_a_free_slot() {
        let limits = ConnectionLimits {
            max_connections: 1,
            header_read_timeout: Duration::from_secs(600),
        };
        let (address, _dir, _stop) = serve(limits).await;
        let mut holder = TcpStream::connect(address).await.unwrap();
        holder.write_all(b"GET /logst").await.unwrap();
        let mut waiting = TcpStream::connect(address).await.unwrap();
        waiting.write_all(REQUEST).await.unwrap();
        let mut buffer = [0u8; 64];
        assert!(
            tokio::time::timeout(Duration::from_millis(500), waiting.read(&mut buffer))
                .await
                .is_err(),
            "the second connection is not served while the first holds the only slot"
        );
        drop(holder);
        let answer = tokio::time::timeout(Duration::from_secs(30), read_until_closed(&mut waiting))
            .await
            .expect("served once the slot is free");
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    }
}

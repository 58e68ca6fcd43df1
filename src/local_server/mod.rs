//! An embedded, SLS-compatible log service: the default source for trying the forwarder
//! without a cloud account, and the peer of the tests. It stores shards and checkpoints in a
//! data directory, verifies request signatures against one AccessKey, and runs consumer-group
//! assignment with the group timeout and release-before-grant hand-over.
//!
//! Start it with [`LocalServer::open`] and [`LocalServer::run`].

mod assignment;
pub mod generator;
mod routes;
mod state;
pub mod store;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::common::Secret;
pub use state::{Checkpoint, Failure};
pub use store::StoreError;

/// Default upper bound of a request body (PutLogs), in bytes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 << 20;

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

/// How to run the local server.
#[derive(Debug, Clone)]
pub struct LocalServerConfig {
    /// Where shards and checkpoints are stored.
    pub data_dir: PathBuf,
    /// The one AccessKey id requests must be signed with.
    pub access_key_id: String,
    /// Its secret.
    pub access_key_secret: Secret,
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
        }))
    }

    fn next_request_id(&self) -> String {
        format!(
            "LOCAL{:016X}",
            self.requests.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Serves HTTP/1.1 (keep-alive) on `listener` until `shutdown` completes, then stops
    /// accepting and lets open connections finish their current request.
    ///
    /// # Errors
    ///
    /// Returns an error only if accepting fails persistently.
    pub async fn run(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        tokio::pin!(shutdown);
        let mut accept_errors = 0u32;
        loop {
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
                .serve_connection(TokioIo::new(stream), service);
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "local server connection ended with an error");
                }
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

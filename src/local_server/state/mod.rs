//! The server's object tree: projects hold logstores; a logstore holds shards and consumer
//! groups. Every operation returns a [`Failure`] carrying the SLS error code to answer with.
//!
//! - [`registry`]: the projects of the data directory and their logstores, and the rule for
//!   their names.
//! - [`logstore`]: a logstore's shards: lookup, write routing, split and merge.
//! - [`groups`]: a logstore's consumer groups: heartbeats (assignment) and checkpoints.

mod groups;
mod logstore;
mod registry;

pub use groups::Checkpoint;
pub use logstore::Logstore;
pub use registry::{valid_name, Project, Projects};

use super::store::StoreError;
use crate::source::ApiErrorCode;

/// An operation failed with an SLS error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The error code (its HTTP status comes with it).
    pub code: ApiErrorCode,
    /// The message for `errorMessage`.
    pub message: String,
}

impl Failure {
    /// A failure with `code`.
    pub fn new(code: ApiErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        if let StoreError::InvalidName { .. } = error {
            return Failure::new(ApiErrorCode::ParameterInvalid, error.to_string());
        }
        tracing::error!(%error, "local server storage failure");
        Failure::new(ApiErrorCode::InternalServerError, error.to_string())
    }
}

/// Runs `work` (disk I/O, or CPU-heavy work) on a blocking thread, so it never stalls the
/// runtime threads that serve other requests.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| Failure::new(ApiErrorCode::InternalServerError, error.to_string()))?
}

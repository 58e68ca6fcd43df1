//! The log-service (SLS) protocol: request signing, the protobuf and compression wire code,
//! cursors and typed API errors (shared by the client and the local server), and the client.

pub mod auth;
pub mod compression;
pub mod cursor;
pub mod error;
pub mod protobuf;

pub use error::{ApiError, ApiErrorCode};

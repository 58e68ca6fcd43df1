//! The log-service (SLS) protocol: request signing, the protobuf and compression wire code,
//! cursors and typed API errors (shared by the client and the local server), and the client
//! with one file per API operation.

pub mod api;
pub mod auth;
pub mod buffers;
pub mod client;
pub mod compression;
pub mod config;
pub mod credentials;
pub mod cursor;
pub mod error;
pub mod protobuf;

pub use api::shards::ShardInfo;
pub use client::{Client, ClientConfig, ClientError};
pub use error::{ApiError, ApiErrorCode};

//! The `object_storage` sink: archives logs as JSON-lines objects (gzip, zstd or plain) in an
//! S3-compatible bucket (AWS S3, Alibaba OSS, Tencent COS, JD Cloud OSS, MinIO). A batch is
//! acknowledged only after every object holding its logs is stored.
//!
//! - [`config`]: settings, their checks, and `build()`; the only file that knows the settings.
//! - `key`: object names (prefix, strftime partition, cursor-range id, extension).
//! - `encode`: an object's body, encoded and compressed as logs are appended.
//! - `rollover`: a shard's open files, ack splitting and the seal rules.
//! - `http`: the HTTP client of the bucket's requests (`tls`, `resolve`).
//! - `put`: one attempt at writing an object: PutObject or multipart, headers and metadata,
//!   `create_only`, the check after the upload.
//! - `upload`: storing an object, retried until stored; failure classes and health.
//! - `sink`: the run loop (batches in, seals, uploads, memory budget) and what it publishes
//!   (metrics, `/status`).
//! - `spool`: the disk spool of sealed objects (`buffer.dir`): lock, leftovers, files.
//! - `activity`: uploads in flight and the last finished ones, for `/status`.

mod activity;
pub mod config;
mod encode;
mod http;
mod key;
mod put;
mod rollover;
mod sink;
mod spool;
mod upload;

pub use config::ObjectStorageSinkConfig;
pub use sink::ObjectStorageSink;

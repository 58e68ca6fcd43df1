//! PutLogs: `POST /logstores/{logstore}/shards/lb` (any writable shard) or
//! `.../shards/route?key=HASH` (the shard whose hash range holds the key), body one
//! LZ4-compressed `LogGroup`.

use bytes::Bytes;
use http::Method;

use super::logstore_path;
use crate::source::client::{ApiRequest, Client, ClientError};
use crate::source::compression::Compression;
use crate::source::protobuf::LogGroup;

/// Which shard receives a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutTarget<'a> {
    /// Any writable shard, chosen by the server.
    LoadBalanced,
    /// The shard whose hash range holds this 32-hex-digit key.
    HashKey(&'a str),
}

impl Client {
    /// Writes one log group.
    ///
    /// # Errors
    ///
    /// API or network errors.
    pub async fn put_logs(
        &self,
        logstore: &str,
        target: PutTarget<'_>,
        group: &LogGroup,
    ) -> Result<(), ClientError> {
        let raw = group.to_bytes();
        let body = Compression::Lz4.compress(&raw);
        let base = format!("{}/shards", logstore_path(logstore));
        let request = match target {
            PutTarget::LoadBalanced => ApiRequest::new(Method::POST, format!("{base}/lb")),
            PutTarget::HashKey(key) => {
                ApiRequest::new(Method::POST, format!("{base}/route")).query("key", key)
            }
        };
        let mut request = request
            .header("content-type", "application/x-protobuf")
            .header("x-log-bodyrawsize", &raw.len().to_string())
            .header("x-log-compresstype", "lz4");
        request.body = Bytes::from(body);
        self.send("PutLogs", request).await.map(drop)
    }
}

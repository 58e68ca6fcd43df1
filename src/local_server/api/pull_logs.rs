//! PullLogs: `GET /logstores/{logstore}/shards/{shard}?type=log&cursor=&count=&end_cursor=`.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Response};
use http_body_util::Full;

use super::cursor::parse_position;
use super::{invalid, Call, HandlerResult};
use crate::local_server::state::{blocking, Failure, Logstore};
use crate::local_server::LocalServer;
use crate::source::compression::Compression;
use crate::source::{cursor, ApiErrorCode};

/// Upper bound of one PullLogs response's raw size; the server returns fewer groups than
/// asked rather than more bytes (clients handle short batches).
const MAX_PULL_BYTES: usize = 8 << 20;

impl LocalServer {
    /// Refuses a pull over the shard's read quota, when one is set.
    pub(crate) fn admit_pull(
        &self,
        call: &Call,
        logstore: &str,
        shard: u32,
    ) -> Result<(), Failure> {
        let project = call.project.as_deref().unwrap_or_default();
        if self.read_quota.admit(project, logstore, shard) {
            return Ok(());
        }
        let limit = self.read_quota.limit().map_or(0, |limit| limit.get());
        Err(Failure::new(
            ApiErrorCode::ShardReadQuotaExceed,
            format!("shard {shard} read quota exceeded: more than {limit} pulls a second"),
        ))
    }
}

/// PullLogs: up to `count` groups from the cursor (and before `end_cursor`), compressed as
/// the client accepts, with the cursor headers the SDKs read.
pub(crate) async fn pull_logs(call: Call, logstore: Arc<Logstore>, shard_id: u32) -> HandlerResult {
    let shard = logstore.shard(shard_id)?;
    let end = shard.end();
    let position = parse_position(call.required("cursor")?, end)?;
    let count: usize = match call.param("count") {
        None => 1000,
        Some(text) => text
            .parse()
            .ok()
            .filter(|count| (1..=1000).contains(count))
            .ok_or_else(|| invalid("count must be between 1 and 1000"))?,
    };
    let until = match call.param("end_cursor").or_else(|| call.param("endCursor")) {
        Some(text) if !text.is_empty() => Some(parse_position(text, end)?),
        _ => None,
    };
    let compression = pull_compression(
        call.headers
            .get("accept-encoding")
            .and_then(|v| v.to_str().ok()),
    );
    let pulled = blocking(move || {
        Ok(shard.read(position, count, MAX_PULL_BYTES, until, |raw| {
            let body = if raw.is_empty() {
                Vec::new()
            } else {
                compression.compress(raw)
            };
            (raw.len(), body)
        }))
    })
    .await?;
    let (raw_size, body) = pulled.payload;
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    let headers = reply.headers_mut();
    let mut set = |name: &'static str, value: String| {
        headers.insert(
            name,
            HeaderValue::from_str(&value).expect("header values are ascii"),
        );
    };
    set("content-type", "application/x-protobuf".into());
    set("x-log-cursor", cursor::encode(pulled.next as i64));
    set("x-log-count", pulled.count.to_string());
    set("x-log-bodyrawsize", raw_size.to_string());
    set(
        "x-log-end-of-cursor",
        u8::from(pulled.next == pulled.end).to_string(),
    );
    set(
        "x-log-read-last-cursor",
        (pulled.next as i64 - 1).to_string(),
    );
    set("x-log-cursor-time", pulled.cursor_time.to_string());
    if raw_size > 0 {
        if let Some(kind) = compression.header_value() {
            set("x-log-compresstype", kind.into());
        }
    }
    Ok(reply)
}

/// The compression for a pull response from the client's `Accept-Encoding` (lz4 when absent).
fn pull_compression(accept: Option<&str>) -> Compression {
    let Some(accept) = accept else {
        return Compression::Lz4;
    };
    let offered: Vec<&str> = accept
        .split(',')
        .map(|item| item.split(';').next().unwrap_or("").trim())
        .collect();
    [Compression::Lz4, Compression::Zstd, Compression::Deflate]
        .into_iter()
        .find(|kind| offered.contains(&kind.header_value().unwrap_or("")))
        .unwrap_or(Compression::None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_compression_prefers_lz4() {
        assert_eq!(pull_compression(None), Compression::Lz4);
        assert_eq!(pull_compression(Some("lz4")), Compression::Lz4);
        assert_eq!(pull_compression(Some("zstd, deflate")), Compression::Zstd);
        assert_eq!(pull_compression(Some("deflate")), Compression::Deflate);
        assert_eq!(pull_compression(Some("")), Compression::None);
    }
}

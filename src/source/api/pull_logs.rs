//! PullLogs: `GET /logstores/{logstore}/shards/{shard}?type=log&cursor=...&count=...`.
//!
//! The body is a compressed `LogGroupList`; it is decompressed into one buffer (a recycled
//! one for large bodies, [`crate::source::buffers`]) and decoded into [`LogRecords`] that view
//! that buffer (large bodies off the async threads).

use std::future::Future;

use http::Method;

use super::logstore_path;
use crate::model::LogRecords;
use crate::source::buffers::PULL_BUFFERS;
use crate::source::client::{ApiRequest, ApiResponse, Client, ClientError};
use crate::source::compression::Compression;
use crate::source::protobuf::decode_log_group_list;

/// Bodies above this size are decoded on the blocking pool (the ~500 µs rule).
const BLOCKING_DECODE_THRESHOLD: usize = 64 << 10;

/// The logs of one pull and where to continue.
#[derive(Debug)]
pub struct PullResult {
    /// The logs, in order.
    pub records: LogRecords,
    /// Number of log groups returned (`x-log-count`).
    pub group_count: usize,
    /// The cursor to pull from next; equal to the request cursor when nothing was returned.
    pub next_cursor: String,
    /// Uncompressed size of the returned `LogGroupList`.
    pub raw_size: usize,
    /// True when `next_cursor` is the current end of the shard (when the server says so).
    pub end_of_cursor: bool,
}

impl Client {
    /// Pulls up to `count` log groups (1..=1000) of `shard` from `cursor`.
    ///
    /// # Errors
    ///
    /// API, network or response-format errors (missing headers, corrupt body, bad protobuf).
    pub async fn pull_logs(
        &self,
        logstore: &str,
        shard: u32,
        cursor: &str,
        count: u32,
    ) -> Result<PullResult, ClientError> {
        let (pulled, ()) = self
            .pull_logs_making_room(logstore, shard, cursor, count, |_| async {})
            .await?;
        Ok(pulled)
    }

    /// [`Client::pull_logs`], awaiting `make_room(raw_size)` once the answer has arrived and
    /// before its body is decompressed: the caller's chance to wait for memory for the decoded
    /// logs while only the compressed body is held. What it yields comes back with the logs.
    ///
    /// # Errors
    ///
    /// As [`Client::pull_logs`].
    pub async fn pull_logs_making_room<T, F>(
        &self,
        logstore: &str,
        shard: u32,
        cursor: &str,
        count: u32,
        make_room: impl FnOnce(usize) -> F,
    ) -> Result<(PullResult, T), ClientError>
    where
        F: Future<Output = T>,
    {
        let request = ApiRequest::new(
            Method::GET,
            format!("{}/shards/{shard}", logstore_path(logstore)),
        )
        .query("type", "log")
        .query("cursor", cursor)
        .query("count", count)
        .header("accept", "application/x-protobuf")
        .header("accept-encoding", "lz4");
        let response = self.send("PullLogs", request).await?;
        let mut result = parse_pull_response(&response, cursor)?;
        let body = response.body;
        let compression = Compression::from_header(
            response
                .headers
                .get("x-log-compresstype")
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
        )
        .map_err(|error| ClientError::bad_response("PullLogs", error))?;
        let raw_size = result.raw_size;
        let room = make_room(raw_size).await;
        let decode = move || -> Result<LogRecords, ClientError> {
            if raw_size == 0 {
                return Ok(LogRecords::default());
            }
            let raw = PULL_BUFFERS
                .decompress(compression, &body, raw_size)
                .map_err(|error| ClientError::bad_response("PullLogs", error))?;
            decode_log_group_list(raw).map_err(|error| ClientError::bad_response("PullLogs", error))
        };
        result.records = if raw_size > BLOCKING_DECODE_THRESHOLD {
            tokio::task::spawn_blocking(decode)
                .await
                .map_err(|error| ClientError::bad_response("PullLogs", error))??
        } else {
            decode()?
        };
        if result.records.group_count() != result.group_count {
            return Err(ClientError::bad_response(
                "PullLogs",
                format!(
                    "x-log-count says {} groups but the body holds {}",
                    result.group_count,
                    result.records.group_count()
                ),
            ));
        }
        Ok((result, room))
    }
}

fn parse_pull_response(
    response: &ApiResponse,
    request_cursor: &str,
) -> Result<PullResult, ClientError> {
    let required = |name: &'static str| {
        response
            .header(name)
            .ok_or_else(|| ClientError::bad_response("PullLogs", format!("missing header {name}")))
    };
    let number = |name: &'static str| -> Result<usize, ClientError> {
        required(name)?.trim().parse().map_err(|_| {
            ClientError::bad_response("PullLogs", format!("header {name} is not a number"))
        })
    };
    let group_count = number("x-log-count")?;
    let raw_size = number("x-log-bodyrawsize")?;
    let next_cursor = match required("x-log-cursor")?.trim() {
        "" => request_cursor.to_owned(),
        cursor => cursor.to_owned(),
    };
    Ok(PullResult {
        records: LogRecords::default(),
        group_count,
        next_cursor,
        raw_size,
        end_of_cursor: response.header("x-log-end-of-cursor") == Some("1"),
    })
}

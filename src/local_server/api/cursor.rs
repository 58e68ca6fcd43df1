//! GetCursor (`GET /logstores/{logstore}/shards/{shard}?type=cursor&from=`) and
//! GetCursorTime (`...?type=cursor_time&cursor=`).

use serde_json::json;

use super::{invalid, json_reply, Call, HandlerResult};
use crate::local_server::state::{Failure, Logstore};
use crate::source::{cursor, ApiErrorCode};

/// GetCursor: the cursor at the shard's beginning, its end, or the first group received at
/// or after a Unix time.
pub(crate) fn get_cursor(call: &Call, logstore: &Logstore, shard: u32) -> HandlerResult {
    let shard = logstore.shard(shard)?;
    let position = match call.required("from")? {
        "begin" => 0,
        "end" => shard.end(),
        time => shard.position_at(
            time.parse::<i64>()
                .map_err(|_| {
                    invalid(format!(
                        "`from` must be begin, end or unix seconds, not `{time}`"
                    ))
                })?
                .clamp(0, i64::from(u32::MAX)) as u32,
        ),
    };
    json_reply(&json!({"cursor": cursor::encode(position as i64)}))
}

/// GetCursorTime: the receive time of the group at a cursor.
pub(crate) fn get_cursor_time(call: &Call, logstore: &Logstore, shard: u32) -> HandlerResult {
    let shard = logstore.shard(shard)?;
    let position = parse_position(call.required("cursor")?, shard.end())?;
    json_reply(&json!({"cursor_time": shard.time_before(position + 1)}))
}

/// The position a cursor names, refused with `InvalidCursor` when malformed or past `end`.
pub(crate) fn parse_position(text: &str, end: u64) -> Result<u64, Failure> {
    let position = cursor::decode(text).map_err(|_| {
        Failure::new(
            ApiErrorCode::InvalidCursor,
            format!("cursor `{text}` is malformed"),
        )
    })?;
    u64::try_from(position)
        .ok()
        .filter(|position| *position <= end)
        .ok_or_else(|| {
            Failure::new(
                ApiErrorCode::InvalidCursor,
                format!("cursor `{text}` is out of range"),
            )
        })
}

//! UpdateCheckPoint (`POST /logstores/{logstore}/consumergroups/{group}?type=checkpoint`) and
//! GetCheckPoint (`GET .../consumergroups/{group}?shard=`).

use serde::Deserialize;
use serde_json::json;

use super::{empty_reply, json_reply, parse_shard, Call, HandlerResult};
use crate::local_server::state::{Failure, Logstore};
use crate::local_server::LocalServer;
use crate::source::{cursor, ApiErrorCode};

/// UpdateCheckPoint: stores the body's cursor for its shard; checked against the shard's
/// owner unless `forceSuccess` is absent or `true`.
pub(crate) async fn update_checkpoint(
    call: &Call,
    logstore: &Logstore,
    group: &str,
    consumer: &str,
) -> HandlerResult {
    #[derive(Deserialize)]
    struct Update {
        shard: u32,
        checkpoint: String,
    }
    let body: Update = call.json()?;
    if cursor::decode(&body.checkpoint).is_err() {
        return Err(Failure::new(
            ApiErrorCode::InvalidShardCheckPoint,
            format!("checkpoint `{}` is not a cursor", body.checkpoint),
        ));
    }
    let force = call
        .param("forceSuccess")
        .is_none_or(|v| v.eq_ignore_ascii_case("true"));
    logstore
        .update_checkpoint(group, consumer, body.shard, body.checkpoint, force)
        .await?;
    Ok(empty_reply())
}

impl LocalServer {
    /// GetCheckPoint: the checkpoints of one shard (`shard` given) or of every shard.
    pub(crate) fn get_checkpoints(
        &self,
        call: &Call,
        logstore: &str,
        group: &str,
    ) -> HandlerResult {
        let shard = call.param("shard").map(parse_shard).transpose()?;
        let checkpoints: Vec<_> = self
            .logstore(call, logstore)?
            .checkpoints(group, shard)?
            .into_iter()
            .map(|(shard, checkpoint)| {
                json!({
                    "shard": shard,
                    "checkpoint": checkpoint.checkpoint,
                    "updateTime": checkpoint.update_time,
                    "consumer": checkpoint.consumer,
                })
            })
            .collect();
        json_reply(&json!(checkpoints))
    }
}

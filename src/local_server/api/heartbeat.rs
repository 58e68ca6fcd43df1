//! ConsumerGroupHeartBeat: `POST /logstores/{logstore}/consumergroups/{group}?type=heartbeat`.

use serde_json::json;

use super::{json_reply, Call, HandlerResult};
use crate::local_server::state::Logstore;

/// ConsumerGroupHeartBeat: takes the shards `consumer` reports holding (the body, a JSON
/// list; empty to join) and answers the shards it should hold now.
pub(crate) fn heartbeat(
    call: &Call,
    logstore: &Logstore,
    group: &str,
    consumer: &str,
) -> HandlerResult {
    let reported: Vec<u32> = if call.body.is_empty() {
        Vec::new()
    } else {
        call.json()?
    };
    json_reply(&json!(logstore.heartbeat(group, consumer, &reported)?))
}

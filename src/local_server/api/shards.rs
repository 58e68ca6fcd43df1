//! ListShards (`GET /logstores/{logstore}/shards`), SplitShard and MergeShards
//! (`POST /logstores/{logstore}/shards/{shard}?action=split|merge`).

use super::{json_reply, Call, HandlerResult};
use crate::local_server::state::blocking;
use crate::local_server::store::ShardInfo;
use crate::local_server::LocalServer;

/// What a reshape does to a shard.
pub(crate) enum Reshape {
    /// SplitShard: split it at the `key` parameter.
    Split,
    /// MergeShards: merge it with its right-hand neighbour.
    Merge,
}

impl LocalServer {
    /// ListShards: every shard of the logstore with its status and hash range.
    pub(crate) fn list_shards(&self, call: &Call, logstore: &str) -> HandlerResult {
        shards_reply(&self.logstore(call, logstore)?.shard_infos())
    }

    /// SplitShard or MergeShards on `shard`; answers the three shards changed.
    pub(crate) async fn reshape_shard(
        &self,
        call: &Call,
        logstore: &str,
        shard: u32,
        reshape: Reshape,
    ) -> HandlerResult {
        let logstore = self.logstore(call, logstore)?;
        // A reshape writes and fsyncs the logstore's metadata.
        let changed = match reshape {
            Reshape::Split => {
                let key = call.required("key")?.to_owned();
                blocking(move || logstore.split(shard, &key)).await?
            }
            Reshape::Merge => blocking(move || logstore.merge(shard)).await?,
        };
        shards_reply(&changed)
    }
}

fn shards_reply(shards: &[ShardInfo]) -> HandlerResult {
    json_reply(&serde_json::to_value(shards).expect("shards serialize"))
}

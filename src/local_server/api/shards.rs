//! ListShards (`GET /logstores/{logstore}/shards`), SplitShard and MergeShards
//! (`POST /logstores/{logstore}/shards/{shard}?action=split|merge`).

use super::{json_reply, Call, HandlerResult};
use crate::local_server::state::blocking;
use crate::local_server::store::ShardInfo;
use crate::local_server::LocalServer;

impl LocalServer {
    /// ListShards: every shard of the logstore with its status and hash range.
    pub(crate) fn list_shards(&self, call: &Call, logstore: &str) -> HandlerResult {
        shards_reply(&self.logstore(call, logstore)?.shard_infos())
    }

    /// SplitShard: splits `shard` at the `key` parameter; answers the three shards changed.
    pub(crate) async fn split_shard(
        &self,
        call: &Call,
        logstore: &str,
        shard: u32,
    ) -> HandlerResult {
        let logstore = self.logstore(call, logstore)?;
        let key = call.required("key")?.to_owned();
        // A reshape writes and fsyncs the logstore's metadata.
        let changed = blocking(move || logstore.split(shard, &key)).await?;
        shards_reply(&changed)
    }

    /// MergeShards: merges `shard` with its right-hand neighbour; answers the three shards
    /// changed.
    pub(crate) async fn merge_shard(
        &self,
        call: &Call,
        logstore: &str,
        shard: u32,
    ) -> HandlerResult {
        let logstore = self.logstore(call, logstore)?;
        let changed = blocking(move || logstore.merge(shard)).await?;
        shards_reply(&changed)
    }
}

fn shards_reply(shards: &[ShardInfo]) -> HandlerResult {
    json_reply(&serde_json::to_value(shards).expect("shards serialize"))
}

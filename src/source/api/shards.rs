//! ListShards: `GET /logstores/{logstore}/shards`.

use http::Method;
use serde::{Deserialize, Serialize};

use super::logstore_path;
use crate::source::client::{ApiRequest, Client, ClientError};

/// A shard as ListShards reports it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShardInfo {
    /// Shard id.
    #[serde(rename = "shardID")]
    pub shard_id: u32,
    /// `readwrite` or `readonly`.
    pub status: String,
    /// First MD5 key of the shard's hash range (32 hex digits).
    #[serde(rename = "inclusiveBeginKey")]
    pub inclusive_begin_key: String,
    /// End of the hash range (exclusive).
    #[serde(rename = "exclusiveEndKey")]
    pub exclusive_end_key: String,
    /// Creation time, Unix seconds.
    #[serde(rename = "createTime")]
    pub create_time: u32,
}

impl ShardInfo {
    /// True when the shard accepts writes.
    pub fn is_readwrite(&self) -> bool {
        self.status == "readwrite"
    }
}

impl Client {
    /// Lists the shards of `logstore`.
    ///
    /// # Errors
    ///
    /// API, network or response-format errors.
    pub async fn list_shards(&self, logstore: &str) -> Result<Vec<ShardInfo>, ClientError> {
        let request = ApiRequest::new(Method::GET, format!("{}/shards", logstore_path(logstore)));
        self.send("ListShards", request).await?.json("ListShards")
    }

    /// Splits `shard` at the 32-hex-digit hash `key` (operations tooling and tests). Returns
    /// the shards that changed: the parent (now readonly) and the two new ones.
    ///
    /// # Errors
    ///
    /// API, network or response-format errors.
    pub async fn split_shard(
        &self,
        logstore: &str,
        shard: u32,
        key: &str,
    ) -> Result<Vec<ShardInfo>, ClientError> {
        let request = ApiRequest::new(
            Method::POST,
            format!("{}/shards/{shard}", logstore_path(logstore)),
        )
        .query("action", "split")
        .query("key", key);
        self.send("SplitShard", request).await?.json("SplitShard")
    }

    /// Merges `shard` with its right-hand neighbour. Returns the shards that changed.
    ///
    /// # Errors
    ///
    /// API, network or response-format errors.
    pub async fn merge_shards(
        &self,
        logstore: &str,
        shard: u32,
    ) -> Result<Vec<ShardInfo>, ClientError> {
        let request = ApiRequest::new(
            Method::POST,
            format!("{}/shards/{shard}", logstore_path(logstore)),
        )
        .query("action", "merge");
        self.send("MergeShards", request).await?.json("MergeShards")
    }
}

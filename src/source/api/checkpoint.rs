//! GetCheckPoint (`GET .../consumergroups/{group}?shard=N`) and UpdateCheckPoint
//! (`POST .../consumergroups/{group}?type=checkpoint&consumer=C&forceSuccess=B`).

use http::Method;
use serde::Deserialize;
use serde_json::json;

use super::logstore_path;
use crate::source::client::{ApiRequest, Client, ClientError};

/// A shard's stored checkpoint.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ShardCheckpoint {
    /// Shard id.
    pub shard: u32,
    /// The cursor to resume from; empty when the shard was never checkpointed (or the
    /// service sent `null`).
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub checkpoint: String,
    /// When it was written, microseconds since the epoch (0 when never).
    #[serde(
        rename = "updateTime",
        default,
        deserialize_with = "super::null_as_default"
    )]
    pub update_time: u64,
    /// The consumer that wrote it.
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub consumer: String,
}

impl Client {
    /// Reads the checkpoint of one shard (`None` when the server lists nothing for it).
    ///
    /// # Errors
    ///
    /// API, network or response-format errors.
    pub async fn get_checkpoint(
        &self,
        logstore: &str,
        group: &str,
        shard: u32,
    ) -> Result<Option<ShardCheckpoint>, ClientError> {
        let request = ApiRequest::new(
            Method::GET,
            format!("{}/consumergroups/{group}", logstore_path(logstore)),
        )
        .query("shard", shard);
        let list: Vec<ShardCheckpoint> = self
            .send("GetCheckPoint", request)
            .await?
            .json("GetCheckPoint")?;
        Ok(list
            .into_iter()
            .find(|checkpoint| checkpoint.shard == shard))
    }

    /// Reads the checkpoints of every shard.
    ///
    /// # Errors
    ///
    /// API, network or response-format errors.
    pub async fn get_checkpoints(
        &self,
        logstore: &str,
        group: &str,
    ) -> Result<Vec<ShardCheckpoint>, ClientError> {
        let request = ApiRequest::new(
            Method::GET,
            format!("{}/consumergroups/{group}", logstore_path(logstore)),
        );
        self.send("GetCheckPoint", request)
            .await?
            .json("GetCheckPoint")
    }

    /// Stores `cursor` as the checkpoint of `shard`. With `force == false` the server checks
    /// that `consumer` still owns the shard (`ConsumerNotMatch` otherwise).
    ///
    /// # Errors
    ///
    /// API or network errors.
    pub async fn update_checkpoint(
        &self,
        logstore: &str,
        group: &str,
        consumer: &str,
        shard: u32,
        cursor: &str,
        force: bool,
    ) -> Result<(), ClientError> {
        let request = ApiRequest::new(
            Method::POST,
            format!("{}/consumergroups/{group}", logstore_path(logstore)),
        )
        .query("type", "checkpoint")
        .query("consumer", consumer)
        .query("forceSuccess", force)
        .json_body(&json!({"shard": shard, "checkpoint": cursor}));
        self.send("UpdateCheckPoint", request).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_and_missing_fields_read_as_never_checkpointed() {
        let list: Vec<ShardCheckpoint> = serde_json::from_str(
            r#"[{"shard":0,"checkpoint":null,"updateTime":null,"consumer":null},{"shard":1}]"#,
        )
        .unwrap();
        for (shard, checkpoint) in list.iter().enumerate() {
            assert_eq!(checkpoint.shard, shard as u32);
            assert_eq!(checkpoint.checkpoint, "");
            assert_eq!(
                (checkpoint.update_time, checkpoint.consumer.as_str()),
                (0, "")
            );
        }
    }
}

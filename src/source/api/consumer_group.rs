//! Consumer-group management: list, create, update, delete
//! (`/logstores/{logstore}/consumergroups[/{group}]`).

use http::Method;
use serde::Deserialize;
use serde_json::json;

use super::logstore_path;
use crate::source::client::{ApiRequest, Client, ClientError};

/// A consumer group as ListConsumerGroup reports it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ConsumerGroupInfo {
    /// Group name.
    pub name: String,
    /// Seconds of heartbeat silence after which a consumer is considered dead (0 when the
    /// service left it out).
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub timeout: u32,
    /// Whether shards are consumed in order across split and merge.
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub order: bool,
}

impl Client {
    /// Lists the consumer groups of `logstore`.
    ///
    /// # Errors
    ///
    /// API, network or response-format errors.
    pub async fn list_consumer_groups(
        &self,
        logstore: &str,
    ) -> Result<Vec<ConsumerGroupInfo>, ClientError> {
        let request = ApiRequest::new(
            Method::GET,
            format!("{}/consumergroups", logstore_path(logstore)),
        );
        self.send("ListConsumerGroup", request)
            .await?
            .json("ListConsumerGroup")
    }

    /// Creates a consumer group.
    ///
    /// # Errors
    ///
    /// API (e.g. `ConsumerGroupAlreadyExist`) or network errors.
    pub async fn create_consumer_group(
        &self,
        logstore: &str,
        group: &str,
        timeout: u32,
        order: bool,
    ) -> Result<(), ClientError> {
        let request = ApiRequest::new(
            Method::POST,
            format!("{}/consumergroups", logstore_path(logstore)),
        )
        .json_body(&json!({"consumerGroup": group, "timeout": timeout, "order": order}));
        self.send("CreateConsumerGroup", request).await.map(drop)
    }

    /// Changes a group's timeout and order.
    ///
    /// # Errors
    ///
    /// API (e.g. `ConsumerGroupNotExist`) or network errors.
    pub async fn update_consumer_group(
        &self,
        logstore: &str,
        group: &str,
        timeout: u32,
        order: bool,
    ) -> Result<(), ClientError> {
        let request = ApiRequest::new(
            Method::PUT,
            format!("{}/consumergroups/{group}", logstore_path(logstore)),
        )
        .json_body(&json!({"order": order, "timeout": timeout}));
        self.send("UpdateConsumerGroup", request).await.map(drop)
    }

    /// Deletes a group and its checkpoints.
    ///
    /// # Errors
    ///
    /// API or network errors.
    pub async fn delete_consumer_group(
        &self,
        logstore: &str,
        group: &str,
    ) -> Result<(), ClientError> {
        let request = ApiRequest::new(
            Method::DELETE,
            format!("{}/consumergroups/{group}", logstore_path(logstore)),
        );
        self.send("DeleteConsumerGroup", request).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_null_timeout_and_order_read_as_defaults() {
        let groups: Vec<ConsumerGroupInfo> =
            serde_json::from_str(r#"[{"name":"a","timeout":null},{"name":"b","order":true}]"#)
                .unwrap();
        assert_eq!((groups[0].timeout, groups[0].order), (0, false));
        assert_eq!((groups[1].timeout, groups[1].order), (0, true));
    }
}

//! ConsumerGroupHeartBeat: `POST /logstores/{logstore}/consumergroups/{group}?type=heartbeat`.

use http::Method;

use super::logstore_path;
use crate::source::client::{ApiRequest, Client, ClientError};

impl Client {
    /// Reports the shards `consumer` holds (including shards still draining) and returns the
    /// shards it should hold now.
    ///
    /// # Errors
    ///
    /// API, network or response-format errors.
    pub async fn heartbeat(
        &self,
        logstore: &str,
        group: &str,
        consumer: &str,
        held: &[u32],
    ) -> Result<Vec<u32>, ClientError> {
        let request = ApiRequest::new(
            Method::POST,
            format!("{}/consumergroups/{group}", logstore_path(logstore)),
        )
        .query("type", "heartbeat")
        .query("consumer", consumer)
        .json_body(&serde_json::json!(held));
        self.send("ConsumerGroupHeartBeat", request)
            .await?
            .json("ConsumerGroupHeartBeat")
    }
}

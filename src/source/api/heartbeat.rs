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
        let response = self.send("ConsumerGroupHeartBeat", request).await?;
        assigned_shards(&response.body)
            .map_err(|error| ClientError::bad_response("ConsumerGroupHeartBeat", error))
    }
}

/// The shards a heartbeat answer assigns: a JSON array, where an empty body or `null` means
/// none (as the Java consumer reads it).
fn assigned_shards(body: &[u8]) -> Result<Vec<u32>, serde_json::Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    Ok(serde_json::from_slice::<Option<Vec<u32>>>(body)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_or_null_answer_assigns_no_shards() {
        assert_eq!(assigned_shards(b"[0,3]").unwrap(), [0, 3]);
        assert_eq!(assigned_shards(b"").unwrap(), Vec::<u32>::new());
        assert_eq!(assigned_shards(b"null").unwrap(), Vec::<u32>::new());
        assert!(assigned_shards(b"{\"shards\":1}").is_err());
    }
}

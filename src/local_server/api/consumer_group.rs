//! ListConsumerGroup and CreateConsumerGroup (`GET`/`POST /logstores/{logstore}/consumergroups`),
//! UpdateConsumerGroup and DeleteConsumerGroup (`PUT`/`DELETE .../consumergroups/{group}`).

use serde::Deserialize;
use serde_json::json;

use super::{empty_reply, invalid, json_reply, Call, HandlerResult};
use crate::local_server::{DeniedAction, LocalServer};

impl LocalServer {
    /// ListConsumerGroup: every group of the logstore with its timeout and order.
    pub(crate) fn list_groups(&self, call: &Call, logstore: &str) -> HandlerResult {
        self.permit(call, DeniedAction::ListConsumerGroup, logstore, "*")?;
        let groups: Vec<_> = self
            .logstore(call, logstore)?
            .list_groups()
            .into_iter()
            .map(|(name, timeout, order)| json!({"name": name, "timeout": timeout, "order": order}))
            .collect();
        json_reply(&json!(groups))
    }

    /// CreateConsumerGroup: the group named in the body, with its (positive) timeout.
    pub(crate) async fn create_group(&self, call: &Call, logstore: &str) -> HandlerResult {
        #[derive(Deserialize)]
        struct Create {
            #[serde(rename = "consumerGroup")]
            consumer_group: String,
            timeout: u32,
            #[serde(default)]
            order: bool,
        }
        let body: Create = call.json()?;
        let group = &body.consumer_group;
        self.permit(call, DeniedAction::CreateConsumerGroup, logstore, group)?;
        if body.timeout == 0 {
            return Err(invalid("timeout must be positive"));
        }
        self.logstore(call, logstore)?
            .create_group(&body.consumer_group, body.timeout, body.order)
            .await?;
        Ok(empty_reply())
    }

    /// UpdateConsumerGroup: the timeout and/or order the body gives.
    pub(crate) async fn update_group(
        &self,
        call: &Call,
        logstore: &str,
        group: &str,
    ) -> HandlerResult {
        #[derive(Deserialize)]
        struct Update {
            timeout: Option<u32>,
            order: Option<bool>,
        }
        let body: Update = call.json()?;
        self.permit(call, DeniedAction::UpdateConsumerGroup, logstore, group)?;
        self.logstore(call, logstore)?
            .update_group(group, body.timeout, body.order)
            .await?;
        Ok(empty_reply())
    }

    /// DeleteConsumerGroup: the group and its checkpoints.
    pub(crate) async fn delete_group(
        &self,
        call: &Call,
        logstore: &str,
        group: &str,
    ) -> HandlerResult {
        self.logstore(call, logstore)?.delete_group(group).await?;
        Ok(empty_reply())
    }
}

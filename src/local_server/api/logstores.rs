//! CreateProject (`POST /`), ListLogStores and CreateLogStore (`GET`/`POST /logstores`).

use serde::Deserialize;
use serde_json::json;

use super::{empty_reply, invalid, json_reply, Call, HandlerResult};
use crate::local_server::state::blocking;
use crate::local_server::LocalServer;

impl LocalServer {
    /// CreateProject: creates the project named in the body; an existing one is kept.
    pub(crate) fn create_project(&self, call: &Call) -> HandlerResult {
        #[derive(Deserialize)]
        struct Create {
            #[serde(rename = "projectName")]
            project_name: String,
        }
        let body: Create = call.json()?;
        self.projects.ensure_project(&body.project_name)?;
        Ok(empty_reply())
    }

    /// ListLogStores: the names of the project's logstores.
    pub(crate) fn list_logstores(&self, call: &Call) -> HandlerResult {
        let names = call.project(self)?.logstore_names();
        json_reply(&json!({"count": names.len(), "total": names.len(), "logstores": names}))
    }

    /// CreateLogStore: creates the logstore named in the body with its shard count (default
    /// 2, at most 256); an existing one is kept.
    pub(crate) async fn create_logstore(&self, call: &Call) -> HandlerResult {
        #[derive(Deserialize)]
        struct Create {
            #[serde(rename = "logstoreName")]
            logstore_name: String,
            #[serde(rename = "shardCount", default = "default_shards")]
            shard_count: u32,
        }
        fn default_shards() -> u32 {
            2
        }
        let body: Create = call.json()?;
        if !(1..=256).contains(&body.shard_count) {
            return Err(invalid("shard count must be between 1 and 256"));
        }
        let project = call.project(self)?;
        // Creating the shard files and metadata fsyncs: keep it off the runtime threads.
        blocking(move || Ok(project.ensure_logstore(&body.logstore_name, body.shard_count)?))
            .await?;
        Ok(empty_reply())
    }
}

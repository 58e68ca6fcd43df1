//! GetCursor (`GET /logstores/{logstore}/shards/{shard}?type=cursor&from=...`) and
//! GetCursorTime (`...?type=cursor_time&cursor=...`).

use http::Method;
use serde::Deserialize;

use super::logstore_path;
use crate::source::client::{ApiRequest, Client, ClientError};

/// Where to start reading a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorFrom {
    /// The oldest retained group.
    Begin,
    /// The next group to be written.
    End,
    /// The first group received at or after this Unix time (seconds).
    Time(i64),
}

impl CursorFrom {
    fn as_param(self) -> String {
        match self {
            Self::Begin => "begin".to_owned(),
            Self::End => "end".to_owned(),
            Self::Time(seconds) => seconds.to_string(),
        }
    }
}

impl Client {
    /// Returns the cursor of `shard` at `from`.
    ///
    /// # Errors
    ///
    /// API, network or response-format errors.
    pub async fn get_cursor(
        &self,
        logstore: &str,
        shard: u32,
        from: CursorFrom,
    ) -> Result<String, ClientError> {
        #[derive(Deserialize)]
        struct Answer {
            cursor: String,
        }
        let request = ApiRequest::new(
            Method::GET,
            format!("{}/shards/{shard}", logstore_path(logstore)),
        )
        .query("type", "cursor")
        .query("from", from.as_param())
        .header("content-type", "application/json");
        let answer: Answer = self.send("GetCursor", request).await?.json("GetCursor")?;
        Ok(answer.cursor)
    }

    /// Returns the server receive time (Unix seconds) of the log group at `cursor` of
    /// `shard`, as GetCursorTime answers it.
    ///
    /// # Errors
    ///
    /// API (e.g. `InvalidCursor`), network or response-format errors.
    pub async fn get_cursor_time(
        &self,
        logstore: &str,
        shard: u32,
        cursor: &str,
    ) -> Result<i64, ClientError> {
        #[derive(Deserialize)]
        struct Answer {
            cursor_time: i64,
        }
        let request = ApiRequest::new(
            Method::GET,
            format!("{}/shards/{shard}", logstore_path(logstore)),
        )
        .query("type", "cursor_time")
        .query("cursor", cursor);
        let answer: Answer = self
            .send("GetCursorTime", request)
            .await?
            .json("GetCursorTime")?;
        Ok(answer.cursor_time)
    }
}

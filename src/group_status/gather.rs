//! Reads the group's state from the log service and computes each shard's lag.
//!
//! Only APIs the real log service has are used. Times come from GetCursorTime: the newest
//! data time is the time of the cursor before the end cursor (the decoded position minus
//! one, as the official Python SDK's `get_previous_cursor_time` computes it), and the lag is
//! the newest data time minus the time of the oldest log group not yet consumed.
//!
//! Log-group counts are another matter: on the embedded service a cursor is a log-group
//! index, so the difference of two cursors counts log groups; on the real service cursor
//! positions are time-derived numbers whose difference means nothing. Log groups are
//! therefore counted only when [`GatherOptions::count_log_groups`] says the cursors are
//! the embedded service's; otherwise the lag is given in seconds only.

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};

use super::{GroupStatus, LogstoreStatus, ShardRow, Summary};
use crate::consumer::StartPosition;
use crate::source::api::checkpoint::ShardCheckpoint;
use crate::source::api::cursor::CursorFrom;
use crate::source::{cursor, ApiErrorCode, Client, ClientError, ShardInfo};

/// Shards read at once.
const CONCURRENT_SHARDS: usize = 8;

/// What to read and how to read it.
#[derive(Debug, Clone)]
pub struct GatherOptions {
    /// The consumer group.
    pub group: String,
    /// Where the group's consumers start a shard without a checkpoint (the lag of such a
    /// shard is counted from there).
    pub start: StartPosition,
    /// True when cursors are log-group indices (the embedded service), so the difference of
    /// two cursors counts log groups.
    pub count_log_groups: bool,
}

impl GatherOptions {
    /// True for an endpoint on this host, where the embedded service (whose cursors count
    /// log groups) runs; the real log service is never reached over loopback.
    pub fn endpoint_counts_log_groups(endpoint: &str) -> bool {
        reqwest::Url::parse(endpoint)
            .ok()
            .and_then(|url| url.host_str().map(crate::common::host::is_loopback_host))
            .unwrap_or(false)
    }
}

/// A call the view needs failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the {what} of logstore `{logstore}`")]
pub struct GatherError {
    /// Logstore.
    pub logstore: String,
    /// What was being read.
    pub what: &'static str,
    /// The failed call.
    #[source]
    pub source: ClientError,
}

/// Reads the state of `group` over `logstores`, at time `now` (Unix seconds).
///
/// # Errors
///
/// [`GatherError`] naming the logstore and the call that failed.
pub async fn gather(
    client: &Client,
    project: &str,
    logstores: &[String],
    options: &GatherOptions,
    now: i64,
) -> Result<GroupStatus, GatherError> {
    let mut views = Vec::with_capacity(logstores.len());
    for logstore in logstores {
        views.push(gather_logstore(client, logstore, options).await?);
    }
    Ok(GroupStatus {
        project: project.to_owned(),
        group: options.group.clone(),
        observed_at: now,
        logstores: views,
    })
}

async fn gather_logstore(
    client: &Client,
    logstore: &str,
    options: &GatherOptions,
) -> Result<LogstoreStatus, GatherError> {
    let failed = |what: &'static str| {
        move |source: ClientError| GatherError {
            logstore: logstore.to_owned(),
            what,
            source,
        }
    };
    let shards = client
        .list_shards(logstore)
        .await
        .map_err(failed("shards"))?;
    let groups = client
        .list_consumer_groups(logstore)
        .await
        .map_err(failed("consumer groups"))?;
    let group = groups.iter().find(|group| group.name == options.group);
    let checkpoints: BTreeMap<u32, ShardCheckpoint> = match group {
        Some(_) => client
            .get_checkpoints(logstore, &options.group)
            .await
            .map_err(failed("checkpoints"))?
            .into_iter()
            .map(|checkpoint| (checkpoint.shard, checkpoint))
            .collect(),
        None => BTreeMap::new(),
    };
    let mut rows: Vec<ShardRow> = futures::stream::iter(shards)
        .map(|shard| {
            let checkpoint = checkpoints.get(&shard.shard_id).cloned();
            async move { shard_row(client, logstore, &shard, checkpoint, options).await }
        })
        .buffer_unordered(CONCURRENT_SHARDS)
        .try_collect()
        .await
        .map_err(failed("cursors"))?;
    rows.sort_by_key(|row| row.shard);
    Ok(LogstoreStatus {
        logstore: logstore.to_owned(),
        group_exists: group.is_some(),
        group_timeout_seconds: group.map(|group| group.timeout),
        summary: Summary::of(&rows),
        shards: rows,
    })
}

async fn shard_row(
    client: &Client,
    logstore: &str,
    shard: &ShardInfo,
    checkpoint: Option<ShardCheckpoint>,
    options: &GatherOptions,
) -> Result<ShardRow, ClientError> {
    let id = shard.shard_id;
    let checkpoint = checkpoint.filter(|checkpoint| !checkpoint.checkpoint.is_empty());
    let begin = client.get_cursor(logstore, id, CursorFrom::Begin).await?;
    let end = client.get_cursor(logstore, id, CursorFrom::End).await?;
    let position = match (&checkpoint, options.start) {
        (Some(checkpoint), _) => checkpoint.checkpoint.clone(),
        (None, StartPosition::Begin) => begin.clone(),
        (None, StartPosition::End) => end.clone(),
        (None, StartPosition::Time(seconds)) => {
            client
                .get_cursor(logstore, id, CursorFrom::Time(seconds))
                .await?
        }
    };
    let time_before = |cursor: String| async move {
        match previous(&cursor) {
            Some(previous) => cursor_time(client, logstore, id, &previous).await,
            None => Ok(None),
        }
    };
    let newest_data_time = if begin == end {
        None
    } else {
        time_before(end.clone()).await?
    };
    let checkpoint_data_time = match &checkpoint {
        Some(checkpoint) if checkpoint.checkpoint != begin => {
            time_before(checkpoint.checkpoint.clone()).await?
        }
        _ => None,
    };
    let lag_seconds = if position == end {
        Some(0)
    } else {
        let oldest_unconsumed = cursor_time(client, logstore, id, &position).await?;
        newest_data_time
            .zip(oldest_unconsumed)
            .map(|(newest, oldest)| (newest - oldest).max(0))
    };
    let lag_log_groups = if options.count_log_groups {
        cursor::decode(&end)
            .ok()
            .zip(cursor::decode(&position).ok())
            .map(|(end, position)| end.saturating_sub(position).max(0) as u64)
    } else {
        None
    };
    Ok(ShardRow {
        shard: id,
        state: shard.status.clone(),
        consumer: checkpoint
            .as_ref()
            .map(|checkpoint| checkpoint.consumer.clone())
            .filter(|consumer| !consumer.is_empty()),
        checkpoint_updated_at: checkpoint
            .as_ref()
            .filter(|checkpoint| checkpoint.update_time > 0)
            .map(|checkpoint| (checkpoint.update_time / 1_000_000) as i64),
        checkpoint: checkpoint.map(|checkpoint| checkpoint.checkpoint),
        checkpoint_data_time,
        newest_data_time,
        lag_seconds,
        lag_log_groups,
    })
}

/// The cursor one position before `cursor` (as the Python SDK steps back), or `None` when
/// the cursor is not a decodable position.
fn previous(cursor: &str) -> Option<String> {
    cursor::decode(cursor)
        .ok()
        .and_then(|position| position.checked_sub(1))
        .map(cursor::encode)
}

/// GetCursorTime, where a cursor the service no longer has (trimmed by the retention time)
/// has no time rather than failing the whole view.
async fn cursor_time(
    client: &Client,
    logstore: &str,
    shard: u32,
    cursor: &str,
) -> Result<Option<i64>, ClientError> {
    match client.get_cursor_time(logstore, shard, cursor).await {
        Ok(time) => Ok(Some(time)),
        Err(error) if error.api_code() == Some(&ApiErrorCode::InvalidCursor) => Ok(None),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previous_steps_back_one_position() {
        assert_eq!(previous(&cursor::encode(10)), Some(cursor::encode(9)));
        assert_eq!(
            previous("MTczNzY2OTAzNjAxNzIxODQ1NA=="),
            Some(cursor::encode(1_737_669_036_017_218_453))
        );
        assert_eq!(previous("not a cursor"), None);
    }

    #[test]
    fn only_loopback_endpoints_count_log_groups() {
        for endpoint in [
            "http://127.0.0.1:18080",
            "http://localhost:1",
            "http://[::1]:9",
        ] {
            assert!(
                GatherOptions::endpoint_counts_log_groups(endpoint),
                "{endpoint}"
            );
        }
        for endpoint in [
            "https://cn-hangzhou.log.aliyuncs.com",
            "http://10.0.0.1:80",
            "nonsense",
        ] {
            assert!(
                !GatherOptions::endpoint_counts_log_groups(endpoint),
                "{endpoint}"
            );
        }
    }
}

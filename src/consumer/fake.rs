//! A scripted [`GroupService`] for paused-clock tests of the heartbeat, worker and shards.
//! Cursors are log-group positions encoded as the log service does ([`cursor`]); every pull
//! returns one group, and a pull from outside `begin..=batches` fails with `InvalidCursor`.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

use super::config::ConsumerConfig;
use super::lease::Leases;
use super::service::GroupService;
use super::shard::ShardTask;
use crate::common::units::HumanDuration;
use crate::model::batch::SinkBatch;
use crate::model::record::RecordsBuilder;
use crate::model::ShardKey;
use crate::source::api::checkpoint::ShardCheckpoint;
use crate::source::api::consumer_group::ConsumerGroupInfo;
use crate::source::api::cursor::CursorFrom;
use crate::source::api::pull_logs::PullResult;
use crate::source::cursor;
use crate::source::{ApiError, ApiErrorCode, ClientError};

/// Raw size of every pulled batch.
pub const BATCH_BYTES: usize = 1_000;

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Reply<T> {
    /// Succeed with this value.
    Ok(T),
    /// Fail with this API error code (and the HTTP status the log service sends with it).
    Fail(&'static str),
    /// Never answer.
    Hang,
}

impl<T> Reply<T> {
    async fn give(self) -> Result<T, ClientError> {
        match self {
            Self::Ok(value) => Ok(value),
            Self::Fail(code) => Err(api_error(code)),
            Self::Hang => std::future::pending().await,
        }
    }
}

/// An API error as the server sends it.
pub fn api_error(code: &str) -> ClientError {
    let status = ApiErrorCode::parse(code).http_status();
    let body = format!(r#"{{"errorCode":"{code}","errorMessage":"scripted"}}"#);
    ClientError::Api(ApiError::from_response(status, body.as_bytes(), None))
}

/// The cursor of log-group position `position`.
pub fn at(position: u64) -> String {
    cursor::encode(position as i64)
}

/// The script and what was called when.
#[derive(Debug)]
pub struct Script {
    /// CreateConsumerGroup answers; the last one repeats.
    pub creates: VecDeque<Reply<()>>,
    /// ListConsumerGroup answers; the last one repeats.
    pub lists: VecDeque<Reply<Vec<ConsumerGroupInfo>>>,
    /// UpdateConsumerGroup answers; the last one repeats.
    pub updates: VecDeque<Reply<()>>,
    /// The group calls made, in order: `create`, `list`, `update`.
    pub group_calls: Vec<&'static str>,
    /// Heartbeat answers in order; the last one repeats.
    pub heartbeats: VecDeque<Reply<Vec<u32>>>,
    /// GetCheckPoint answers in order (`None`: no checkpoint); the last one repeats.
    pub starts: VecDeque<Reply<Option<String>>>,
    /// UpdateCheckPoint answers in order; the last one repeats.
    pub commits: VecDeque<Reply<()>>,
    /// PullLogs answers in order (`Ok`: the data below); the last one repeats.
    pub pulls: VecDeque<Reply<()>>,
    /// The oldest retained position (the begin cursor).
    pub begin: u64,
    /// Pulls that return a group; later pulls return none. Also the end cursor.
    pub batches: u64,
    /// Log groups and raw bytes each non-empty pull reports.
    pub pull_size: (usize, usize),
    /// When each pull was sent.
    pub pull_calls: Vec<Instant>,
    /// When each heartbeat was sent, with its body.
    pub heartbeat_calls: Vec<(Instant, Vec<u32>)>,
    /// When each shard task asked for its checkpoint (one per task start).
    pub start_calls: Vec<Instant>,
    /// Commits that succeeded: when, and the cursor.
    pub committed: Vec<(Instant, String)>,
    /// Every commit sent: when, and its `forceSuccess`.
    pub commit_calls: Vec<(Instant, bool)>,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            creates: VecDeque::from([Reply::Ok(())]),
            lists: VecDeque::from([Reply::Ok(Vec::new())]),
            updates: VecDeque::from([Reply::Ok(())]),
            group_calls: Vec::new(),
            heartbeats: VecDeque::from([Reply::Ok(vec![0])]),
            starts: VecDeque::from([Reply::Ok(None)]),
            commits: VecDeque::from([Reply::Ok(())]),
            pulls: VecDeque::from([Reply::Ok(())]),
            begin: 0,
            batches: 0,
            pull_size: (1, BATCH_BYTES),
            pull_calls: Vec::new(),
            heartbeat_calls: Vec::new(),
            start_calls: Vec::new(),
            committed: Vec::new(),
            commit_calls: Vec::new(),
        }
    }
}

fn next<T: Clone>(replies: &mut VecDeque<Reply<T>>) -> Reply<T> {
    if replies.len() > 1 {
        replies.pop_front().expect("not empty")
    } else {
        replies.front().cloned().expect("a reply is scripted")
    }
}

/// The fake service; clones share the script.
#[derive(Debug, Clone, Default)]
pub struct FakeService {
    /// The script and the calls.
    pub script: Arc<Mutex<Script>>,
}

impl FakeService {
    /// A service following `script`.
    pub fn new(script: Script) -> Self {
        Self {
            script: Arc::new(Mutex::new(script)),
        }
    }

    /// Reads or changes the script.
    pub fn with<T>(&self, change: impl FnOnce(&mut Script) -> T) -> T {
        change(&mut self.script.lock().expect("script lock"))
    }
}

impl GroupService for FakeService {
    async fn list_consumer_groups(
        &self,
        _logstore: &str,
    ) -> Result<Vec<ConsumerGroupInfo>, ClientError> {
        let reply = self.with(|script| {
            script.group_calls.push("list");
            next(&mut script.lists)
        });
        reply.give().await
    }

    async fn create_consumer_group(
        &self,
        _logstore: &str,
        _group: &str,
        _timeout: u32,
        _order: bool,
    ) -> Result<(), ClientError> {
        let reply = self.with(|script| {
            script.group_calls.push("create");
            next(&mut script.creates)
        });
        reply.give().await
    }

    async fn update_consumer_group(
        &self,
        _logstore: &str,
        _group: &str,
        _timeout: u32,
        _order: bool,
    ) -> Result<(), ClientError> {
        let reply = self.with(|script| {
            script.group_calls.push("update");
            next(&mut script.updates)
        });
        reply.give().await
    }

    async fn heartbeat(
        &self,
        _logstore: &str,
        _group: &str,
        _consumer: &str,
        held: &[u32],
    ) -> Result<Vec<u32>, ClientError> {
        let reply = self.with(|script| {
            script.heartbeat_calls.push((Instant::now(), held.to_vec()));
            next(&mut script.heartbeats)
        });
        reply.give().await
    }

    async fn get_checkpoint(
        &self,
        _logstore: &str,
        _group: &str,
        _shard: u32,
    ) -> Result<Option<ShardCheckpoint>, ClientError> {
        let reply = self.with(|script| {
            script.start_calls.push(Instant::now());
            next(&mut script.starts)
        });
        Ok(reply.give().await?.map(|checkpoint| ShardCheckpoint {
            shard: 0,
            checkpoint,
            update_time: 0,
            consumer: "me".into(),
        }))
    }

    async fn get_cursor(
        &self,
        _logstore: &str,
        _shard: u32,
        from: CursorFrom,
    ) -> Result<String, ClientError> {
        let (begin, end) = self.with(|script| (script.begin, script.batches));
        Ok(at(match from {
            CursorFrom::End => end,
            CursorFrom::Begin | CursorFrom::Time(_) => begin,
        }))
    }

    async fn pull_logs<T: Send, F: Future<Output = T> + Send>(
        &self,
        _logstore: &str,
        _shard: u32,
        cursor: &str,
        _count: u32,
        make_room: impl FnOnce(usize) -> F + Send,
    ) -> Result<(PullResult, T), ClientError> {
        let (reply, begin, end, (groups, raw_size)) = self.with(|script| {
            script.pull_calls.push(Instant::now());
            let reply = next(&mut script.pulls);
            (reply, script.begin, script.batches, script.pull_size)
        });
        reply.give().await?;
        let position = cursor::decode(cursor)
            .ok()
            .and_then(|position| u64::try_from(position).ok())
            .filter(|position| (begin..=end).contains(position))
            .ok_or_else(|| api_error("InvalidCursor"))?;
        let pulled = if position == end {
            PullResult {
                records: Default::default(),
                group_count: 0,
                next_cursor: cursor.to_owned(),
                raw_size: 0,
                end_of_cursor: true,
            }
        } else {
            PullResult {
                records: RecordsBuilder::new()
                    .log(1, None, &[("n", &position.to_string())])
                    .build(),
                group_count: groups,
                next_cursor: at(position + 1),
                raw_size,
                end_of_cursor: false,
            }
        };
        let room = make_room(pulled.raw_size).await;
        Ok((pulled, room))
    }

    async fn update_checkpoint(
        &self,
        _logstore: &str,
        _group: &str,
        _consumer: &str,
        _shard: u32,
        cursor: &str,
        force: bool,
    ) -> Result<(), ClientError> {
        let reply = self.with(|script| {
            script.commit_calls.push((Instant::now(), force));
            next(&mut script.commits)
        });
        reply.give().await?;
        self.with(|script| script.committed.push((Instant::now(), cursor.to_owned())));
        Ok(())
    }
}

/// A configuration with 1 s heartbeats, a 3 s group timeout, 5 s commits, 1 s fetch
/// interval and a 10 s drain timeout.
pub fn config() -> ConsumerConfig {
    let mut config = ConsumerConfig::new("g");
    config.name = Some("me".into());
    config.heartbeat_interval = HumanDuration(Duration::from_secs(1));
    config.group_timeout = Some(HumanDuration(Duration::from_secs(3)));
    config.checkpoint_interval = HumanDuration(Duration::from_secs(5));
    config.fetch_interval = HumanDuration(Duration::from_secs(1));
    config.drain_timeout = HumanDuration(Duration::from_secs(10));
    config
}

/// The group timeout of [`shard_task`]'s leases: a day, longer than any test runs.
pub const LEASE_OUTLASTING_EVERY_TEST: Duration = Duration::from_secs(24 * 3600);

/// A task for shard 0 of `logstore`, holding its lease, and the receiving end of its output
/// (the "pipeline").
pub fn shard_task(
    service: &FakeService,
    logstore: &str,
    config: ConsumerConfig,
) -> (ShardTask<FakeService>, mpsc::Receiver<SinkBatch>) {
    let (output, batches) = mpsc::channel(16);
    let budget = Arc::new(Semaphore::new(super::shard::budget_size(&config)));
    let leases = Arc::new(Leases::new(LEASE_OUTLASTING_EVERY_TEST));
    leases.renew([0], Instant::now());
    let task = ShardTask {
        client: service.clone(),
        control: service.clone(),
        leases,
        key: ShardKey {
            logstore: logstore.into(),
            shard: 0,
        },
        group: "g".into(),
        consumer: "me".into(),
        config: Arc::new(config),
        output,
        budget,
        releases: tokio::sync::broadcast::channel(16).0,
    };
    (task, batches)
}

/// Serialises the tests that move the process-wide `inflight_bytes` gauge.
pub static GAUGE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

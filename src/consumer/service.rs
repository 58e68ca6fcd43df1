//! The log-service calls the consumer runtime makes: joining the group, heartbeats,
//! checkpoints, cursors and pulls. [`Client`] answers them over HTTP; the runtime's tasks
//! only see this trait, so their timing can be driven by a paused clock.

use std::fmt::Debug;
use std::future::Future;

use crate::source::api::checkpoint::ShardCheckpoint;
use crate::source::api::consumer_group::ConsumerGroupInfo;
use crate::source::api::cursor::CursorFrom;
use crate::source::api::pull_logs::PullResult;
use crate::source::{Client, ClientError};

/// The consumer-group calls of one project (see the [`Client`] methods of the same names).
pub trait GroupService: Debug + Clone + Send + Sync + 'static {
    /// Lists the consumer groups of `logstore`.
    fn list_consumer_groups(
        &self,
        logstore: &str,
    ) -> impl Future<Output = Result<Vec<ConsumerGroupInfo>, ClientError>> + Send;

    /// Creates a consumer group.
    fn create_consumer_group(
        &self,
        logstore: &str,
        group: &str,
        timeout: u32,
        order: bool,
    ) -> impl Future<Output = Result<(), ClientError>> + Send;

    /// Changes a consumer group's timeout and order.
    fn update_consumer_group(
        &self,
        logstore: &str,
        group: &str,
        timeout: u32,
        order: bool,
    ) -> impl Future<Output = Result<(), ClientError>> + Send;

    /// Reports the held shards and returns the shards to hold now.
    fn heartbeat(
        &self,
        logstore: &str,
        group: &str,
        consumer: &str,
        held: &[u32],
    ) -> impl Future<Output = Result<Vec<u32>, ClientError>> + Send;

    /// Reads the stored checkpoint of `shard`.
    fn get_checkpoint(
        &self,
        logstore: &str,
        group: &str,
        shard: u32,
    ) -> impl Future<Output = Result<Option<ShardCheckpoint>, ClientError>> + Send;

    /// Returns the cursor of `shard` at `from`.
    fn get_cursor(
        &self,
        logstore: &str,
        shard: u32,
        from: CursorFrom,
    ) -> impl Future<Output = Result<String, ClientError>> + Send;

    /// Pulls up to `count` log groups of `shard` from `cursor`, awaiting
    /// `make_room(raw_size)` before the logs are decoded (see
    /// [`Client::pull_logs_making_room`]).
    fn pull_logs<T: Send, F: Future<Output = T> + Send>(
        &self,
        logstore: &str,
        shard: u32,
        cursor: &str,
        count: u32,
        make_room: impl FnOnce(usize) -> F + Send,
    ) -> impl Future<Output = Result<(PullResult, T), ClientError>> + Send;

    /// Stores `cursor` as the checkpoint of `shard`.
    fn update_checkpoint(
        &self,
        logstore: &str,
        group: &str,
        consumer: &str,
        shard: u32,
        cursor: &str,
        force: bool,
    ) -> impl Future<Output = Result<(), ClientError>> + Send;
}

impl GroupService for Client {
    fn list_consumer_groups(
        &self,
        logstore: &str,
    ) -> impl Future<Output = Result<Vec<ConsumerGroupInfo>, ClientError>> + Send {
        Client::list_consumer_groups(self, logstore)
    }

    fn create_consumer_group(
        &self,
        logstore: &str,
        group: &str,
        timeout: u32,
        order: bool,
    ) -> impl Future<Output = Result<(), ClientError>> + Send {
        Client::create_consumer_group(self, logstore, group, timeout, order)
    }

    fn update_consumer_group(
        &self,
        logstore: &str,
        group: &str,
        timeout: u32,
        order: bool,
    ) -> impl Future<Output = Result<(), ClientError>> + Send {
        Client::update_consumer_group(self, logstore, group, timeout, order)
    }

    fn heartbeat(
        &self,
        logstore: &str,
        group: &str,
        consumer: &str,
        held: &[u32],
    ) -> impl Future<Output = Result<Vec<u32>, ClientError>> + Send {
        Client::heartbeat(self, logstore, group, consumer, held)
    }

    fn get_checkpoint(
        &self,
        logstore: &str,
        group: &str,
        shard: u32,
    ) -> impl Future<Output = Result<Option<ShardCheckpoint>, ClientError>> + Send {
        Client::get_checkpoint(self, logstore, group, shard)
    }

    fn get_cursor(
        &self,
        logstore: &str,
        shard: u32,
        from: CursorFrom,
    ) -> impl Future<Output = Result<String, ClientError>> + Send {
        Client::get_cursor(self, logstore, shard, from)
    }

    fn pull_logs<T: Send, F: Future<Output = T> + Send>(
        &self,
        logstore: &str,
        shard: u32,
        cursor: &str,
        count: u32,
        make_room: impl FnOnce(usize) -> F + Send,
    ) -> impl Future<Output = Result<(PullResult, T), ClientError>> + Send {
        Client::pull_logs_making_room(self, logstore, shard, cursor, count, make_room)
    }

    fn update_checkpoint(
        &self,
        logstore: &str,
        group: &str,
        consumer: &str,
        shard: u32,
        cursor: &str,
        force: bool,
    ) -> impl Future<Output = Result<(), ClientError>> + Send {
        Client::update_checkpoint(self, logstore, group, consumer, shard, cursor, force)
    }
}

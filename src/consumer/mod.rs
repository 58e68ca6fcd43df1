//! The consumer-group runtime, as the official consumer libraries behave: join (creating the
//! group when absent), heartbeat the held shards, run one task per assigned shard, hand batches
//! to the pipeline, and commit each shard's checkpoint only past batches every sink delivered.
//!
//! - [`join`]: creating or checking the group at start-up.
//! - [`heartbeat`]: held plus draining shards; eviction after the group timeout.
//! - [`lease`]: how long a shard may still be delivered without a heartbeat listing it.
//! - [`name`]: the default consumer name, stable across restarts on one host.
//! - [`worker`]: reconciles assigned shards against running tasks.
//! - [`shard`]: start cursor → pull → hand on → drain.
//! - [`pacing`]: the waits between pulls (small pulls, throttling).
//! - [`checkpoint`]: the pure fetched/delivered/committed tracker.
//! - [`drain`]: the deadlines that bound a drain and the shutdown by `drain_timeout`.
//! - [`service`]: the log-service calls the tasks above make.

pub mod checkpoint;
pub mod config;
pub mod drain;
#[cfg(test)]
mod fake;
pub mod heartbeat;
pub mod join;
pub mod lease;
pub mod name;
pub mod pacing;
pub mod service;
pub mod shard;
pub mod worker;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, mpsc, watch, Notify, Semaphore};
use tokio_util::sync::CancellationToken;

pub use config::{ConsumerConfig, StartPosition};
use heartbeat::Heartbeat;
use lease::Leases;
use name::ConsumerName;
use service::GroupService;
use shard::ShardTask;
use worker::Worker;

use crate::model::batch::SinkBatch;
use crate::model::ShardKey;
use crate::source::{Client, ClientError};

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    /// Joining the consumer group failed for a reason that retrying cannot fix.
    #[error("cannot join consumer group `{group}` on logstore `{logstore}`: {source}")]
    Join {
        /// Logstore.
        logstore: String,
        /// Group.
        group: String,
        /// The API error.
        #[source]
        source: ClientError,
    },
    /// The configuration is invalid.
    #[error("invalid consumer configuration: {0}")]
    Config(String),
}

/// Consumes `logstores` as one member of the configured group until `shutdown`, sending
/// every pulled batch to `output` and announcing on `releases` each shard that starts
/// draining. Returns after every shard drained, committed its final
/// checkpoint and was released, within `drain_timeout` of `shutdown`.
///
/// # Errors
///
/// [`ConsumerError`] when the group cannot be joined (unknown logstore, bad credentials).
pub async fn run(
    client: Client,
    logstores: &[String],
    config: ConsumerConfig,
    output: mpsc::Sender<SinkBatch>,
    releases: broadcast::Sender<ShardKey>,
    shutdown: CancellationToken,
) -> Result<(), ConsumerError> {
    config
        .validate()
        .map_err(|error| ConsumerError::Config(error.to_string()))?;
    let name = ConsumerName::resolve(&config);
    let consumer: Arc<str> = name.as_str().into();
    // Heartbeats and commits: one attempt each, within half the heartbeat interval.
    // Heartbeats never wait for a turn behind pulls: a late one loses every shard.
    let control = client.single_attempt(config.call_timeout());
    let heartbeats = control.uncapped();
    let config = Arc::new(config);
    let budget = Arc::new(Semaphore::new(shard::budget_size(&config)));
    tracing::info!(group = %config.group, consumer = %consumer, ?logstores, "joining consumer group");
    let mut members = tokio::task::JoinSet::new();
    for logstore in logstores {
        if !join::ensure_group(&client, logstore, &config, &shutdown).await? {
            break;
        }
        let template = ShardTask {
            client: client.clone(),
            control: control.clone(),
            leases: Arc::new(Leases::new(config.group_timeout())),
            key: ShardKey {
                logstore: logstore.as_str().into(),
                shard: 0,
            },
            group: config.group.as_str().into(),
            consumer: consumer.clone(),
            config: config.clone(),
            output: output.clone(),
            budget: budget.clone(),
            releases: releases.clone(),
        };
        members.spawn(run_member(
            template,
            heartbeats.clone(),
            config.clone(),
            shutdown.clone(),
        ));
    }
    drop(output);
    if members.is_empty() {
        tracing::info!(group = %config.group, consumer = %consumer, "stopped before joining the consumer group");
        return Ok(());
    }
    while members.join_next().await.is_some() {}
    tracing::info!(group = %config.group, consumer = %consumer, "left consumer group");
    Ok(())
}

/// One logstore's heartbeat (sent through `heartbeats`) and worker; the heartbeat outlives
/// the worker's drain, and the release heartbeat ends by the drain deadline.
async fn run_member<S: GroupService>(
    template: ShardTask<S>,
    heartbeats: S,
    config: Arc<ConsumerConfig>,
    shutdown: CancellationToken,
) {
    let running = Arc::new(Mutex::new(BTreeSet::new()));
    let poke = Arc::new(Notify::new());
    let (assigned_tx, assigned_rx) = watch::channel(BTreeSet::new());
    let heartbeat = Arc::new(Heartbeat {
        client: heartbeats,
        leases: template.leases.clone(),
        logstore: template.key.logstore.to_string(),
        group: config.group.clone(),
        consumer: template.consumer.to_string(),
        interval: config.heartbeat_interval.0,
        timeout: config.group_timeout(),
        running: running.clone(),
        poke: poke.clone(),
    });
    let heartbeat_stop = CancellationToken::new();
    let heartbeat_task = tokio::spawn({
        let heartbeat = heartbeat.clone();
        let stop = heartbeat_stop.clone();
        async move { heartbeat.run(assigned_tx, stop).await }
    });
    let deadlines = Worker {
        template,
        running,
        poke,
    }
    .run(assigned_rx, shutdown)
    .await;
    heartbeat_stop.cancel();
    if let Err(error) = heartbeat_task.await {
        tracing::error!(%error, "heartbeat task failed");
    }
    heartbeat.release(deadlines.release).await;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use fake::{FakeService, Reply, Script, GAUGE};

    #[tokio::test(start_paused = true)]
    async fn a_member_stops_within_the_drain_timeout_when_nothing_answers() {
        let _gauge = GAUGE.lock().await;
        // Shard 0 is granted once; then heartbeats and the final commit hang, and the sink
        // never acknowledges the one batch.
        let service = FakeService::new(Script {
            heartbeats: [Reply::Ok(vec![0]), Reply::Hang].into(),
            commits: [Reply::Ok(()), Reply::Hang].into(),
            batches: 1,
            ..Script::default()
        });
        let config = fake::config();
        let (template, mut batches) = fake::shard_task(&service, "member-stuck", config.clone());
        let held = tokio::spawn(async move { batches.recv().await });
        let shutdown = CancellationToken::new();
        let member = tokio::spawn(run_member(
            template,
            service.clone(),
            Arc::new(config),
            shutdown.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let stopped = tokio::time::Instant::now();
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(60), member)
            .await
            .expect("the member stops")
            .unwrap();
        assert_eq!(
            stopped.elapsed(),
            Duration::from_secs(10),
            "the drain timeout"
        );
        assert!(held.await.unwrap().is_some(), "the batch reached the sink");
    }
}

//! The heartbeat task of one logstore: tells the server which shards this consumer holds
//! (assigned ones plus ones still draining) and publishes the shards it should hold.
//!
//! Heartbeat failures keep the last assignment until `group timeout + interval` has passed
//! without a success; then the consumer counts as evicted and publishes an empty assignment,
//! so its shards drain and stop (another consumer owns them by then). On stop, a last
//! heartbeat reports only the shards still running (none after a clean drain), which hands
//! them to the other consumers at once.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::source::Client;
use crate::telemetry::{health, HealthState};

/// Shards whose tasks are running (consuming or draining), shared with the worker.
pub type RunningShards = Arc<Mutex<BTreeSet<u32>>>;

/// Everything the heartbeat task needs.
#[derive(Debug)]
pub struct Heartbeat {
    /// Log-service client.
    pub client: Client,
    /// Logstore name.
    pub logstore: String,
    /// Consumer group name.
    pub group: String,
    /// This consumer's name.
    pub consumer: String,
    /// Time between heartbeats.
    pub interval: Duration,
    /// The group timeout.
    pub timeout: Duration,
    /// Shards with a running task.
    pub running: RunningShards,
    /// Wakes the task early (a shard finished draining, so it can be handed on now).
    pub poke: Arc<Notify>,
}

impl Heartbeat {
    /// Runs until `stop`, publishing assignments on `assigned`.
    pub async fn run(self, assigned: watch::Sender<BTreeSet<u32>>, stop: CancellationToken) {
        let component = format!("consumer:{}", self.logstore);
        health().set(&component, HealthState::Starting);
        let mut last_success = Instant::now();
        let mut current: BTreeSet<u32> = BTreeSet::new();
        loop {
            let started = Instant::now();
            let body: Vec<u32> = {
                let running = self.running.lock().expect("running shards lock");
                running.union(&current).copied().collect()
            };
            match self
                .client
                .heartbeat(&self.logstore, &self.group, &self.consumer, &body)
                .await
            {
                Ok(shards) => {
                    last_success = Instant::now();
                    health().set(&component, HealthState::Healthy);
                    let shards: BTreeSet<u32> = shards.into_iter().collect();
                    if shards != current {
                        tracing::info!(logstore = %self.logstore, consumer = %self.consumer, assigned = ?shards, "shard assignment changed");
                    }
                    current = shards;
                    assigned.send_replace(current.clone());
                }
                Err(error) => {
                    let silent_for = last_success.elapsed();
                    if silent_for > self.timeout + self.interval && !current.is_empty() {
                        tracing::error!(logstore = %self.logstore, %error, ?silent_for, "heartbeats failing past the group timeout; considering this consumer evicted and releasing its shards");
                        current.clear();
                        assigned.send_replace(current.clone());
                    } else {
                        tracing::warn!(logstore = %self.logstore, %error, "heartbeat failed");
                    }
                    health().set(
                        &component,
                        HealthState::Unhealthy(format!("heartbeat failed: {error}")),
                    );
                }
            }
            let next = started + self.interval;
            tokio::select! {
                () = tokio::time::sleep_until(next.into()) => {}
                () = self.poke.notified() => {}
                () = stop.cancelled() => break,
            }
        }
        health().remove(&component);
        let still_running: Vec<u32> = self
            .running
            .lock()
            .expect("running shards lock")
            .iter()
            .copied()
            .collect();
        match self
            .client
            .heartbeat(&self.logstore, &self.group, &self.consumer, &still_running)
            .await
        {
            Ok(_) => {
                tracing::info!(logstore = %self.logstore, consumer = %self.consumer, "released shards")
            }
            Err(error) => {
                tracing::warn!(logstore = %self.logstore, %error, "final heartbeat failed; shards move after the group timeout")
            }
        }
    }
}

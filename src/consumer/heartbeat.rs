//! The heartbeat task of one logstore: tells the server which shards this consumer holds
//! (assigned ones plus ones still draining) and publishes the shards it should hold.
//!
//! Each call is one attempt (no retries inside it) of at most half the interval; a call
//! without an answer by then counts as failed, and the next one goes out on schedule. Failures keep the last assignment until the group timeout has
//! passed since the last successful heartbeat was sent. That is the earliest moment the
//! server can give the shards to another consumer (it counts from when it received that
//! heartbeat), so this one then counts itself evicted and publishes an empty assignment, and
//! its shards stop pulling and drain. The official consumers release their shards the same
//! way, one interval later. This happens on time even while a call hangs. Each success also
//! renews the [`Leases`] of the shards it lists, which the shard tasks check before handing a
//! batch on.
//!
//! A server that no longer knows this consumer (it timed out, e.g. after a network loss or a
//! frozen process) answers a heartbeat that reports shards with 400
//! `NotExistConsumerWithBody`. Then every shard is dropped at once, and the next heartbeat
//! reports none of them (not even those still draining), so the consumer joins again with an
//! empty list.
//!
//! On stop, a last heartbeat bounded by the drain deadline reports only the shards still
//! running (none after a clean drain), which hands them to the other consumers at once.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::lease::Leases;
use super::service::GroupService;
use crate::source::{ApiErrorCode, Client};
use crate::telemetry::{health, HealthState};

/// Shards whose tasks are running (consuming or draining), shared with the worker.
pub type RunningShards = Arc<Mutex<BTreeSet<u32>>>;

/// Everything the heartbeat task needs.
#[derive(Debug)]
pub struct Heartbeat<S = Client> {
    /// Log-service client (one attempt per call, see [`ConsumerConfig::call_timeout`]).
    ///
    /// [`ConsumerConfig::call_timeout`]: super::ConsumerConfig::call_timeout
    pub client: S,
    /// The logstore's shard leases, renewed by each successful heartbeat.
    pub leases: Arc<Leases>,
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

/// What the server last granted, and when the heartbeat that got it was sent.
struct Membership {
    assigned: watch::Sender<BTreeSet<u32>>,
    current: BTreeSet<u32>,
    last_success: Instant,
    /// Shards dropped when the server no longer knew this consumer, left out of heartbeats
    /// while they drain.
    forsaken: BTreeSet<u32>,
}

impl Membership {
    /// Publishes an empty assignment: every shard stops pulling and drains.
    fn release_all(&mut self) {
        self.current.clear();
        self.assigned.send_replace(BTreeSet::new());
    }
}

impl<S: GroupService> Heartbeat<S> {
    /// How long one heartbeat call may take: half the interval.
    pub fn call_deadline(&self) -> Duration {
        self.interval / 2
    }

    /// Runs until `stop`, publishing assignments on `assigned`.
    pub async fn run(&self, assigned: watch::Sender<BTreeSet<u32>>, stop: CancellationToken) {
        let component = self.component();
        health().set(&component, HealthState::Starting);
        let mut membership = Membership {
            assigned,
            current: BTreeSet::new(),
            last_success: Instant::now(),
            forsaken: BTreeSet::new(),
        };
        loop {
            let started = Instant::now();
            let body: Vec<u32> = {
                let running = self.running.lock().expect("running shards lock");
                membership.forsaken.retain(|shard| running.contains(shard));
                running
                    .union(&membership.current)
                    .filter(|shard| !membership.forsaken.contains(shard))
                    .copied()
                    .collect()
            };
            let call = tokio::time::timeout(
                self.call_deadline(),
                self.client
                    .heartbeat(&self.logstore, &self.group, &self.consumer, &body),
            );
            let Some(answer) = self.watching(&mut membership, &stop, call).await else {
                break;
            };
            let failure = match answer {
                Ok(Ok(shards)) => {
                    membership.last_success = started;
                    // The shards reported, too: the service hands none of them to another
                    // consumer while this one still reports it (draining).
                    self.leases
                        .renew(body.iter().chain(&shards).copied(), started);
                    health().set(&component, HealthState::Healthy);
                    let shards: BTreeSet<u32> = shards.into_iter().collect();
                    if shards != membership.current {
                        tracing::info!(logstore = %self.logstore, consumer = %self.consumer, assigned = ?shards, "shard assignment changed");
                    }
                    membership.current = shards;
                    membership.assigned.send_replace(membership.current.clone());
                    None
                }
                Ok(Err(error))
                    if error.api_code() == Some(&ApiErrorCode::NotExistConsumerWithBody) =>
                {
                    tracing::error!(logstore = %self.logstore, consumer = %self.consumer, %error, "the log service no longer knows this consumer (it timed out); dropping every shard and joining again");
                    membership.forsaken.extend(body.iter().copied());
                    self.leases.revoke_all();
                    membership.release_all();
                    Some(error.to_string())
                }
                Ok(Err(error)) => Some(error.to_string()),
                Err(_) => Some(format!("no answer within {:?}", self.call_deadline())),
            };
            if let Some(error) = failure {
                tracing::warn!(logstore = %self.logstore, %error, "heartbeat failed");
                health().set(
                    &component,
                    HealthState::Unhealthy(format!("heartbeat failed: {error}")),
                );
            }
            let next = started + self.interval;
            let wait = async {
                tokio::select! {
                    () = tokio::time::sleep_until(next) => {}
                    () = self.poke.notified() => {}
                }
            };
            if self.watching(&mut membership, &stop, wait).await.is_none() {
                break;
            }
        }
        health().remove(&component);
    }

    /// The last heartbeat: reports only the shards still running, so that the server can hand
    /// the others on at once. Gives up at `deadline`.
    pub async fn release(&self, deadline: Instant) {
        let still_running: Vec<u32> = self
            .running
            .lock()
            .expect("running shards lock")
            .iter()
            .copied()
            .collect();
        let call =
            self.client
                .heartbeat(&self.logstore, &self.group, &self.consumer, &still_running);
        match tokio::time::timeout_at(deadline, call).await {
            Ok(Ok(_)) => {
                tracing::info!(logstore = %self.logstore, consumer = %self.consumer, "released shards")
            }
            Ok(Err(error)) => {
                tracing::warn!(logstore = %self.logstore, %error, "final heartbeat failed; shards move after the group timeout")
            }
            Err(_) => {
                tracing::warn!(logstore = %self.logstore, "final heartbeat unanswered at the drain deadline; shards move after the group timeout")
            }
        }
    }

    fn component(&self) -> String {
        format!("consumer:{}", self.logstore)
    }

    /// Awaits `future`, or returns `None` when `stop` fires first. Meanwhile, once the group
    /// timeout has passed since the last successful heartbeat was sent, releases every
    /// assigned shard.
    async fn watching<F: Future>(
        &self,
        membership: &mut Membership,
        stop: &CancellationToken,
        future: F,
    ) -> Option<F::Output> {
        tokio::pin!(future);
        loop {
            let evicted_at = membership.last_success + self.timeout;
            tokio::select! {
                output = &mut future => return Some(output),
                () = stop.cancelled() => return None,
                () = tokio::time::sleep_until(evicted_at), if !membership.current.is_empty() => {
                    tracing::error!(logstore = %self.logstore, consumer = %self.consumer, timeout = ?self.timeout, "no successful heartbeat within the group timeout; considering this consumer evicted and releasing its shards");
                    membership.release_all();
                    health().set(
                        &self.component(),
                        HealthState::Unhealthy("evicted: no successful heartbeat within the group timeout".into()),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::fake::{FakeService, Reply, Script};

    /// 1 s heartbeats, 3 s group timeout: each call may take 500 ms.
    fn heartbeat(service: &FakeService, logstore: &str) -> Arc<Heartbeat<FakeService>> {
        Arc::new(Heartbeat {
            client: service.clone(),
            leases: Arc::new(Leases::new(Duration::from_secs(3))),
            logstore: logstore.into(),
            group: "g".into(),
            consumer: "me".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(3),
            running: RunningShards::default(),
            poke: Arc::default(),
        })
    }

    fn script(heartbeats: Vec<Reply<Vec<u32>>>) -> FakeService {
        FakeService::new(Script {
            heartbeats: heartbeats.into(),
            ..Script::default()
        })
    }

    /// Starts the heartbeat; returns the published assignment and the stop token.
    fn start(
        heartbeat: &Arc<Heartbeat<FakeService>>,
    ) -> (watch::Receiver<BTreeSet<u32>>, CancellationToken) {
        let (assigned, receiver) = watch::channel(BTreeSet::new());
        let stop = CancellationToken::new();
        tokio::spawn({
            let heartbeat = heartbeat.clone();
            let stop = stop.clone();
            async move { heartbeat.run(assigned, stop).await }
        });
        (receiver, stop)
    }

    fn set(shards: &[u32]) -> BTreeSet<u32> {
        shards.iter().copied().collect()
    }

    #[tokio::test(start_paused = true)]
    async fn shards_are_released_once_the_group_timeout_passed_without_a_successful_heartbeat() {
        let service = script(vec![
            Reply::Ok(vec![0, 1]),
            Reply::Fail("InternalServerError"),
        ]);
        let heartbeat = heartbeat(&service, "heartbeat-evict");
        let (assigned, stop) = start(&heartbeat);
        tokio::time::sleep(Duration::from_millis(2_900)).await;
        assert_eq!(
            *assigned.borrow(),
            set(&[0, 1]),
            "held while failures are recent"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            assigned.borrow().is_empty(),
            "released 3 s after the last successful heartbeat was sent"
        );
        let calls = service.with(|script| script.heartbeat_calls.len());
        assert_eq!(calls, 4, "one call a second, at 0, 1, 2 and 3 s");
        stop.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_heartbeat_call_is_abandoned_at_its_deadline_and_eviction_is_on_time() {
        let service = script(vec![Reply::Ok(vec![0]), Reply::Hang]);
        let heartbeat = heartbeat(&service, "heartbeat-hang");
        assert_eq!(heartbeat.call_deadline(), Duration::from_millis(500));
        let started = Instant::now();
        let (assigned, stop) = start(&heartbeat);
        tokio::time::sleep(Duration::from_millis(2_900)).await;
        assert_eq!(*assigned.borrow(), set(&[0]));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            assigned.borrow().is_empty(),
            "evicted at 3 s while calls hang"
        );
        let sent: Vec<Duration> = service.with(|script| {
            script
                .heartbeat_calls
                .iter()
                .map(|(at, _)| *at - started)
                .collect()
        });
        let seconds: Vec<Duration> = (0..4).map(Duration::from_secs).collect();
        assert_eq!(sent, seconds, "each hanging call is given up after 500 ms");
        stop.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_successful_heartbeat_keeps_the_assignment_past_earlier_failures() {
        let service = script(vec![
            Reply::Ok(vec![0]),
            Reply::Fail("InternalServerError"),
            Reply::Fail("InternalServerError"),
            Reply::Ok(vec![0]),
            Reply::Fail("InternalServerError"),
        ]);
        let heartbeat = heartbeat(&service, "heartbeat-recover");
        let (assigned, stop) = start(&heartbeat);
        // Successes sent at 0 s and 3 s: eviction is due at 6 s, not 3 s.
        tokio::time::sleep(Duration::from_millis(5_900)).await;
        assert_eq!(*assigned.borrow(), set(&[0]));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(assigned.borrow().is_empty());
        stop.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn an_unknown_consumer_answer_drops_every_shard_at_once_and_rejoins_with_an_empty_list() {
        let service = script(vec![
            Reply::Ok(vec![0, 1]),
            Reply::Fail("NotExistConsumerWithBody"),
            Reply::Ok(vec![]),
            Reply::Ok(vec![1]),
        ]);
        let heartbeat = heartbeat(&service, "heartbeat-unknown");
        let started = Instant::now();
        let (assigned, stop) = start(&heartbeat);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(*assigned.borrow(), set(&[0, 1]));
        // The shard tasks run (and keep draining long after the refusal).
        heartbeat.running.lock().unwrap().extend([0, 1]);
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(
            assigned.borrow().is_empty(),
            "dropped at the refusal (1 s), not at the group timeout (3 s)"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        let calls: Vec<(Duration, Vec<u32>)> = service.with(|script| {
            script
                .heartbeat_calls
                .iter()
                .map(|(at, body)| (*at - started, body.clone()))
                .collect()
        });
        let second = Duration::from_secs(1);
        assert_eq!(
            calls,
            [
                (Duration::ZERO, vec![]),
                (second, vec![0, 1]),
                (2 * second, vec![]),
                (3 * second, vec![]),
            ],
            "the draining shards are not reported again"
        );
        assert_eq!(*assigned.borrow(), set(&[1]), "joined again");
        heartbeat.running.lock().unwrap().clear();
        stop.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn leases_last_while_successful_heartbeats_report_or_grant_the_shard() {
        let service = script(vec![
            Reply::Ok(vec![0, 1]),
            Reply::Ok(vec![0]),
            Reply::Ok(vec![0]),
            Reply::Ok(vec![0]),
            Reply::Ok(vec![0]),
            Reply::Ok(vec![0]),
            Reply::Fail("InternalServerError"),
        ]);
        let heartbeat = heartbeat(&service, "heartbeat-leases");
        let (_assigned, stop) = start(&heartbeat);
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Shard 1 moved on at 1 s but keeps draining (and being reported) until 3.5 s.
        heartbeat.running.lock().unwrap().extend([0, 1]);
        tokio::time::sleep(Duration::from_secs(3)).await;
        heartbeat.running.lock().unwrap().remove(&1);
        tokio::time::sleep(Duration::from_millis(2_100)).await;
        let leases = &heartbeat.leases;
        assert!(leases.holds(0) && leases.holds(1), "at 5.6 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!leases.holds(1), "2.7 s after the last report, sent at 3 s");
        assert!(leases.holds(0));
        // Heartbeats fail from 6 s: the last success was sent at 5 s.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(!leases.holds(0), "2.7 s after the last success");
        stop.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn the_release_heartbeat_gives_up_at_the_deadline() {
        let service = script(vec![Reply::Hang]);
        let heartbeat = heartbeat(&service, "heartbeat-release");
        heartbeat.running.lock().unwrap().insert(7);
        let started = Instant::now();
        let deadline = started + Duration::from_secs(5);
        tokio::time::timeout(Duration::from_secs(60), heartbeat.release(deadline))
            .await
            .expect("the release returns by its deadline");
        assert_eq!(Instant::now(), deadline);
        let body = service.with(|script| script.heartbeat_calls[0].1.clone());
        assert_eq!(body, vec![7], "only the shards still running are reported");
    }
}

//! Catch-up progress: when a shard's delivered data falls more than [`BEHIND_AFTER`] behind
//! the clock (a process starting on an old checkpoint, a SIEM outage, a new group starting
//! at `begin`), the shard is *catching up* until its pulls reach the end of the shard.
//!
//! Progress is measured in data time, the only measure the real log service gives for
//! free (its cursors do not count log groups): the lag is now minus the time of the newest
//! delivered log, as in `checkpoint_lag_seconds`. For each catching-up shard:
//! - **percent**: how much of the lag at the start has been worked off;
//! - **speed**: data seconds delivered per wall-clock second (above 1 the lag shrinks);
//! - **ETA**: lag / (speed − 1), while new data keeps arriving in real time;
//! - **rate**: logs delivered per second.
//!
//! The shard tasks call [`delivered`] per delivered batch and [`pulled`] per pull; the
//! figures show in `/status` (`catch_up`) and `/metrics` (`catch_up_*`) at once, and in a
//! `catching up` log line every [`REPORT_EVERY`] while any shard is behind. A catch-up that
//! ends within one interval (logs stamped a little late) logs nothing; a longer one ends
//! with `shard caught up`.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::time::Instant;

use super::metrics::{metrics, ShardLabels};

/// Lag above which a shard counts as behind.
pub const BEHIND_AFTER: Duration = Duration::from_secs(60);

/// Least time between two progress log lines.
pub const REPORT_EVERY: Duration = Duration::from_secs(30);

/// One shard catching up.
#[derive(Debug, Clone)]
struct Episode {
    started: Instant,
    /// Lag when the episode started, seconds.
    start_lag: f64,
    /// Time of the newest delivered log when the episode started (Unix seconds).
    start_data_time: f64,
    /// Time of the newest delivered log now.
    data_time: f64,
    /// Logs delivered since the start.
    delivered_logs: u64,
}

/// The figures of one catching-up shard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShardProgress {
    /// Logstore.
    pub logstore: String,
    /// Shard id.
    pub shard: u32,
    /// Share of the starting lag worked off, 0 to 100.
    pub percent: f64,
    /// Logs delivered per second since the shard fell behind.
    pub logs_per_second: f64,
    /// Data seconds delivered per second (above 1 the shard gains on the clock).
    pub speed: f64,
    /// Current lag, seconds.
    pub lag_seconds: f64,
    /// Estimated seconds until caught up; `None` while the shard is not gaining.
    pub eta_seconds: Option<f64>,
    /// Seconds since the shard fell behind.
    pub elapsed_seconds: f64,
}

impl Episode {
    fn figures(&self, logstore: &str, shard: u32, now: Instant) -> ShardProgress {
        let elapsed = now.duration_since(self.started).as_secs_f64();
        let advanced = self.data_time - self.start_data_time;
        let lag = (self.start_lag + elapsed - advanced).max(0.0);
        let speed = if elapsed > 0.0 {
            advanced / elapsed
        } else {
            0.0
        };
        let percent = if self.start_lag > 0.0 {
            ((self.start_lag - lag) / self.start_lag).clamp(0.0, 1.0) * 100.0
        } else {
            100.0
        };
        ShardProgress {
            logstore: logstore.to_owned(),
            shard,
            percent,
            logs_per_second: if elapsed > 0.0 {
                self.delivered_logs as f64 / elapsed
            } else {
                0.0
            },
            speed,
            lag_seconds: lag,
            eta_seconds: (speed > 1.0).then(|| lag / (speed - 1.0)),
            elapsed_seconds: elapsed,
        }
    }
}

/// The process-wide catch-up state.
#[derive(Debug, Default)]
pub struct Progress {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    episodes: BTreeMap<(String, u32), Episode>,
    last_report: Option<Instant>,
}

/// What a call asks the caller to log.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// Shards are behind: the combined figures.
    Behind(Summary),
    /// A shard's pulls reached its end after `elapsed`.
    CaughtUp {
        /// Logstore.
        logstore: String,
        /// Shard id.
        shard: u32,
        /// Time it took.
        elapsed: Duration,
    },
}

/// The combined figures of every catching-up shard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Shards behind.
    pub shards: usize,
    /// Share of the combined starting lag worked off, 0 to 100.
    pub percent: f64,
    /// Logs delivered per second, all shards together.
    pub logs_per_second: f64,
    /// The largest current lag, seconds.
    pub worst_lag_seconds: f64,
    /// The latest ETA over the shards; `None` while any shard is not gaining.
    pub eta_seconds: Option<f64>,
}

impl Summary {
    fn of(shards: &[ShardProgress], start_lags: &[f64]) -> Self {
        let total_start: f64 = start_lags.iter().sum();
        let worked_off: f64 = shards
            .iter()
            .zip(start_lags)
            .map(|(shard, start)| (start - shard.lag_seconds).max(0.0))
            .sum();
        Self {
            shards: shards.len(),
            percent: if total_start > 0.0 {
                (worked_off / total_start * 100.0).min(100.0)
            } else {
                100.0
            },
            logs_per_second: shards.iter().map(|shard| shard.logs_per_second).sum(),
            worst_lag_seconds: shards
                .iter()
                .map(|shard| shard.lag_seconds)
                .fold(0.0, f64::max),
            eta_seconds: shards
                .iter()
                .map(|shard| shard.eta_seconds)
                .try_fold(0.0, |latest: f64, eta| Some(latest.max(eta?))),
        }
    }
}

impl Progress {
    /// Records a delivered batch of `logs` whose newest log is `newest_log_time`, at wall
    /// time `now_unix` (seconds) and monotonic time `now`.
    pub fn delivered(
        &self,
        logstore: &str,
        shard: u32,
        logs: usize,
        newest_log_time: f64,
        now_unix: f64,
        now: Instant,
    ) -> Option<Report> {
        let mut state = self.state.lock().expect("progress lock");
        let key = (logstore.to_owned(), shard);
        match state.episodes.get_mut(&key) {
            Some(episode) => {
                episode.data_time = episode.data_time.max(newest_log_time);
                episode.delivered_logs += logs as u64;
            }
            None => {
                let lag = now_unix - newest_log_time;
                if lag <= BEHIND_AFTER.as_secs_f64() {
                    return None;
                }
                // The first report comes a report interval into the catch-up, so that a
                // shard whose logs are merely stamped a little late stays quiet.
                state.last_report.get_or_insert(now);
                state.episodes.insert(
                    key.clone(),
                    Episode {
                        started: now,
                        start_lag: lag,
                        start_data_time: newest_log_time,
                        data_time: newest_log_time,
                        delivered_logs: 0,
                    },
                );
            }
        }
        let figures = state.episodes[&key].figures(logstore, shard, now);
        publish(&figures);
        let due = state
            .last_report
            .is_some_and(|last| now.duration_since(last) >= REPORT_EVERY);
        if !due {
            return None;
        }
        state.last_report = Some(now);
        Some(Report::Behind(state.summary(now)))
    }

    /// Records a pull of `groups` log groups; `end_of_cursor` when it reached the end of the
    /// shard. A catching-up shard whose pulls reached the end has caught up.
    pub fn pulled(
        &self,
        logstore: &str,
        shard: u32,
        groups: usize,
        end_of_cursor: bool,
        now: Instant,
    ) -> Option<Report> {
        if groups > 0 && !end_of_cursor {
            return None;
        }
        let mut state = self.state.lock().expect("progress lock");
        let episode = state.episodes.remove(&(logstore.to_owned(), shard))?;
        if state.episodes.is_empty() {
            state.last_report = None;
        }
        let labels = ShardLabels::new(logstore, shard);
        metrics().catch_up_percent.get_or_create(&labels).set(100.0);
        metrics()
            .catch_up_eta_seconds
            .get_or_create(&labels)
            .set(0.0);
        let elapsed = now.duration_since(episode.started);
        (elapsed >= REPORT_EVERY).then(|| Report::CaughtUp {
            logstore: logstore.to_owned(),
            shard,
            elapsed,
        })
    }

    /// Forgets a shard this process no longer holds.
    pub fn forget(&self, logstore: &str, shard: u32) {
        let mut state = self.state.lock().expect("progress lock");
        state.episodes.remove(&(logstore.to_owned(), shard));
        let labels = ShardLabels::new(logstore, shard);
        let metrics = metrics();
        metrics.catch_up_percent.remove(&labels);
        metrics.catch_up_eta_seconds.remove(&labels);
        metrics.catch_up_logs_per_second.remove(&labels);
        metrics.delivered_log_timestamp_seconds.remove(&labels);
    }

    /// Every catching-up shard's figures at `now`.
    pub fn snapshot(&self, now: Instant) -> Vec<ShardProgress> {
        let state = self.state.lock().expect("progress lock");
        state
            .episodes
            .iter()
            .map(|((logstore, shard), episode)| episode.figures(logstore, *shard, now))
            .collect()
    }

    /// The combined figures at `now` (`None` when no shard is behind).
    pub fn summary(&self, now: Instant) -> Option<Summary> {
        let state = self.state.lock().expect("progress lock");
        (!state.episodes.is_empty()).then(|| state.summary(now))
    }
}

impl State {
    fn summary(&self, now: Instant) -> Summary {
        let (shards, start_lags): (Vec<ShardProgress>, Vec<f64>) = self
            .episodes
            .iter()
            .map(|((logstore, shard), episode)| {
                (episode.figures(logstore, *shard, now), episode.start_lag)
            })
            .unzip();
        Summary::of(&shards, &start_lags)
    }
}

/// Sets a shard's `catch_up_*` gauges.
fn publish(figures: &ShardProgress) {
    let labels = ShardLabels::new(&figures.logstore, figures.shard);
    let metrics = metrics();
    metrics
        .catch_up_percent
        .get_or_create(&labels)
        .set(figures.percent);
    metrics
        .catch_up_logs_per_second
        .get_or_create(&labels)
        .set(figures.logs_per_second);
    match figures.eta_seconds {
        Some(eta) => {
            metrics.catch_up_eta_seconds.get_or_create(&labels).set(eta);
        }
        None => {
            metrics.catch_up_eta_seconds.remove(&labels);
        }
    }
}

/// The process-wide catch-up state.
pub fn progress() -> &'static Progress {
    static PROGRESS: OnceLock<Progress> = OnceLock::new();
    PROGRESS.get_or_init(Progress::default)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |elapsed| elapsed.as_secs_f64())
}

/// Hook for a shard task: a batch of `logs` whose newest log is `newest_log_time` (Unix
/// seconds) was delivered by every sink. Sets the shard's `delivered_log_timestamp_seconds`
/// and logs the combined progress when due.
pub fn delivered(logstore: &str, shard: u32, logs: usize, newest_log_time: u32) {
    metrics()
        .delivered_log_timestamp_seconds
        .get_or_create(&ShardLabels::new(logstore, shard))
        .set(i64::from(newest_log_time));
    let report = progress().delivered(
        logstore,
        shard,
        logs,
        f64::from(newest_log_time),
        unix_now(),
        Instant::now(),
    );
    log(report);
}

/// Hook for a shard task: a pull returned `groups` log groups, `end_of_cursor` when it
/// reached the end of the shard.
pub fn pulled(logstore: &str, shard: u32, groups: usize, end_of_cursor: bool) {
    log(progress().pulled(logstore, shard, groups, end_of_cursor, Instant::now()));
}

/// Hook for a shard task that ended: its figures go.
pub fn forget(logstore: &str, shard: u32) {
    progress().forget(logstore, shard);
}

fn log(report: Option<Report>) {
    match report {
        Some(Report::Behind(summary)) => tracing::info!(
            shards = summary.shards,
            percent = format!("{:.1}", summary.percent),
            logs_per_second = format!("{:.0}", summary.logs_per_second),
            worst_lag_seconds = format!("{:.0}", summary.worst_lag_seconds),
            eta = summary
                .eta_seconds
                .map_or("unknown (not gaining yet)".to_owned(), |eta| format!(
                    "{eta:.0}s"
                )),
            "catching up"
        ),
        Some(Report::CaughtUp {
            logstore,
            shard,
            elapsed,
        }) => tracing::info!(
            logstore,
            shard,
            took_seconds = elapsed.as_secs(),
            "shard caught up"
        ),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: f64 = 1_700_000_000.0;

    fn secs(seconds: u64) -> Duration {
        Duration::from_secs(seconds)
    }

    #[tokio::test(start_paused = true)]
    async fn a_shard_within_a_minute_of_the_clock_is_not_behind() {
        let progress = Progress::default();
        let report = progress.delivered("p-ls", 0, 10, NOW - 30.0, NOW, Instant::now());
        assert_eq!(report, None);
        assert!(progress.snapshot(Instant::now()).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn progress_rate_and_eta_follow_the_delivered_data_time() {
        let progress = Progress::default();
        let start = Instant::now();
        // An hour behind: the first batch starts the episode, reported after 30 s.
        let first = progress.delivered("p-ls", 1, 100, NOW - 3600.0, NOW, start);
        assert_eq!(first, None);
        let summary = progress.summary(start).unwrap();
        assert_eq!((summary.shards, summary.percent), (1, 0.0));
        // 10 s later, 610 s of data were delivered: 61× real time, lag 3000 s.
        tokio::time::advance(secs(10)).await;
        let report = progress.delivered("p-ls", 1, 500, NOW - 2990.0, NOW + 10.0, Instant::now());
        assert_eq!(
            report, None,
            "the first report is due 30 s into the catch-up"
        );
        let figures = &progress.snapshot(Instant::now())[0];
        assert!((figures.lag_seconds - 3000.0).abs() < 1e-6, "{figures:?}");
        assert!((figures.speed - 61.0).abs() < 1e-6, "{figures:?}");
        assert!((figures.logs_per_second - 50.0).abs() < 1e-6, "{figures:?}");
        assert!((figures.percent - 100.0 / 6.0).abs() < 1e-6, "{figures:?}");
        assert!(
            (figures.eta_seconds.unwrap() - 50.0).abs() < 1e-6,
            "{figures:?}"
        );
        tokio::time::advance(secs(20)).await;
        let report = progress.delivered("p-ls", 1, 10, NOW - 2000.0, NOW + 30.0, Instant::now());
        assert!(
            matches!(report, Some(Report::Behind(ref s)) if s.shards == 1),
            "{report:?}"
        );
        tokio::time::advance(secs(5)).await;
        let report = progress.delivered("p-ls", 1, 10, NOW - 1900.0, NOW + 35.0, Instant::now());
        assert_eq!(report, None, "the next report is due 30 s after the last");
        // The pulls reach the end: caught up after 40 s, and the episode is over.
        tokio::time::advance(secs(5)).await;
        assert_eq!(progress.pulled("p-ls", 1, 5, false, Instant::now()), None);
        let done = progress.pulled("p-ls", 1, 3, true, Instant::now());
        assert_eq!(
            done,
            Some(Report::CaughtUp {
                logstore: "p-ls".into(),
                shard: 1,
                elapsed: secs(40)
            })
        );
        assert!(progress.summary(Instant::now()).is_none());
        assert_eq!(progress.pulled("p-ls", 1, 0, true, Instant::now()), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_catch_up_shorter_than_a_report_interval_ends_quietly() {
        let progress = Progress::default();
        progress.delivered("p-ls", 2, 10, NOW - 120.0, NOW, Instant::now());
        assert_eq!(progress.snapshot(Instant::now()).len(), 1);
        tokio::time::advance(secs(2)).await;
        assert_eq!(progress.pulled("p-ls", 2, 0, false, Instant::now()), None);
        assert!(progress.summary(Instant::now()).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_shard_has_no_eta_and_holds_back_the_combined_one() {
        let progress = Progress::default();
        progress.delivered("p-ls", 0, 1, NOW - 600.0, NOW, Instant::now());
        progress.delivered("p-ls", 1, 1, NOW - 100.0, NOW, Instant::now());
        tokio::time::advance(secs(10)).await;
        // Shard 0 gains (speed 31), shard 1 delivers nothing new (a SIEM outage).
        progress.delivered("p-ls", 0, 1, NOW - 290.0, NOW + 10.0, Instant::now());
        let summary = progress.summary(Instant::now()).unwrap();
        assert_eq!(summary.shards, 2);
        assert_eq!(summary.eta_seconds, None);
        assert!(
            (summary.worst_lag_seconds - 300.0).abs() < 1e-6,
            "{summary:?}"
        );
        // Worked off: 300 of 600 s on shard 0, none of 100 s on shard 1 (its lag grew).
        assert!(
            (summary.percent - 300.0 / 700.0 * 100.0).abs() < 1e-6,
            "{summary:?}"
        );
        progress.forget("p-ls", 1);
        let summary = progress.summary(Instant::now()).unwrap();
        assert!(
            (summary.eta_seconds.unwrap() - 10.0).abs() < 1e-6,
            "{summary:?}"
        );
    }
}

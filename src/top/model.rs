//! Turns successive [`Sample`]s into what `top` shows: per-shard and per-sink rates from the
//! counters' differences, a short rate history per shard, and lines sorted as asked.

use std::collections::{BTreeMap, HashMap, VecDeque};

use tokio::time::Instant;

use super::sample::Sample;

/// Rates kept per shard for its history.
pub const HISTORY: usize = 20;

/// How shard lines are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SortKey {
    /// Largest lag first.
    #[default]
    Lag,
    /// Highest delivery rate first.
    Rate,
    /// By logstore and shard id.
    Shard,
}

impl SortKey {
    /// The next key, for the key that cycles through them.
    pub fn next(self) -> Self {
        match self {
            Self::Lag => Self::Rate,
            Self::Rate => Self::Shard,
            Self::Shard => Self::Lag,
        }
    }

    /// Its name, as shown in the header.
    pub fn name(self) -> &'static str {
        match self {
            Self::Lag => "lag",
            Self::Rate => "rate",
            Self::Shard => "shard",
        }
    }
}

/// One shard line.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardLine {
    /// Logstore.
    pub logstore: String,
    /// Shard id.
    pub shard: u32,
    /// The consumer holding it (`-` when none).
    pub owner: String,
    /// Lag in seconds, when known.
    pub lag_seconds: Option<f64>,
    /// Log groups behind, when the service counts them.
    pub lag_groups: Option<u64>,
    /// Logs delivered per second since the previous sample (`None` when no process of
    /// `--url` holds the shard).
    pub rate: Option<f64>,
    /// The last rates, oldest first.
    pub history: Vec<f64>,
}

/// One sink line.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkLine {
    /// The process's telemetry endpoint.
    pub process: String,
    /// Sink name.
    pub sink: String,
    /// Logs delivered per second since the previous sample.
    pub rate: f64,
    /// Failed send attempts, total.
    pub errors: u64,
    /// Retried sends, total.
    pub retries: u64,
    /// `healthy`, `starting`, `unhealthy: REASON` or `?`.
    pub health: String,
    /// The process's raw bytes pulled and not yet delivered.
    pub inflight_bytes: u64,
}

/// What to draw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct View {
    /// Shard lines, sorted.
    pub shards: Vec<ShardLine>,
    /// Sink lines, by process and sink.
    pub sinks: Vec<SinkLine>,
    /// Sources that did not answer.
    pub errors: Vec<String>,
    /// The current order.
    pub sort: SortKey,
}

impl View {
    /// Orders the shard lines by `key`.
    pub fn resort(&mut self, key: SortKey) {
        self.sort = key;
        sort(&mut self.shards, key);
    }
}

#[derive(Debug, Default)]
struct Counter {
    value: f64,
    at: Option<Instant>,
}

impl Counter {
    /// The rate since the previous value (0 on the first one or after a reset).
    fn rate(&mut self, value: f64, now: Instant) -> f64 {
        let rate = match self.at {
            Some(at) if now > at && value >= self.value => {
                (value - self.value) / now.duration_since(at).as_secs_f64()
            }
            _ => 0.0,
        };
        self.value = value;
        self.at = Some(now);
        rate
    }
}

/// The state kept between samples.
#[derive(Debug, Default)]
pub struct Top {
    shard_counters: HashMap<(String, u32), Counter>,
    histories: HashMap<(String, u32), VecDeque<f64>>,
    sink_counters: HashMap<(String, String), Counter>,
    /// The order of shard lines.
    pub sort: SortKey,
}

impl Top {
    /// A view ordered by `sort`.
    pub fn new(sort: SortKey) -> Self {
        Self {
            sort,
            ..Self::default()
        }
    }

    /// Folds in a sample taken at `now` and returns what to show.
    pub fn update(&mut self, sample: &Sample, now: Instant) -> View {
        let mut shards: BTreeMap<(String, u32), ShardLine> = BTreeMap::new();
        let mut errors = Vec::new();
        if let Some(group) = &sample.group {
            match group {
                Ok(group) => {
                    for logstore in &group.logstores {
                        for shard in &logstore.shards {
                            shards.insert(
                                (logstore.logstore.clone(), shard.shard),
                                ShardLine {
                                    logstore: logstore.logstore.clone(),
                                    shard: shard.shard,
                                    owner: shard.consumer.clone().unwrap_or_else(|| "-".into()),
                                    lag_seconds: shard.lag_seconds.map(|lag| lag as f64),
                                    lag_groups: shard.lag_log_groups,
                                    rate: None,
                                    history: Vec::new(),
                                },
                            );
                        }
                    }
                }
                Err(error) => errors.push(error.clone()),
            }
        }
        let mut sinks = Vec::new();
        for process in &sample.processes {
            if let Some(error) = &process.error {
                errors.push(error.clone());
            }
            if let Some(status) = &process.status {
                self.fold_process_shards(status, now, &mut shards);
            }
            if let Some(metrics) = &process.metrics {
                sinks.extend(self.sink_lines(&process.url, metrics, process.status.as_ref(), now));
            }
        }
        let mut shards: Vec<ShardLine> = shards.into_values().collect();
        sort(&mut shards, self.sort);
        View {
            shards,
            sinks,
            errors,
            sort: self.sort,
        }
    }

    fn fold_process_shards(
        &mut self,
        status: &serde_json::Value,
        now: Instant,
        shards: &mut BTreeMap<(String, u32), ShardLine>,
    ) {
        for held in status["shards"].as_array().into_iter().flatten() {
            let (Some(logstore), Some(shard)) = (held["logstore"].as_str(), held["shard"].as_u64())
            else {
                continue;
            };
            let key = (logstore.to_owned(), shard as u32);
            let delivered = held["delivered_logs"].as_f64().unwrap_or(0.0);
            let rate = self
                .shard_counters
                .entry(key.clone())
                .or_default()
                .rate(delivered, now);
            let history = self.histories.entry(key.clone()).or_default();
            history.push_back(rate);
            while history.len() > HISTORY {
                history.pop_front();
            }
            let line = shards.entry(key).or_insert_with(|| ShardLine {
                logstore: logstore.to_owned(),
                shard: shard as u32,
                owner: String::new(),
                lag_seconds: None,
                lag_groups: None,
                rate: None,
                history: Vec::new(),
            });
            line.owner = held["consumer"].as_str().unwrap_or("?").to_owned();
            line.lag_seconds = held["lag_seconds"].as_f64().or(line.lag_seconds);
            line.rate = Some(rate);
            line.history = history.iter().copied().collect();
        }
    }

    fn sink_lines(
        &mut self,
        process: &str,
        metrics: &str,
        status: Option<&serde_json::Value>,
        now: Instant,
    ) -> Vec<SinkLine> {
        let delivered = per_sink(metrics, "siem_forwarder_sink_delivered_events_total");
        let errors = per_sink(metrics, "siem_forwarder_sink_failed_requests_total");
        let retries = per_sink(metrics, "siem_forwarder_sink_retries_total");
        let inflight = sample_value(metrics, "siem_forwarder_inflight_bytes").unwrap_or(0.0);
        let mut names: Vec<&String> = delivered.keys().chain(errors.keys()).collect();
        if let Some(components) = status.and_then(|status| status["components"].as_object()) {
            names.extend(components.keys().filter(|name| name.starts_with("sink:")));
        }
        let mut names: Vec<String> = names
            .into_iter()
            .map(|name| name.trim_start_matches("sink:").to_owned())
            .collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|sink| {
                let count = delivered.get(&sink).copied().unwrap_or(0.0);
                let rate = self
                    .sink_counters
                    .entry((process.to_owned(), sink.clone()))
                    .or_default()
                    .rate(count, now);
                let health = status
                    .map(|status| &status["components"][format!("sink:{sink}")])
                    .map_or("?".to_owned(), health_text);
                SinkLine {
                    process: process.to_owned(),
                    rate,
                    errors: errors.get(&sink).copied().unwrap_or(0.0) as u64,
                    retries: retries.get(&sink).copied().unwrap_or(0.0) as u64,
                    health,
                    inflight_bytes: inflight as u64,
                    sink,
                }
            })
            .collect()
    }
}

fn sort(shards: &mut [ShardLine], key: SortKey) {
    let descending = |a: Option<f64>, b: Option<f64>| {
        b.unwrap_or(-1.0)
            .partial_cmp(&a.unwrap_or(-1.0))
            .unwrap_or(std::cmp::Ordering::Equal)
    };
    shards.sort_by(|a, b| {
        let by_id = (&a.logstore, a.shard).cmp(&(&b.logstore, b.shard));
        match key {
            SortKey::Lag => descending(a.lag_seconds, b.lag_seconds).then(by_id),
            SortKey::Rate => descending(a.rate, b.rate).then(by_id),
            SortKey::Shard => by_id,
        }
    });
}

fn health_text(component: &serde_json::Value) -> String {
    match (component["state"].as_str(), component["reason"].as_str()) {
        (Some("unhealthy"), Some(reason)) => format!("unhealthy: {reason}"),
        (Some(state), _) => state.to_owned(),
        _ => "?".to_owned(),
    }
}

/// The samples of `family` by their `sink` label.
fn per_sink(metrics: &str, family: &str) -> BTreeMap<String, f64> {
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix(family)?.strip_prefix("{"))
        .filter_map(|rest| {
            let (labels, value) = rest.rsplit_once("} ")?;
            let sink = labels
                .split(',')
                .find_map(|label| label.strip_prefix("sink=\""))?
                .trim_end_matches('"');
            Some((sink.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// The value of an unlabelled sample.
fn sample_value(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::top::sample::ProcessSample;

    fn process(delivered: [u64; 2], sink_events: u64) -> ProcessSample {
        ProcessSample {
            url: "http://a:9300".into(),
            status: Some(serde_json::json!({
                "components": {"sink:hec": {"state": "unhealthy", "reason": "503 busy"}},
                "shards": [
                    {"logstore": "audit", "shard": 0, "consumer": "a-1", "lag_seconds": 5.0, "delivered_logs": delivered[0]},
                    {"logstore": "audit", "shard": 1, "consumer": "a-1", "lag_seconds": 90.0, "delivered_logs": delivered[1]},
                ],
            })),
            metrics: Some(format!(
                "siem_forwarder_inflight_bytes 2048\n\
                 siem_forwarder_sink_delivered_events_total{{sink=\"hec\"}} {sink_events}\n\
                 siem_forwarder_sink_failed_requests_total{{sink=\"hec\"}} 3\n"
            )),
            error: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn rates_come_from_counter_differences_and_lines_sort_as_asked() {
        let mut top = Top::new(SortKey::Lag);
        let first = Sample {
            processes: vec![process([0, 0], 0)],
            group: None,
        };
        let view = top.update(&first, Instant::now());
        assert_eq!(view.shards[0].shard, 1, "largest lag first");
        assert_eq!(view.shards[0].rate, Some(0.0));
        tokio::time::advance(Duration::from_secs(2)).await;
        let second = Sample {
            processes: vec![process([100, 40], 300)],
            group: None,
        };
        let view = top.update(&second, Instant::now());
        assert_eq!(view.shards[1].rate, Some(50.0));
        assert_eq!(view.shards[1].history, [0.0, 50.0]);
        let sink = &view.sinks[0];
        assert_eq!(
            (
                sink.sink.as_str(),
                sink.rate,
                sink.errors,
                sink.inflight_bytes
            ),
            ("hec", 150.0, 3, 2048)
        );
        assert_eq!(sink.health, "unhealthy: 503 busy");
        let mut by_rate = view.shards.clone();
        sort(&mut by_rate, SortKey::Rate);
        assert_eq!((by_rate[0].shard, by_rate[0].rate), (0, Some(50.0)));
        assert_eq!(SortKey::Lag.next().next(), SortKey::Shard);
        top.sort = SortKey::Shard;
        let view = top.update(&second, Instant::now());
        assert_eq!(view.shards[0].shard, 0);
    }
}

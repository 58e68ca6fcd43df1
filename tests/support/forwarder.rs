//! Runs the `siem-forwarder` binary as a real OS process against a test server, with a
//! file sink, and reads back what it delivered and which shards it held.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::{Child, Command};

use super::{TestServer, AK_ID, AK_SECRET, PROJECT};

/// One forwarder process.
pub struct Forwarder {
    pub name: String,
    pub output: PathBuf,
    pub log: PathBuf,
    pub config: PathBuf,
    child: Child,
}

/// The `[consumer]` lines of a test configuration: fast heartbeats and commits, a 4 s group
/// timeout and a 10 s drain timeout.
pub fn fast_consumer(group: &str, name: &str) -> String {
    consumer_with_timeout(group, name, 4)
}

/// Like [`fast_consumer`] with a group timeout of `group_timeout_secs`, for tests that tell
/// a hand-over at once from one after the timeout.
pub fn consumer_with_timeout(group: &str, name: &str, group_timeout_secs: u64) -> String {
    format!(
        "group = \"{group}\"\nname = \"{name}\"\nheartbeat_interval = \"1s\"\n\
         group_timeout = \"{group_timeout_secs}s\"\ncheckpoint_interval = \"500ms\"\n\
         fetch_interval = \"200ms\"\ndrain_timeout = \"{DRAIN_TIMEOUT_SECS}s\"\n"
    )
}

/// The drain timeout of the test configurations.
pub const DRAIN_TIMEOUT_SECS: u64 = 10;

impl Forwarder {
    /// Starts a forwarder consuming `logstore` as `name` in `group`, with a file sink, and
    /// extra `[consumer]` lines.
    pub fn spawn(
        server: &TestServer,
        dir: &Path,
        logstore: &str,
        consumer: &str,
        extra_sinks: &str,
    ) -> Self {
        Self::spawn_with(server, dir, &[logstore], consumer, extra_sinks)
    }

    /// Like [`Forwarder::spawn`], consuming several logstores in one process.
    pub fn spawn_with(
        server: &TestServer,
        dir: &Path,
        logstores: &[&str],
        consumer: &str,
        extra_sinks: &str,
    ) -> Self {
        Self::spawn_with_source(server, dir, logstores, "", consumer, extra_sinks)
    }

    /// Like [`Forwarder::spawn_with`], with extra `[source]` lines.
    pub fn spawn_with_source(
        server: &TestServer,
        dir: &Path,
        logstores: &[&str],
        source: &str,
        consumer: &str,
        extra_sinks: &str,
    ) -> Self {
        let keys = format!(
            "access_key_id = \"{AK_ID}\"\naccess_key_secret = \"${{TEST_AK_SECRET}}\"\n{source}"
        );
        Self::spawn_with_credentials(server, dir, logstores, &keys, consumer, extra_sinks)
    }

    /// Like [`Forwarder::spawn_with_source`] without the static AccessKey: the `source` lines
    /// say where credentials come from (e.g. a `credentials` table).
    pub fn spawn_with_credentials(
        server: &TestServer,
        dir: &Path,
        logstores: &[&str],
        source: &str,
        consumer: &str,
        extra_sinks: &str,
    ) -> Self {
        let name = consumer
            .lines()
            .find_map(|line| line.strip_prefix("name = \""))
            .map(|rest| rest.trim_end_matches('"').to_owned())
            .expect("consumer config names the consumer");
        let output = dir.join(format!("{name}.jsonl"));
        let log = dir.join(format!("{name}.log"));
        let config = dir.join(format!("{name}.toml"));
        let text = format!(
            "[source]\nendpoint = \"{}\"\nproject = \"{PROJECT}\"\nlogstores = {logstores:?}\n\
             {source}\n[consumer]\n{consumer}\n[[sinks]]\ntype = \"file\"\npath = \"{}\"\n{extra_sinks}",
            server.endpoint(),
            output.display()
        );
        std::fs::write(&config, text).expect("write config");
        let child = Command::new(env!("CARGO_BIN_EXE_siem-forwarder"))
            .args(["--log-format", "json", "run", "--config"])
            .arg(&config)
            .env("TEST_AK_SECRET", AK_SECRET)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .kill_on_drop(true)
            .spawn()
            .expect("spawn siem-forwarder");
        Self {
            name,
            output,
            log,
            config,
            child,
        }
    }

    /// The base URL of the process's telemetry endpoint (configured with port 0: the process
    /// binds a free port itself, so none can be taken in between), once it logged it.
    pub async fn telemetry_url(&self) -> String {
        super::wait_until(
            "the telemetry endpoint to listen",
            Duration::from_secs(30),
            || {
                let listening = self.logged("telemetry endpoint listening");
                async move { listening }
            },
        )
        .await;
        let address = self
            .logged_line(
                "telemetry endpoint listening",
                "message",
                "telemetry endpoint listening",
            )
            .and_then(|line| line["address"].as_str().map(str::to_owned))
            .expect("the listening address is logged");
        format!("http://{address}")
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// The process's own log lines (JSON).
    pub fn log_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// The shards of the last assignment the process logged.
    pub fn assigned(&self) -> BTreeSet<u32> {
        self.log_lines()
            .iter()
            .rev()
            .find(|line| line["message"] == "shard assignment changed")
            .and_then(|line| line["assigned"].as_str().map(parse_shard_set))
            .unwrap_or_default()
    }

    /// When the process first (`first`) or last logged `message`, by its own timestamp.
    pub fn logged_at(
        &self,
        message: &str,
        first: bool,
    ) -> Option<chrono::DateTime<chrono::FixedOffset>> {
        let lines = self.log_lines();
        let mut matching = lines.iter().filter(|line| line["message"] == message);
        let line = if first {
            matching.next()
        } else {
            matching.next_back()
        }?;
        chrono::DateTime::parse_from_rfc3339(line["timestamp"].as_str()?).ok()
    }

    /// Every assignment the process logged, with its own timestamp, oldest first.
    pub fn assignments(&self) -> Vec<(chrono::DateTime<chrono::FixedOffset>, BTreeSet<u32>)> {
        self.log_lines()
            .iter()
            .filter(|line| line["message"] == "shard assignment changed")
            .filter_map(|line| {
                let at = chrono::DateTime::parse_from_rfc3339(line["timestamp"].as_str()?).ok()?;
                Some((at, parse_shard_set(line["assigned"].as_str()?)))
            })
            .collect()
    }

    /// The first line logging `message` whose `field` is `value`, if any.
    pub fn logged_line(&self, message: &str, field: &str, value: &str) -> Option<Value> {
        self.log_lines()
            .into_iter()
            .find(|line| line["message"] == message && line[field] == value)
    }

    /// True once the process logged `message`.
    pub fn logged(&self, message: &str) -> bool {
        self.log_lines()
            .iter()
            .any(|line| line["message"] == message)
    }

    /// Every log the file sink delivered, in order (a line still being written is skipped).
    pub fn delivered(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.output).unwrap_or_default();
        let complete = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
        complete
            .lines()
            .map(|line| serde_json::from_str(line).expect("file sink writes json lines"))
            .collect()
    }

    async fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .await
            .unwrap();
        assert!(status.success(), "kill {signal} {}", self.name);
    }

    /// SIGTERM, then waits for the exit; returns the exit code and how long it took.
    pub async fn terminate(&mut self, within: Duration) -> (Option<i32>, Duration) {
        let started = std::time::Instant::now();
        self.signal("-TERM").await;
        let status = tokio::time::timeout(within, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not exit within {within:?} of SIGTERM", self.name))
            .unwrap();
        (status.code(), started.elapsed())
    }

    /// SIGSTOP: the process is frozen (as a paused VM would be) until [`Forwarder::thaw`].
    pub async fn freeze(&self) {
        self.signal("-STOP").await;
    }

    /// SIGCONT: a frozen process runs again.
    pub async fn thaw(&self) {
        self.signal("-CONT").await;
    }

    /// SIGKILL, and reaps the process.
    pub async fn kill(&mut self) {
        self.signal("-KILL").await;
        self.child.wait().await.unwrap();
    }

    /// Peak resident memory so far in KiB (`VmHWM`), while it runs.
    pub fn peak_rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap_or_default()
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// The earliest time, by the processes' own log timestamps and not before `since`, from which
/// the last assignments `forwarders` logged together cover `shards` shards; `None` when they
/// never did.
pub fn all_held_since(
    forwarders: &[&Forwarder],
    shards: usize,
    since: chrono::DateTime<chrono::FixedOffset>,
) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    let histories: Vec<_> = forwarders.iter().map(|f| f.assignments()).collect();
    let mut moments: Vec<_> = histories
        .iter()
        .flatten()
        .map(|(at, _)| (*at).max(since))
        .collect();
    moments.sort();
    moments.into_iter().find(|moment| {
        let held: BTreeSet<u32> = histories
            .iter()
            .filter_map(|history| history.iter().rev().find(|(at, _)| at <= moment))
            .flat_map(|(_, assigned)| assigned.iter().copied())
            .collect();
        held.len() == shards
    })
}

/// Parses a logged shard set such as `{0, 3, 5}`.
pub fn parse_shard_set(text: &str) -> BTreeSet<u32> {
    text.trim_matches(|c| c == '{' || c == '}')
        .split(',')
        .filter_map(|item| item.trim().parse().ok())
        .collect()
}

/// The `event_id` of a delivered audit log.
pub fn event_id(log: &Value) -> String {
    log["event_id"]
        .as_str()
        .expect("audit logs carry event_id")
        .to_owned()
}

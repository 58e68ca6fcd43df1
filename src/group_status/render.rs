//! The table `siem-forwarder status --config` prints: a summary line per logstore, then one
//! line per shard. Times are UTC; `-` marks what is unknown or absent.

use std::fmt::Write as _;

use super::{GroupStatus, LogstoreStatus, ShardRow};

/// Renders the view as text.
pub fn render(status: &GroupStatus) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "project {}, consumer group {}, at {}",
        status.project,
        status.group,
        time(Some(status.observed_at))
    );
    for logstore in &status.logstores {
        render_logstore(&mut out, logstore);
    }
    out
}

fn render_logstore(out: &mut String, logstore: &LogstoreStatus) {
    let summary = &logstore.summary;
    let _ = writeln!(
        out,
        "\n{}: {} shards, {} consumers, {} unowned, worst lag {}, backlog {}{}",
        logstore.logstore,
        summary.shards,
        summary.consumers,
        summary.unowned_shards,
        summary.worst_lag_seconds.map_or("-".to_owned(), duration),
        summary
            .backlog_log_groups
            .map_or("- (seconds only)".to_owned(), |groups| format!(
                "{groups} log groups"
            )),
        if logstore.group_exists {
            ""
        } else {
            " (the group does not exist on this logstore)"
        }
    );
    let _ = writeln!(
        out,
        "{:>5} {:<9} {:<32} {:<28} {:<20} {:<20} {:<20} {:>8} {:>10}",
        "SHARD",
        "STATE",
        "CONSUMER",
        "CHECKPOINT",
        "CHECKPOINTED AT",
        "CONSUMED UP TO",
        "NEWEST DATA",
        "LAG",
        "LAG GROUPS"
    );
    for shard in &logstore.shards {
        render_shard(out, shard);
    }
}

fn render_shard(out: &mut String, shard: &ShardRow) {
    let _ = writeln!(
        out,
        "{:>5} {:<9} {:<32} {:<28} {:<20} {:<20} {:<20} {:>8} {:>10}",
        shard.shard,
        shard.state,
        shard.consumer.as_deref().unwrap_or("- (none)"),
        shard.checkpoint.as_deref().unwrap_or("-"),
        time(shard.checkpoint_updated_at),
        time(shard.checkpoint_data_time),
        time(shard.newest_data_time),
        shard.lag_seconds.map_or("-".to_owned(), duration),
        shard
            .lag_log_groups
            .map_or("-".to_owned(), |groups| groups.to_string()),
    );
}

/// `2024-05-01T12:00:00Z`, or `-`.
fn time(seconds: Option<i64>) -> String {
    seconds
        .and_then(|seconds| chrono::DateTime::from_timestamp(seconds, 0))
        .map_or("-".to_owned(), |time| {
            time.format("%Y-%m-%dT%H:%M:%SZ").to_string()
        })
}

/// `42s`, `3m05s`, `2h07m`, `3d04h`.
pub fn duration(seconds: i64) -> String {
    let seconds = seconds.max(0);
    match seconds {
        0..=59 => format!("{seconds}s"),
        60..=3599 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        3600..=86_399 => format!("{}h{:02}m", seconds / 3600, seconds % 3600 / 60),
        _ => format!("{}d{:02}h", seconds / 86_400, seconds % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group_status::Summary;

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(185), "3m05s");
        assert_eq!(duration(7620), "2h07m");
        assert_eq!(duration(273_600), "3d04h");
    }

    #[test]
    fn an_unowned_shard_and_an_unknown_backlog_are_spelled_out() {
        let shard = ShardRow {
            shard: 3,
            state: "readonly".into(),
            consumer: None,
            checkpoint: None,
            checkpoint_updated_at: None,
            checkpoint_data_time: None,
            newest_data_time: Some(1_700_000_000),
            lag_seconds: Some(90),
            lag_log_groups: None,
        };
        let status = GroupStatus {
            project: "p".into(),
            group: "g".into(),
            observed_at: 1_700_000_100,
            logstores: vec![LogstoreStatus {
                logstore: "audit".into(),
                group_exists: true,
                group_timeout_seconds: Some(60),
                summary: Summary::of(std::slice::from_ref(&shard)),
                shards: vec![shard],
            }],
        };
        let text = render(&status);
        assert!(
            text.contains("audit: 1 shards, 0 consumers, 1 unowned, worst lag 1m30s, backlog - (seconds only)"),
            "{text}"
        );
        let line = text.lines().last().unwrap();
        assert!(
            line.contains("readonly") && line.contains("- (none)"),
            "{line}"
        );
        assert!(
            line.contains("2023-11-14T22:13:20Z") && line.contains("1m30s"),
            "{line}"
        );
    }
}

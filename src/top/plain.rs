//! The text of `top`: cell texts shared by both views, and whole frames for a stdout that is
//! not a terminal.

use std::fmt::Write as _;

use std::io::Write as _;
use std::time::Duration;

use tokio::time::Instant;

use super::model::{ShardLine, SinkLine, SortKey, Top, View};
use super::sample::Sources;
use crate::common::shutdown::termination_signal;
use crate::group_status::render::duration;

/// Prints a frame every `interval`, separated by a blank line, until `frames` were printed
/// (when given) or the process is interrupted.
///
/// # Errors
///
/// When stdout cannot be written.
pub async fn run(
    sources: Sources,
    interval: Duration,
    sort: SortKey,
    frames: Option<u64>,
) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let mut top = Top::new(sort);
    let interrupted = termination_signal();
    tokio::pin!(interrupted);
    let mut printed = 0;
    loop {
        let view = top.update(&sources.sample(&http).await, Instant::now());
        if printed > 0 {
            println!();
        }
        print!("{}", frame(&view));
        std::io::stdout().flush()?;
        printed += 1;
        if frames.is_some_and(|frames| printed >= frames) {
            return Ok(());
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = &mut interrupted => return Ok(()),
        }
    }
}

/// Column titles of the shard table.
pub const SHARD_HEADER: [&str; 6] = ["LOGSTORE", "SHARD", "OWNER", "LAG", "LOGS/S", "HISTORY"];

/// Column titles of the sink table.
pub const SINK_HEADER: [&str; 7] = [
    "PROCESS",
    "SINK",
    "LOGS/S",
    "ERRORS",
    "RETRIES",
    "IN-FLIGHT",
    "HEALTH",
];

/// The cells of a shard line.
pub fn shard_cells(line: &ShardLine) -> [String; 6] {
    let lag = match (line.lag_seconds, line.lag_groups) {
        (Some(seconds), Some(groups)) if groups > 0 => {
            format!("{} ({groups} groups)", duration(seconds as i64))
        }
        (Some(seconds), _) => duration(seconds as i64),
        (None, _) => "-".to_owned(),
    };
    [
        line.logstore.clone(),
        line.shard.to_string(),
        line.owner.clone(),
        lag,
        line.rate
            .map_or("-".to_owned(), |rate| format!("{rate:.0}")),
        sparkline(&line.history),
    ]
}

/// The cells of a sink line.
pub fn sink_cells(line: &SinkLine) -> [String; 7] {
    [
        line.process.clone(),
        line.sink.clone(),
        format!("{:.0}", line.rate),
        line.errors.to_string(),
        line.retries.to_string(),
        format!("{} KiB", line.inflight_bytes / 1024),
        line.health.clone(),
    ]
}

/// `values` as block characters, scaled to their maximum (`▁` for zero).
pub fn sparkline(values: &[f64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().copied().fold(0.0, f64::max);
    values
        .iter()
        .map(|value| {
            if max <= 0.0 {
                BARS[0]
            } else {
                BARS[((value / max) * 7.0).round().clamp(0.0, 7.0) as usize]
            }
        })
        .collect()
}

/// One frame as text: the shard table, the sink table, then sources that did not answer.
pub fn frame(view: &View) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "shards (sorted by {})", view.sort.name());
    table(
        &mut out,
        &SHARD_HEADER,
        view.shards.iter().map(|line| shard_cells(line).to_vec()),
    );
    let _ = writeln!(out, "\nsinks");
    table(
        &mut out,
        &SINK_HEADER,
        view.sinks.iter().map(|line| sink_cells(line).to_vec()),
    );
    for error in &view.errors {
        let _ = writeln!(out, "\nerror: {error}");
    }
    out
}

fn table(out: &mut String, header: &[&str], rows: impl Iterator<Item = Vec<String>>) {
    let rows: Vec<Vec<String>> = std::iter::once(header.iter().map(|h| h.to_string()).collect())
        .chain(rows)
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_lists_shards_and_sinks_in_aligned_columns() {
        let view = View {
            shards: vec![ShardLine {
                logstore: "audit".into(),
                shard: 3,
                owner: "fwd-a".into(),
                lag_seconds: Some(75.0),
                lag_groups: Some(4),
                rate: Some(120.4),
                history: vec![0.0, 60.0, 120.0],
            }],
            sinks: vec![],
            errors: vec!["cannot read http://b:9300: refused".into()],
            sort: SortKey::Lag,
        };
        let text = frame(&view);
        assert!(
            text.starts_with("shards (sorted by lag)\nLOGSTORE  SHARD  OWNER"),
            "{text}"
        );
        assert!(
            text.contains("audit     3      fwd-a  1m15s (4 groups)  120     ▁▅█"),
            "{text}"
        );
        assert!(
            text.contains("\nerror: cannot read http://b:9300"),
            "{text}"
        );
    }
}

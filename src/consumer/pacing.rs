//! When a shard pulls next: the pacing the official consumers share, and the wait after the
//! log service throttles reads.
//!
//! After a pull of fewer than 100 log groups and under 1 MiB a shard waits at least 500 ms,
//! under 500 groups / 2 MiB 200 ms, under 1000 groups / 4 MiB 50 ms; larger pulls go on at
//! once. This is the table of the Python consumer (`shard_worker.py`), the Go consumer
//! (`shard_worker.go` `sleepUtilNextFetch`) and the Rust SDK's consumer
//! (`adaptive_fetch_interval`), so a trickling shard costs about two requests a second
//! instead of one per round trip. A pull that reached the end of the shard waits like a small
//! one (the Java consumer waits 400 ms then), and an empty pull waits the configured
//! `fetch_interval`, so a quiet shard costs about one request a second.
//!
//! Any 403 on PullLogs (`ReadQuotaExceed`, `ShardReadQuotaExceed`, ...) is the service
//! throttling reads: the Python and Go consumers sleep 5 s then; here the wait is 5 to 7.5 s,
//! jittered so that throttled shards do not come back in step.

use std::time::Duration;

use rand::Rng;

use crate::source::ClientError;

/// (fewer groups than, fewer raw bytes than, wait at least).
const SMALL_PULL_WAITS: [(usize, usize, Duration); 3] = [
    (100, 1 << 20, Duration::from_millis(500)),
    (500, 2 << 20, Duration::from_millis(200)),
    (1000, 4 << 20, Duration::from_millis(50)),
];

/// The shortest wait after the log service throttled a pull.
pub const THROTTLED_WAIT: Duration = Duration::from_secs(5);

/// How long to wait before the next pull of a shard whose last pull returned `groups` log
/// groups of `raw_bytes` bytes; `idle` after an empty pull.
pub fn after_pull(
    groups: usize,
    raw_bytes: usize,
    end_of_cursor: bool,
    idle: Duration,
) -> Duration {
    if groups == 0 {
        return idle;
    }
    let by_size = SMALL_PULL_WAITS
        .iter()
        .find(|(max_groups, max_bytes, _)| groups < *max_groups && raw_bytes < *max_bytes)
        .map_or(Duration::ZERO, |(_, _, wait)| *wait);
    if end_of_cursor {
        by_size.max(SMALL_PULL_WAITS[0].2)
    } else {
        by_size
    }
}

/// The wait after a throttled pull: [`THROTTLED_WAIT`] plus up to half of it, at random.
pub fn after_throttling() -> Duration {
    let jitter_ms = THROTTLED_WAIT.as_millis() as u64 / 2;
    THROTTLED_WAIT + Duration::from_millis(rand::thread_rng().gen_range(0..=jitter_ms))
}

/// True when the log service throttled the call (HTTP 403).
pub fn is_throttled(error: &ClientError) -> bool {
    matches!(error, ClientError::Api(api) if api.is_throttled())
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(1);

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn small_pulls_wait_by_the_shared_table() {
        let mib = 1 << 20;
        let cases = [
            ((0, 0), IDLE),
            ((1, 1_000), ms(500)),
            ((99, mib - 1), ms(500)),
            ((100, 1_000), ms(200)),
            ((50, mib), ms(200)),
            ((499, 2 * mib - 1), ms(200)),
            ((500, 1_000), ms(50)),
            ((10, 2 * mib), ms(50)),
            ((999, 4 * mib - 1), ms(50)),
            ((1000, 1_000), Duration::ZERO),
            ((10, 4 * mib), Duration::ZERO),
        ];
        for ((groups, bytes), wait) in cases {
            assert_eq!(
                after_pull(groups, bytes, false, IDLE),
                wait,
                "{groups} groups, {bytes} bytes"
            );
        }
    }

    #[test]
    fn a_pull_that_reached_the_end_waits_like_a_small_one() {
        assert_eq!(after_pull(1000, 8 << 20, true, IDLE), ms(500));
        assert_eq!(after_pull(0, 0, true, IDLE), IDLE);
    }

    #[test]
    fn throttling_waits_five_to_seven_and_a_half_seconds() {
        for _ in 0..100 {
            let wait = after_throttling();
            assert!((THROTTLED_WAIT..=ms(7_500)).contains(&wait), "{wait:?}");
        }
    }
}

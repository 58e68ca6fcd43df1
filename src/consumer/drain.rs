//! The deadlines of a drain. A shard that is taken away, or a process that stops, is done
//! within `drain_timeout`: in-flight batches get the first part of it, the final checkpoint
//! and (on shutdown) the release heartbeat share the rest.

use std::time::Duration;

use tokio::time::Instant;

/// The longest time kept back from in-flight batches for the final checkpoint and heartbeat.
const MAX_RESERVE: Duration = Duration::from_secs(5);

/// When each step of a drain that starts now must give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainDeadlines {
    /// Stop waiting for in-flight batches (the next owner redelivers them).
    pub deliveries: Instant,
    /// Stop trying to commit the final checkpoint.
    pub commit: Instant,
    /// Stop waiting for the release heartbeat: the drain is over.
    pub release: Instant,
}

impl DrainDeadlines {
    /// The deadlines of a drain starting now and bounded by `drain_timeout`: a quarter of it
    /// (at most 5 s) is kept back from in-flight batches, half of that for the final commit.
    pub fn from_now(drain_timeout: Duration) -> Self {
        let now = Instant::now();
        let reserve = (drain_timeout / 4).min(MAX_RESERVE);
        Self {
            deliveries: now + (drain_timeout - reserve),
            commit: now + (drain_timeout - reserve / 2),
            release: now + drain_timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn every_step_ends_within_the_drain_timeout_in_order() {
        let start = Instant::now();
        let long = DrainDeadlines::from_now(Duration::from_secs(20));
        assert_eq!(long.deliveries - start, Duration::from_secs(15));
        assert_eq!(long.commit - start, Duration::from_millis(17_500));
        assert_eq!(long.release - start, Duration::from_secs(20));
        let very_long = DrainDeadlines::from_now(Duration::from_secs(120));
        assert_eq!(very_long.deliveries - start, Duration::from_secs(115));
        let short = DrainDeadlines::from_now(Duration::from_secs(1));
        assert_eq!(short.deliveries - start, Duration::from_millis(750));
        assert_eq!(short.commit - start, Duration::from_millis(875));
        assert_eq!(short.release - start, Duration::from_secs(1));
    }
}

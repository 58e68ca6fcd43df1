//! Capped exponential backoff with jitter, the one retry delay used everywhere.

use std::time::Duration;

use rand::Rng;
use tokio_util::sync::CancellationToken;

/// Capped exponential backoff. Each delay is drawn uniformly from `[d/2, d]` where
/// `d = min(max, initial * 2^attempt)`, so concurrent retriers spread out but never spin.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// Creates a backoff starting at `initial` and never exceeding `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            attempt: 0,
        }
    }

    /// Number of delays handed out since the last [`Backoff::reset`].
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Returns the next delay and advances the exponent.
    pub fn next_delay(&mut self) -> Duration {
        let exponent = self.attempt.min(20);
        self.attempt = self.attempt.saturating_add(1);
        let ceiling = self.initial.saturating_mul(1u32 << exponent).min(self.max);
        let ceiling_ms = ceiling.as_millis().max(1) as u64;
        let jittered = rand::thread_rng().gen_range(ceiling_ms / 2..=ceiling_ms);
        Duration::from_millis(jittered)
    }

    /// Like [`Backoff::next_delay`], but never shorter than `floor` (e.g. a server's `Retry-After`).
    pub fn next_delay_at_least(&mut self, floor: Duration) -> Duration {
        self.next_delay().max(floor.min(self.max))
    }

    /// Starts again from the initial delay, after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Sleeps for the next delay. Returns `false` when `shutdown` fired first.
    pub async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        let delay = self.next_delay();
        sleep_or_cancel(delay, shutdown).await
    }
}

/// Sleeps for `delay`; returns `false` when `shutdown` fired first.
pub async fn sleep_or_cancel(delay: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = shutdown.cancelled() => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_then_stay_capped() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let first = backoff.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        for _ in 0..30 {
            let delay = backoff.next_delay();
            assert!(delay <= Duration::from_secs(2));
        }
        let late = backoff.next_delay();
        assert!(
            late >= Duration::from_secs(1),
            "capped delays stay near the cap: {late:?}"
        );
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn floor_is_honoured_up_to_the_cap() {
        let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_secs(5));
        assert!(backoff.next_delay_at_least(Duration::from_secs(3)) >= Duration::from_secs(3));
        assert!(backoff.next_delay_at_least(Duration::from_secs(60)) <= Duration::from_secs(5));
    }
}

//! How many requests are on the wire at once: a fixed number, or adaptive (AIMD, as Vector's
//! adaptive request concurrency).
//!
//! Adaptive: time is cut in windows of about one round trip. At the end of a window the limit
//! is halved when a request met back-pressure (a busy or failed answer: 503, 429, a timeout, a
//! network error) or the window's mean round-trip time rose clearly above its moving average;
//! otherwise, if every permit was in use during the window, the limit grows: it doubles until
//! the first decrease (slow start), then grows by one. It stays between 1 and the configured
//! maximum. A collector far away thus gets many requests in flight, one that queues gets
//! fewer.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Limit an adaptive limiter starts at (or its maximum, when lower).
const INITIAL_LIMIT: usize = 4;
/// Weight of the latest window in the moving average of the round-trip time.
const EWMA_ALPHA: f64 = 0.4;
/// A window's mean round-trip time above average + this many mean deviations is a rise.
const RTT_DEVIATION_SCALE: f64 = 2.5;
/// ... and above average x (1 + this), so a perfectly steady latency's jitter is no rise.
const RTT_TOLERANCE: f64 = 0.1;

/// The answer to one request, as the limiter sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The collector took the request after this round trip.
    Answered(Duration),
    /// Busy, throttled, timed out or failed on the network: slow down.
    BackPressure,
}

/// Hands out request slots; in adaptive mode the number of slots follows the collector's
/// answers.
#[derive(Debug)]
pub(crate) struct ConcurrencyLimiter {
    semaphore: Arc<Semaphore>,
    max: usize,
    adaptive: bool,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Slots at the moment.
    limit: usize,
    /// Permits to forget when they come back (the limit fell below the permits held).
    owed: usize,
    /// Permits held.
    in_use: usize,
    /// Doubling until the first decrease.
    slow_start: bool,
    /// Moving average and mean deviation of the round-trip time, in seconds.
    rtt: Option<(f64, f64)>,
    window: Window,
}

/// What happened since the window started.
#[derive(Debug)]
struct Window {
    start: Instant,
    rtt_sum: f64,
    samples: u32,
    back_pressure: bool,
    /// Every slot was in use at some point.
    saturated: bool,
}

impl Window {
    fn new(saturated: bool) -> Self {
        Self {
            start: Instant::now(),
            rtt_sum: 0.0,
            samples: 0,
            back_pressure: false,
            saturated,
        }
    }
}

/// One request slot; dropping it frees the slot (or retires it after a decrease).
#[derive(Debug)]
pub(crate) struct RequestPermit {
    limiter: Arc<ConcurrencyLimiter>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Drop for RequestPermit {
    fn drop(&mut self) {
        let mut state = self.limiter.state();
        state.in_use -= 1;
        if state.owed > 0 {
            state.owed -= 1;
            if let Some(permit) = self.permit.take() {
                permit.forget();
            }
        }
    }
}

impl ConcurrencyLimiter {
    /// Exactly `limit` requests at once.
    pub fn fixed(limit: usize) -> Arc<Self> {
        Self::with(limit, limit, false)
    }

    /// Between 1 and `max` requests at once, adapting to the collector's answers.
    pub fn adaptive(max: usize) -> Arc<Self> {
        Self::with(INITIAL_LIMIT.min(max), max, true)
    }

    fn with(limit: usize, max: usize, adaptive: bool) -> Arc<Self> {
        let limit = limit.max(1);
        Arc::new(Self {
            semaphore: Arc::new(Semaphore::new(limit)),
            max: max.max(1),
            adaptive,
            state: Mutex::new(State {
                limit,
                owed: 0,
                in_use: 0,
                slow_start: true,
                rtt: None,
                window: Window::new(false),
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The number of requests allowed at once now.
    #[cfg(test)]
    pub fn limit(&self) -> usize {
        self.state().limit
    }

    /// Waits for a free slot.
    pub async fn acquire(self: &Arc<Self>) -> RequestPermit {
        let permit = self
            .semaphore
            .clone()
            .acquire_owned()
            .await
            .expect("the limiter never closes its semaphore");
        let mut state = self.state();
        state.in_use += 1;
        if state.in_use >= state.limit {
            state.window.saturated = true;
        }
        RequestPermit {
            limiter: self.clone(),
            permit: Some(permit),
        }
    }

    /// Takes the answer to a request into account (adaptive mode only).
    pub fn record(&self, outcome: Outcome) {
        if !self.adaptive {
            return;
        }
        let mut state = self.state();
        match outcome {
            Outcome::Answered(rtt) => {
                state.window.rtt_sum += rtt.as_secs_f64();
                state.window.samples += 1;
            }
            Outcome::BackPressure => state.window.back_pressure = true,
        }
        let length = state.rtt.map_or(0.0, |(average, _)| average);
        if state.window.start.elapsed().as_secs_f64() >= length {
            self.end_window(&mut state);
        }
    }

    fn end_window(&self, state: &mut State) {
        let window = &state.window;
        let mean = (window.samples > 0).then(|| window.rtt_sum / f64::from(window.samples));
        let rose = match (state.rtt, mean) {
            (Some((average, deviation)), Some(mean)) => {
                mean > average * (1.0 + RTT_TOLERANCE)
                    && mean > average + RTT_DEVIATION_SCALE * deviation
            }
            _ => false,
        };
        let limit = state.limit;
        let new_limit = if window.back_pressure || rose {
            state.slow_start = false;
            (limit / 2).max(1)
        } else if window.saturated {
            let grown = if state.slow_start {
                limit * 2
            } else {
                limit + 1
            };
            grown.min(self.max)
        } else {
            limit
        };
        if let (Some(mean), false) = (mean, window.back_pressure) {
            state.rtt = Some(match state.rtt {
                None => (mean, 0.0),
                Some((average, deviation)) => (
                    average + EWMA_ALPHA * (mean - average),
                    deviation + EWMA_ALPHA * ((mean - average).abs() - deviation),
                ),
            });
        }
        self.set_limit(state, new_limit);
        state.window = Window::new(state.in_use >= state.limit);
    }

    fn set_limit(&self, state: &mut State, new_limit: usize) {
        let old = state.limit;
        if new_limit > old {
            let mut more = new_limit - old;
            let cancelled = more.min(state.owed);
            state.owed -= cancelled;
            more -= cancelled;
            self.semaphore.add_permits(more);
        } else if new_limit < old {
            let fewer = old - new_limit;
            let forgotten = self.semaphore.forget_permits(fewer);
            state.owed += fewer - forgotten;
        }
        if new_limit != old {
            tracing::debug!(from = old, to = new_limit, "request concurrency changed");
        }
        state.limit = new_limit;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `rounds` windows with every slot busy; each request answers after `rtt()` or with
    /// back-pressure when `busy(round)`; returns the limit after each round.
    async fn run_rounds(
        limiter: &Arc<ConcurrencyLimiter>,
        rounds: usize,
        rtt: impl Fn(usize) -> Duration,
        busy: impl Fn(usize) -> bool,
    ) -> Vec<usize> {
        let mut limits = Vec::new();
        for round in 0..rounds {
            let mut permits = Vec::new();
            for _ in 0..limiter.limit() {
                permits.push(limiter.acquire().await);
            }
            tokio::time::sleep(rtt(round)).await;
            for permit in permits {
                limiter.record(if busy(round) {
                    Outcome::BackPressure
                } else {
                    Outcome::Answered(rtt(round))
                });
                drop(permit);
            }
            limits.push(limiter.limit());
        }
        limits
    }

    #[tokio::test(start_paused = true)]
    async fn grows_to_the_maximum_under_constant_latency() {
        let limiter = ConcurrencyLimiter::adaptive(48);
        let limits = run_rounds(&limiter, 30, |_| Duration::from_millis(150), |_| false).await;
        assert!(
            limits.windows(2).all(|pair| pair[1] >= pair[0]),
            "{limits:?}"
        );
        assert_eq!(limits.last(), Some(&48), "{limits:?}");
        assert!(limits.iter().all(|&limit| limit <= 48), "{limits:?}");
        // Every slot can be taken at once.
        let permits: Vec<_> = take_slots(&limiter, 48).await;
        assert_eq!(permits.len(), 48);
    }

    async fn take_slots(limiter: &Arc<ConcurrencyLimiter>, n: usize) -> Vec<RequestPermit> {
        let mut permits = Vec::new();
        for _ in 0..n {
            let permit = tokio::time::timeout(Duration::from_secs(1), limiter.acquire())
                .await
                .expect("a slot within the limit is free");
            permits.push(permit);
        }
        permits
    }

    #[tokio::test(start_paused = true)]
    async fn halves_on_back_pressure_and_grows_again_by_one() {
        let limiter = ConcurrencyLimiter::adaptive(64);
        let grown = run_rounds(&limiter, 10, |_| Duration::from_millis(150), |_| false).await;
        assert_eq!(grown.last(), Some(&64));
        let limits = run_rounds(&limiter, 3, |_| Duration::from_millis(150), |_| true).await;
        assert_eq!(limits, [32, 16, 8]);
        // The first window after them still holds the last busy answers: halved once more.
        let limits = run_rounds(&limiter, 3, |_| Duration::from_millis(150), |_| false).await;
        assert_eq!(limits, [4, 5, 6], "additive growth after a decrease");
        // The semaphore follows the limit: exactly 6 slots, the 7th waits.
        let _held = take_slots(&limiter, 6).await;
        let seventh = tokio::time::timeout(Duration::from_secs(1), limiter.acquire()).await;
        assert!(seventh.is_err(), "a slot beyond the limit was handed out");
    }

    #[tokio::test(start_paused = true)]
    async fn backs_off_when_the_round_trip_rises() {
        let limiter = ConcurrencyLimiter::adaptive(64);
        let before = run_rounds(&limiter, 4, |_| Duration::from_millis(100), |_| false).await;
        let at = *before.last().unwrap();
        // The first slow answer closes a window of fast ones; the next window is all slow.
        let after = run_rounds(&limiter, 2, |_| Duration::from_millis(400), |_| false).await;
        assert_eq!(after, [at, at / 2]);
    }

    #[tokio::test(start_paused = true)]
    async fn slots_held_across_a_decrease_are_retired_when_returned() {
        let limiter = ConcurrencyLimiter::adaptive(8);
        run_rounds(&limiter, 3, |_| Duration::from_millis(50), |_| false).await;
        assert_eq!(limiter.limit(), 8);
        let held = take_slots(&limiter, 8).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        limiter.record(Outcome::BackPressure);
        assert_eq!(limiter.limit(), 4);
        drop(held);
        let _four = take_slots(&limiter, 4).await;
        let fifth = tokio::time::timeout(Duration::from_secs(1), limiter.acquire()).await;
        assert!(fifth.is_err(), "more slots than the limit after a decrease");
    }

    #[tokio::test(start_paused = true)]
    async fn a_fixed_limit_never_moves() {
        let limiter = ConcurrencyLimiter::fixed(3);
        let limits = run_rounds(&limiter, 5, |_| Duration::from_millis(150), |r| r == 2).await;
        assert_eq!(limits, [3, 3, 3, 3, 3]);
    }
}

//! Read throttling as the real log service does it per shard: past a number of PullLogs
//! calls in one second, a shard answers 403 `ShardReadQuotaExceed`. Off unless a limit is
//! set (`local-server --read-qps-per-shard N`), so that clients' back-off can be tested.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The pulls of one shard in the current one-second window.
#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    pulls: u32,
}

/// Per-shard pull counters and the limit (0: unlimited).
#[derive(Debug, Default)]
pub struct ReadQuota {
    per_second: AtomicU32,
    windows: Mutex<HashMap<(String, String, u32), Window>>,
}

impl ReadQuota {
    /// Sets the pulls each shard answers per second; `None` turns throttling off.
    pub fn set_limit(&self, per_second: Option<NonZeroU32>) {
        self.per_second
            .store(per_second.map_or(0, NonZeroU32::get), Ordering::Relaxed);
    }

    /// The limit, when one is set.
    pub fn limit(&self) -> Option<NonZeroU32> {
        NonZeroU32::new(self.per_second.load(Ordering::Relaxed))
    }

    /// Counts a pull of `shard`; false when it is over the limit (and must be refused).
    pub fn admit(&self, project: &str, logstore: &str, shard: u32) -> bool {
        self.admit_at(project, logstore, shard, Instant::now())
    }

    fn admit_at(&self, project: &str, logstore: &str, shard: u32, now: Instant) -> bool {
        let Some(limit) = self.limit() else {
            return true;
        };
        let mut windows = self.windows.lock().expect("read quota lock");
        let window = windows
            .entry((project.to_owned(), logstore.to_owned(), shard))
            .or_insert(Window {
                started: now,
                pulls: 0,
            });
        if now.saturating_duration_since(window.started) >= Duration::from_secs(1) {
            *window = Window {
                started: now,
                pulls: 0,
            };
        }
        window.pulls += 1;
        window.pulls <= limit.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_shard_answers_its_limit_of_pulls_per_second() {
        let quota = ReadQuota::default();
        let t0 = Instant::now();
        assert!(
            (0..10).all(|_| quota.admit_at("p", "audit", 0, t0)),
            "unlimited by default"
        );
        quota.set_limit(NonZeroU32::new(2));
        let t1 = t0 + Duration::from_secs(5);
        assert!(quota.admit_at("p", "audit", 0, t1));
        assert!(quota.admit_at("p", "audit", 0, t1 + Duration::from_millis(100)));
        assert!(!quota.admit_at("p", "audit", 0, t1 + Duration::from_millis(900)));
        assert!(
            quota.admit_at("p", "audit", 1, t1 + Duration::from_millis(900)),
            "another shard has its own quota"
        );
        assert!(
            quota.admit_at("p", "other", 0, t1 + Duration::from_millis(900)),
            "another logstore too"
        );
        assert!(
            quota.admit_at("p", "audit", 0, t1 + Duration::from_secs(1)),
            "the next second"
        );
        quota.set_limit(None);
        assert!((0..10).all(|_| quota.admit_at("p", "audit", 0, t1 + Duration::from_secs(1))));
    }
}

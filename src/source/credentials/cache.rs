//! The credentials the client signs with, asked for before every request: cached until
//! shortly before they expire, refreshed by one caller at a time while the others keep
//! signing with the still-valid ones, and replaced at once when the log service rejects them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::{Credentials, CredentialsError, ProvideCredentials};

/// The most time before expiry at which credentials are refreshed (as the official SDKs do).
const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(180);
/// Credentials are refreshed when less than this part of their lifetime remains (so that
/// short-lived ones, e.g. 10 s, are not refreshed on every request).
const REFRESH_MARGIN_DIVISOR: u32 = 5;
/// The least time between two refresh attempts while the cached credentials still work
/// (after a failed refresh, or one that brought nothing newer).
const REFRESH_PAUSE: Duration = Duration::from_secs(1);

/// Shared, cheaply cloned credentials cache in front of one provider.
#[derive(Clone)]
pub struct CredentialsCache {
    inner: Arc<Inner>,
}

struct Inner {
    provider: Box<dyn ProvideCredentials>,
    /// The current credentials; held only to read or swap them, never across I/O.
    current: Mutex<Option<Arc<Cached>>>,
    /// Held by the one caller fetching new credentials, so that refreshes coalesce.
    refresh: tokio::sync::Mutex<()>,
}

/// Credentials and when to renew them.
struct Cached {
    credentials: Arc<Credentials>,
    /// From then on, one caller refreshes while the others go on using these.
    refresh_at: Option<Instant>,
    /// From then on, callers wait for new ones.
    expires_at: Option<Instant>,
}

impl Cached {
    fn new(credentials: Credentials, now: Instant) -> Self {
        let lifetime = credentials.expiration.map(|expiration| {
            expiration
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
        });
        let expires_at = lifetime.map(|lifetime| now + lifetime);
        let refresh_at = lifetime.map(|lifetime| {
            let margin = MAX_REFRESH_MARGIN.min(lifetime / REFRESH_MARGIN_DIVISOR);
            (now + lifetime - margin).max(now + REFRESH_PAUSE)
        });
        Self {
            credentials: Arc::new(credentials),
            refresh_at: refresh_at.zip(expires_at).map(|(at, end)| at.min(end)),
            expires_at,
        }
    }

    fn due(&self, now: Instant) -> bool {
        self.refresh_at.is_some_and(|at| now >= at)
    }

    fn expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }
}

impl std::fmt::Debug for CredentialsCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialsCache")
            .field("provider", &self.inner.provider.name())
            .finish_non_exhaustive()
    }
}

impl CredentialsCache {
    /// A cache in front of `provider`; nothing is fetched until the first request.
    pub fn new(provider: impl ProvideCredentials + 'static) -> Self {
        Self {
            inner: Arc::new(Inner {
                provider: Box::new(provider),
                current: Mutex::new(None),
                refresh: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The provider's name.
    pub fn provider_name(&self) -> &'static str {
        self.inner.provider.name()
    }

    /// Credentials to sign one request with: the cached ones while they are fresh; when they
    /// are about to expire, one caller refreshes them and the others keep using them; when
    /// they expired (or there are none yet), callers wait for the one refresh.
    ///
    /// # Errors
    ///
    /// The provider's error when there are no usable credentials.
    pub async fn get(&self) -> Result<Arc<Credentials>, CredentialsError> {
        let now = Instant::now();
        if let Some(cached) = self.current() {
            if !cached.due(now) {
                return Ok(Arc::clone(&cached.credentials));
            }
            if !cached.expired(now) {
                let Ok(_refreshing) = self.inner.refresh.try_lock() else {
                    return Ok(Arc::clone(&cached.credentials));
                };
                return Ok(self.renew_keeping(&cached).await);
            }
        }
        let _refreshing = self.inner.refresh.lock().await;
        match self.current() {
            Some(cached) if !cached.expired(Instant::now()) => Ok(Arc::clone(&cached.credentials)),
            _ => self.fetch().await,
        }
    }

    /// New credentials after the log service refused `rejected`: fetched once, however many
    /// requests were refused with them at the same time.
    ///
    /// # Errors
    ///
    /// The provider's error.
    pub async fn refresh_rejected(
        &self,
        rejected: &Arc<Credentials>,
    ) -> Result<Arc<Credentials>, CredentialsError> {
        let _refreshing = self.inner.refresh.lock().await;
        match self.current() {
            Some(cached) if !Arc::ptr_eq(&cached.credentials, rejected) => {
                Ok(Arc::clone(&cached.credentials))
            }
            _ => self.fetch().await,
        }
    }

    fn current(&self) -> Option<Arc<Cached>> {
        self.inner
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn store(&self, cached: Cached) -> Arc<Credentials> {
        let credentials = Arc::clone(&cached.credentials);
        *self
            .inner
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(cached));
        credentials
    }

    /// Fetches and stores new credentials (the caller holds the refresh lock).
    async fn fetch(&self) -> Result<Arc<Credentials>, CredentialsError> {
        let provider = self.inner.provider.name();
        let credentials = self.inner.provider.fetch().await?;
        // Every value goes into a header: refuse what cannot, whichever provider sent it.
        credentials
            .check()
            .map_err(|(name, reason)| CredentialsError::Malformed {
                provider,
                source_name: "the answer".to_owned(),
                reason: format!("holds {name}, which {reason}"),
            })?;
        let cached = Cached::new(credentials, Instant::now());
        tracing::info!(
            provider,
            expires_in = ?cached.expires_at.map(|at| at - Instant::now()),
            "credentials refreshed"
        );
        Ok(self.store(cached))
    }

    /// Refreshes credentials that are due but still valid (the caller holds the refresh
    /// lock). When that fails, the old ones are used and retried after [`REFRESH_PAUSE`].
    async fn renew_keeping(&self, old: &Cached) -> Arc<Credentials> {
        match self.fetch().await {
            Ok(credentials) => credentials,
            Err(error) => {
                tracing::warn!(%error, "cannot refresh credentials; using the current ones until they expire");
                let now = Instant::now();
                self.store(Cached {
                    credentials: Arc::clone(&old.credentials),
                    refresh_at: old.expires_at.map(|end| (now + REFRESH_PAUSE).min(end)),
                    expires_at: old.expires_at,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_server::Counting;
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn cache(ttl: Option<Duration>, delay: Duration) -> (CredentialsCache, Arc<AtomicU32>) {
        let fetches = Arc::new(AtomicU32::new(0));
        let provider = Counting {
            fetches: Arc::clone(&fetches),
            ttl,
            delay,
            ..Counting::default()
        };
        (CredentialsCache::new(provider), fetches)
    }

    async fn id(cache: &CredentialsCache) -> String {
        cache.get().await.unwrap().access_key_id.clone()
    }

    #[tokio::test(start_paused = true)]
    async fn short_lived_credentials_are_renewed_in_the_last_fifth_of_their_life() {
        let (cache, fetches) = cache(Some(Duration::from_secs(10)), Duration::ZERO);
        assert_eq!(id(&cache).await, "key-1");
        tokio::time::advance(Duration::from_millis(7_900)).await;
        assert_eq!(id(&cache).await, "key-1", "fresh for 8 of 10 s");
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_millis(200)).await;
        assert_eq!(id(&cache).await, "key-2", "renewed 2 s before expiry");
    }

    #[tokio::test(start_paused = true)]
    async fn long_lived_credentials_are_renewed_three_minutes_before_expiry() {
        let (cache, _) = cache(Some(Duration::from_secs(3600)), Duration::ZERO);
        assert_eq!(id(&cache).await, "key-1");
        tokio::time::advance(Duration::from_secs(3600 - 181)).await;
        assert_eq!(id(&cache).await, "key-1");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(id(&cache).await, "key-2");
    }

    #[tokio::test(start_paused = true)]
    async fn one_caller_renews_while_the_others_keep_signing() {
        let (cache, fetches) = cache(Some(Duration::from_secs(10)), Duration::from_secs(1));
        assert_eq!(id(&cache).await, "key-1");
        tokio::time::advance(Duration::from_millis(8_500)).await;
        let renewing = tokio::spawn({
            let cache = cache.clone();
            async move { id(&cache).await }
        });
        tokio::task::yield_now().await;
        // While one caller waits on the provider, the others are not stalled.
        let started = Instant::now();
        for _ in 0..10 {
            assert_eq!(id(&cache).await, "key-1");
        }
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(renewing.await.unwrap(), "key-2");
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_first_requests_and_rejections_fetch_once() {
        let (cache, fetches) = cache(None, Duration::from_millis(100));
        let callers: Vec<_> = (0..8)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { id(&cache).await })
            })
            .collect();
        for caller in callers {
            assert_eq!(caller.await.unwrap(), "key-1");
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        let rejected = cache.get().await.unwrap();
        let callers: Vec<_> = (0..8)
            .map(|_| {
                let cache = cache.clone();
                let rejected = Arc::clone(&rejected);
                tokio::spawn(async move { cache.refresh_rejected(&rejected).await.unwrap() })
            })
            .collect();
        for caller in callers {
            assert_eq!(caller.await.unwrap().access_key_id, "key-2");
        }
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            2,
            "one refresh for 8 rejections"
        );
        assert_eq!(id(&cache).await, "key-2");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_renewal_keeps_the_valid_credentials_until_they_expire() {
        let fetches = Arc::new(AtomicU32::new(0));
        let cache = CredentialsCache::new(Counting {
            fetches: Arc::clone(&fetches),
            ttl: Some(Duration::from_secs(10)),
            delay: Duration::ZERO,
            fail_after: Some(1),
        });
        assert_eq!(id(&cache).await, "key-1");
        tokio::time::advance(Duration::from_millis(8_500)).await;
        assert_eq!(id(&cache).await, "key-1", "the renewal failed");
        assert_eq!(id(&cache).await, "key-1", "and is not retried at once");
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
        tokio::time::advance(REFRESH_PAUSE).await;
        assert_eq!(id(&cache).await, "key-1");
        assert_eq!(fetches.load(Ordering::SeqCst), 3, "retried after a pause");
        tokio::time::advance(Duration::from_secs(1)).await;
        let error = cache.get().await.unwrap_err().to_string();
        assert!(error.contains("counting credentials"), "{error}");
    }
}

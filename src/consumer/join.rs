//! Joining the consumer group at start-up, as the official consumers do: create the group; if
//! it already exists, align its timeout and order when it differs. Least-privilege setups are
//! tolerated: a RAM policy that denies listing, creating or updating groups (401/403
//! `Unauthorized`, "denied by sts or ram") is logged as a warning, and the consumer goes on
//! with the group an administrator created. The heartbeat then tells whether it works.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::config::ConsumerConfig;
use super::pacing;
use super::service::GroupService;
use super::ConsumerError;
use crate::common::Backoff;
use crate::source::{ApiErrorCode, ClientError};

/// True when a RAM policy denied the call.
fn is_denied(error: &ClientError) -> bool {
    error.api_code() == Some(&ApiErrorCode::Unauthorized)
}

/// Creates the group when absent and aligns its timeout and order where allowed. Retries
/// transient failures until `shutdown`; returns false when shut down first (also during a
/// call).
///
/// # Errors
///
/// [`ConsumerError::Join`] on a failure retrying cannot fix, or when the group does not exist
/// and may not be created.
pub async fn ensure_group<S: GroupService>(
    client: &S,
    logstore: &str,
    config: &ConsumerConfig,
    shutdown: &CancellationToken,
) -> Result<bool, ConsumerError> {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    loop {
        let outcome = tokio::select! {
            outcome = join_once(client, logstore, config) => outcome,
            () = shutdown.cancelled() => return Ok(false),
        };
        match outcome {
            Ok(()) => return Ok(true),
            Err(error) if error.is_retryable() || pacing::is_throttled(&error) => {
                tracing::warn!(logstore, group = %config.group, %error, "cannot join the consumer group yet; retrying");
                if !backoff.wait(shutdown).await {
                    return Ok(false);
                }
            }
            Err(source) => {
                return Err(ConsumerError::Join {
                    logstore: logstore.to_owned(),
                    group: config.group.clone(),
                    source,
                })
            }
        }
    }
}

/// One attempt: create, else check and align the existing group.
async fn join_once<S: GroupService>(
    client: &S,
    logstore: &str,
    config: &ConsumerConfig,
) -> Result<(), ClientError> {
    let group = config.group.as_str();
    let timeout = config.group_timeout().as_secs().max(1) as u32;
    let create_denied = match client
        .create_consumer_group(logstore, group, timeout, config.ordered)
        .await
    {
        Ok(()) => return Ok(()),
        Err(error) if error.api_code() == Some(&ApiErrorCode::ConsumerGroupAlreadyExist) => None,
        Err(error) if is_denied(&error) => {
            tracing::warn!(logstore, group, %error, "not allowed to create the consumer group; using it as an administrator created it");
            Some(error)
        }
        Err(error) => return Err(error),
    };
    let groups = match client.list_consumer_groups(logstore).await {
        Ok(groups) => groups,
        Err(error) if is_denied(&error) => {
            tracing::warn!(logstore, group, %error, "not allowed to list consumer groups; going on without checking the group's timeout and order");
            return Ok(());
        }
        Err(error) => return Err(error),
    };
    match groups.iter().find(|found| found.name == group) {
        Some(found) if found.timeout == timeout && found.order == config.ordered => Ok(()),
        Some(found) => match client
            .update_consumer_group(logstore, group, timeout, config.ordered)
            .await
        {
            Err(error) if is_denied(&error) => {
                tracing::warn!(logstore, group, %error, timeout = found.timeout, order = found.order, "not allowed to update the consumer group; going on with its timeout and order as they are");
                Ok(())
            }
            updated => updated,
        },
        // Denied creating a group that does not exist: nothing can join it.
        None => create_denied.map_or(Ok(()), Err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::fake::{self, FakeService, Reply, Script};
    use crate::source::api::consumer_group::ConsumerGroupInfo;

    fn group(timeout: u32) -> Vec<ConsumerGroupInfo> {
        vec![ConsumerGroupInfo {
            name: "g".into(),
            timeout,
            order: false,
        }]
    }

    /// Joins with `script`; returns the outcome and the group calls made.
    async fn join(script: Script) -> (Result<bool, ConsumerError>, Vec<&'static str>) {
        let service = FakeService::new(script);
        let joined =
            ensure_group(&service, "join", &fake::config(), &CancellationToken::new()).await;
        (joined, service.with(|script| script.group_calls.clone()))
    }

    #[tokio::test(start_paused = true)]
    async fn joining_gives_up_at_shutdown_even_while_a_call_hangs() {
        let service = FakeService::new(Script {
            creates: [Reply::Fail("InternalServerError"), Reply::Hang].into(),
            ..Script::default()
        });
        let shutdown = CancellationToken::new();
        let config = fake::config();
        let joining = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { ensure_group(&service, "join-hang", &config, &shutdown).await }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!joining.is_finished(), "still retrying");
        let stopped = tokio::time::Instant::now();
        shutdown.cancel();
        let joined = tokio::time::timeout(Duration::from_secs(60), joining)
            .await
            .expect("joining stops")
            .unwrap();
        assert!(matches!(joined, Ok(false)), "{joined:?}");
        assert_eq!(stopped.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_group_is_created_and_an_existing_one_aligned_only_when_it_differs() {
        let (joined, calls) = join(Script::default()).await;
        assert!(matches!(joined, Ok(true)));
        assert_eq!(calls, ["create"]);
        let exists = |timeout| Script {
            creates: [Reply::Fail("ConsumerGroupAlreadyExist")].into(),
            lists: [Reply::Ok(group(timeout))].into(),
            ..Script::default()
        };
        let (joined, calls) = join(exists(3)).await;
        assert!(matches!(joined, Ok(true)));
        assert_eq!(calls, ["create", "list"], "the 3 s timeout matches");
        let (joined, calls) = join(exists(60)).await;
        assert!(matches!(joined, Ok(true)));
        assert_eq!(calls, ["create", "list", "update"]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_existing_group_is_joined_although_listing_or_updating_is_denied() {
        let (joined, calls) = join(Script {
            creates: [Reply::Fail("ConsumerGroupAlreadyExist")].into(),
            lists: [Reply::Fail("Unauthorized")].into(),
            ..Script::default()
        })
        .await;
        assert!(matches!(joined, Ok(true)), "{joined:?}");
        assert_eq!(calls, ["create", "list"]);
        let (joined, calls) = join(Script {
            creates: [Reply::Fail("Unauthorized")].into(),
            lists: [Reply::Ok(group(60))].into(),
            updates: [Reply::Fail("Unauthorized")].into(),
            ..Script::default()
        })
        .await;
        assert!(matches!(joined, Ok(true)), "{joined:?}");
        assert_eq!(calls, ["create", "list", "update"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_missing_group_that_may_not_be_created_fails_the_join() {
        let (joined, _) = join(Script {
            creates: [Reply::Fail("Unauthorized")].into(),
            ..Script::default()
        })
        .await;
        let Err(ConsumerError::Join { source, .. }) = joined else {
            panic!("{joined:?}");
        };
        assert_eq!(source.api_code(), Some(&ApiErrorCode::Unauthorized));
        let (joined, _) = join(Script {
            creates: [Reply::Fail("InvalidParameter")].into(),
            ..Script::default()
        })
        .await;
        assert!(
            matches!(joined, Err(ConsumerError::Join { .. })),
            "{joined:?}"
        );
    }
}

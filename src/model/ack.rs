//! Delivery acknowledgements: a batch's producer waits on an [`AckReceiver`] until every
//! holder of an [`AckToken`] has confirmed delivery, or one of them has failed.
//!
//! A token dropped without being acknowledged counts as a failure, so a sink that stops or
//! panics can never make a batch look delivered.

use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// The outcome of delivering one batch to every sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Every sink confirmed the whole batch.
    Delivered,
    /// At least one sink gave up on the batch; the reason of the first failure.
    Failed(String),
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    outstanding: usize,
    failure: Option<String>,
    notify: Option<oneshot::Sender<DeliveryStatus>>,
}

/// One party's duty to confirm a batch. Acknowledge with [`AckToken::delivered`] or
/// [`AckToken::failed`]; dropping it unacknowledged reports a failure.
#[derive(Debug)]
pub struct AckToken {
    shared: Arc<Shared>,
    settled: bool,
}

/// Resolves once every token of the batch is settled.
#[derive(Debug)]
pub struct AckReceiver(oneshot::Receiver<DeliveryStatus>);

/// Creates a token and the receiver that learns the batch's outcome.
pub fn channel() -> (AckToken, AckReceiver) {
    let (notify, receiver) = oneshot::channel();
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            outstanding: 1,
            failure: None,
            notify: Some(notify),
        }),
    });
    (
        AckToken {
            shared,
            settled: false,
        },
        AckReceiver(receiver),
    )
}

impl AckToken {
    /// Splits this token into `parts` tokens that must all be settled (one per sink).
    /// `parts == 0` settles the batch as delivered at once.
    pub fn split(mut self, parts: usize) -> Vec<AckToken> {
        {
            let mut state = self.shared.state.lock().expect("ack state lock");
            state.outstanding += parts;
        }
        let tokens = (0..parts)
            .map(|_| AckToken {
                shared: self.shared.clone(),
                settled: false,
            })
            .collect();
        self.settle(None);
        tokens
    }

    /// Confirms delivery of this party's share of the batch.
    pub fn delivered(mut self) {
        self.settle(None);
    }

    /// Reports that this party gave up on the batch.
    pub fn failed(mut self, reason: impl Into<String>) {
        self.settle(Some(reason.into()));
    }

    fn settle(&mut self, failure: Option<String>) {
        if self.settled {
            return;
        }
        self.settled = true;
        // NOTE: no await happens under this std mutex; it is held for a few instructions.
        let mut state = self.shared.state.lock().expect("ack state lock");
        if state.failure.is_none() {
            state.failure = failure;
        }
        state.outstanding -= 1;
        if state.outstanding == 0 {
            if let Some(notify) = state.notify.take() {
                let status = match state.failure.take() {
                    None => DeliveryStatus::Delivered,
                    Some(reason) => DeliveryStatus::Failed(reason),
                };
                // The receiver may be gone when its shard was abandoned; nothing to tell then.
                let _ = notify.send(status);
            }
        }
    }
}

impl Drop for AckToken {
    fn drop(&mut self) {
        self.settle(Some(
            "batch dropped before delivery was confirmed".to_owned(),
        ));
    }
}

impl AckReceiver {
    /// Waits for the outcome. A batch whose tokens all vanished counts as failed.
    pub async fn outcome(self) -> DeliveryStatus {
        self.0.await.unwrap_or_else(|_| {
            DeliveryStatus::Failed("delivery tracking ended unexpectedly".to_owned())
        })
    }

    /// Returns the outcome if it is already known, without waiting.
    pub fn try_outcome(&mut self) -> Option<DeliveryStatus> {
        self.0.try_recv().ok()
    }
}

impl std::future::Future for AckReceiver {
    type Output = DeliveryStatus;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx).map(|result| {
            result.unwrap_or_else(|_| {
                DeliveryStatus::Failed("delivery tracking ended unexpectedly".to_owned())
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn all_parts_must_deliver() {
        let (token, mut receiver) = channel();
        let mut parts = token.split(2);
        parts.pop().unwrap().delivered();
        assert_eq!(receiver.try_outcome(), None);
        parts.pop().unwrap().delivered();
        assert_eq!(receiver.await, DeliveryStatus::Delivered);
    }

    #[tokio::test]
    async fn one_failure_fails_the_batch() {
        let (token, receiver) = channel();
        let mut parts = token.split(2);
        parts.pop().unwrap().failed("rejected");
        parts.pop().unwrap().delivered();
        assert_eq!(receiver.await, DeliveryStatus::Failed("rejected".into()));
    }

    #[tokio::test]
    async fn dropping_a_token_is_a_failure() {
        let (token, receiver) = channel();
        drop(token);
        assert!(matches!(receiver.await, DeliveryStatus::Failed(_)));
    }

    #[tokio::test]
    async fn splitting_into_nothing_is_delivered() {
        let (token, receiver) = channel();
        assert!(token.split(0).is_empty());
        assert_eq!(receiver.await, DeliveryStatus::Delivered);
    }
}

//! A scripted HTTP server for the providers' and the client's tests: it records every
//! request and answers with what a closure decides.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;

use super::{Credentials, CredentialsError, ProvideCredentials};
use crate::common::Secret;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Query and form-body parameters, decoded.
    pub query: BTreeMap<String, String>,
    pub form: BTreeMap<String, String>,
    pub headers: http::HeaderMap,
}

type Answer = Box<dyn Fn(&Received) -> (u16, String) + Send + Sync>;

struct Shared {
    answer: Answer,
    received: Mutex<Vec<Received>>,
}

/// The running server.
pub struct TestServer {
    pub url: String,
    shared: Arc<Shared>,
}

fn decode(text: &str) -> BTreeMap<String, String> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_encoding::percent_decode_str(value)
                .decode_utf8_lossy()
                .into_owned();
            (key.to_owned(), value)
        })
        .collect()
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let received = Received {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: decode(parts.uri.query().unwrap_or("")),
        form: decode(&String::from_utf8_lossy(&body)),
        headers: parts.headers,
    };
    let (status, body) = (shared.answer)(&received);
    shared.received.lock().unwrap().push(received);
    (StatusCode::from_u16(status).unwrap(), body).into_response()
}

impl TestServer {
    /// Starts a server answering with `answer`.
    pub async fn start(
        answer: impl Fn(&Received) -> (u16, String) + Send + Sync + 'static,
    ) -> Self {
        let shared = Arc::new(Shared {
            answer: Box::new(answer),
            received: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { url, shared }
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }
}

/// An ECS-metadata style credentials answer for `id`, expiring in an hour.
pub fn credentials_json(id: &str) -> String {
    let expiration = (chrono::Utc::now() + chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    format!(
        r#"{{"AccessKeyId":"{id}","AccessKeySecret":"secret-{id}","SecurityToken":"token-{id}","Expiration":"{expiration}"}}"#
    )
}

/// Hands out `key-N` with token `token-N` at its N-th fetch, valid for `ttl` (none:
/// permanent), taking `delay`; fails after `fail_after` fetches.
#[derive(Debug, Default)]
pub struct Counting {
    pub fetches: Arc<AtomicU32>,
    pub ttl: Option<Duration>,
    pub delay: Duration,
    pub fail_after: Option<u32>,
}

#[async_trait::async_trait]
impl ProvideCredentials for Counting {
    fn name(&self) -> &'static str {
        "counting"
    }

    async fn fetch(&self) -> Result<Credentials, CredentialsError> {
        tokio::time::sleep(self.delay).await;
        let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
        if self.fail_after.is_some_and(|limit| n > limit) {
            return Err(CredentialsError::Missing {
                provider: "counting",
                what: "a key".into(),
                hint: "test".into(),
            });
        }
        let mut credentials = Credentials::new(
            format!("key-{n}"),
            Secret::new("s"),
            Some(Secret::new(format!("token-{n}"))),
        );
        credentials.expiration = self.ttl.map(|ttl| SystemTime::now() + ttl);
        Ok(credentials)
    }
}

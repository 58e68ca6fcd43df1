//! Tests of the client's single retry after the log service refused the credentials.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use http::Method;

use super::test_server::{Counting, TestServer};
use super::CredentialsCache;
use crate::source::auth::SECURITY_TOKEN_HEADER;
use crate::source::client::ApiRequest;
use crate::source::{Client, ClientConfig, ClientError};

/// A log service that refuses every token but `accepted` with 401 `code`.
async fn service(code: &'static str, accepted: &'static str) -> TestServer {
    TestServer::start(move |request| {
        let token = request
            .headers
            .get(SECURITY_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok());
        if token == Some(accepted) {
            (200, "{}".into())
        } else {
            let body = format!(r#"{{"errorCode":"{code}","errorMessage":"refused"}}"#);
            (401, body)
        }
    })
    .await
}

fn counting_client(url: &str) -> (Client, Arc<AtomicU32>) {
    let fetches = Arc::new(AtomicU32::new(0));
    let cache = CredentialsCache::new(Counting {
        fetches: Arc::clone(&fetches),
        ..Counting::default()
    });
    let client = Client::new(ClientConfig::with_credentials(url, "proj", cache)).unwrap();
    (client, fetches)
}

async fn call(client: &Client) -> Result<(), ClientError> {
    let request = ApiRequest::new(Method::GET, "/logstores".into());
    client.send("ListLogStores", request).await.map(|_| ())
}

#[tokio::test]
async fn refused_credentials_are_refreshed_and_the_request_sent_again_at_once() {
    for code in [
        "SecurityTokenExpired",
        "SecurityToken.Expired",
        "Unauthorized",
        "InvalidAccessKeyId.NotFound",
    ] {
        let server = service(code, "token-2").await;
        let (client, fetches) = counting_client(&server.url);
        call(&client)
            .await
            .unwrap_or_else(|error| panic!("{code}: {error}"));
        assert_eq!(fetches.load(Ordering::SeqCst), 2, "{code}");
        let tokens: Vec<_> = server
            .received()
            .iter()
            .map(|r| {
                r.headers[SECURITY_TOKEN_HEADER]
                    .to_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(tokens, ["token-1", "token-2"], "{code}");
        call(&client).await.unwrap();
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            2,
            "{code}: the new ones are kept"
        );
    }
}

#[tokio::test]
async fn a_second_refusal_or_another_401_is_not_retried() {
    let server = service("SecurityTokenExpired", "never").await;
    let (client, fetches) = counting_client(&server.url);
    let error = call(&client).await.unwrap_err();
    assert!(error.is_credentials_refused(), "{error}");
    assert_eq!(server.received().len(), 2, "one retry only");
    assert_eq!(fetches.load(Ordering::SeqCst), 2);

    let server = service("SignatureNotMatch", "never").await;
    let (client, fetches) = counting_client(&server.url);
    let error = call(&client).await.unwrap_err();
    assert!(!error.is_credentials_refused(), "{error}");
    assert_eq!(server.received().len(), 1);
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
}

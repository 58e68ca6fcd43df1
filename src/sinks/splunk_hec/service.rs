//! The HTTP side of the sink: one keep-alive `reqwest` client over rustls (the crate's
//! [`TlsConfig`](crate::common::tls::TlsConfig)), the collector URLs, and the headers every
//! request carries: `Authorization: Splunk <token>` and one channel GUID per sink instance.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use serde::Deserialize;

use super::response::{classify, describe, parse_retry_after, HecReply, Verdict};
use crate::sinks::SinkError;

/// Header naming the data channel (a GUID), required when acknowledgement is on.
const CHANNEL_HEADER: &str = "x-splunk-request-channel";

/// Answer to an acknowledgement query: `{"acks":{"7":true,"8":false}}`.
#[derive(Debug, Deserialize)]
struct AckReply {
    acks: HashMap<String, bool>,
}

/// Why an acknowledgement query failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AckQueryError {
    /// The token has indexer acknowledgement off (HEC code 14).
    #[error("acknowledgement query refused: {0}")]
    Refused(String),
    /// Network error, an error status without code 14, or an unreadable answer; try again
    /// later.
    #[error("acknowledgement query failed: {0}")]
    Failed(String),
}

/// Collector client of one sink.
#[derive(Debug)]
pub(crate) struct HecClient {
    http: reqwest::Client,
    data_url: reqwest::Url,
    ack_url: reqwest::Url,
    health_url: reqwest::Url,
    gzip: bool,
    channel: String,
}

/// How to reach the collector.
pub(crate) struct ClientSettings<'a> {
    /// Base URL (ends with `/`).
    pub base: reqwest::Url,
    /// The HEC token.
    pub token: &'a str,
    /// Path of the data endpoint relative to the base.
    pub data_path: &'static str,
    /// Query parameters of data requests (raw endpoint metadata).
    pub data_query: Vec<(&'static str, String)>,
    /// Gzip request bodies.
    pub gzip: bool,
    /// Idle connections per host kept for reuse.
    pub max_idle: usize,
    /// Time limit of one request.
    pub timeout: Duration,
    /// Name to present as SNI and verify the certificate against, when not the URL's host.
    pub server_name: Option<String>,
}

impl HecClient {
    /// Creates the client; no connection is opened yet.
    pub fn new(
        settings: ClientSettings<'_>,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<Self, SinkError> {
        let config_error = |what: &str, error: &dyn std::fmt::Display| {
            SinkError::Config(format!("{what}: {error}"))
        };
        let mut auth = HeaderValue::from_str(&format!("Splunk {}", settings.token))
            .map_err(|_| SinkError::Config("`token`: not a valid header value".into()))?;
        auth.set_sensitive(true);
        let channel = uuid::Uuid::new_v4().to_string();
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        headers.insert(
            CHANNEL_HEADER,
            HeaderValue::from_str(&channel).map_err(|error| config_error("channel", &error))?,
        );
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let mut base = settings.base;
        let mut builder = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .default_headers(headers)
            .pool_max_idle_per_host(settings.max_idle)
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(server_name) = settings.server_name {
            let host = base.host_str().unwrap_or_default().to_owned();
            if host != server_name {
                // Connect to the configured host while presenting `server_name` for SNI and
                // certificate checks: requests go to `server_name`, resolved as `host`.
                builder = builder.dns_resolver(Arc::new(AliasResolver {
                    alias: server_name.clone(),
                    target: host,
                }));
                base.set_host(Some(&server_name))
                    .map_err(|error| config_error("`tls.server_name`", &error))?;
            }
        }
        let http = builder
            .build()
            .map_err(|error| config_error("http client", &error))?;
        let join = |path: &str| {
            base.join(path)
                .map_err(|error| config_error("`url`", &error))
        };
        let mut data_url = join(settings.data_path)?;
        if !settings.data_query.is_empty() {
            data_url
                .query_pairs_mut()
                .extend_pairs(&settings.data_query);
        }
        Ok(Self {
            data_url,
            ack_url: join("services/collector/ack")?,
            health_url: join("services/collector/health")?,
            http,
            gzip: settings.gzip,
            channel,
        })
    }

    /// The channel GUID sent with every request.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Posts a body (already compressed when gzip is on) and classifies the answer; network
    /// errors and timeouts are retries.
    pub async fn send(&self, body: Bytes) -> Verdict {
        let mut request = self.http.post(self.data_url.clone()).body(body);
        if self.gzip {
            request = request.header(CONTENT_ENCODING, "gzip");
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|value| value.to_str().ok())
                    .and_then(parse_retry_after);
                match response.bytes().await {
                    Ok(body) => classify(status, retry_after, &body),
                    Err(error) => Verdict::Retry {
                        reason: format!("reading the answer failed: {}", error_chain(&error)),
                        retry_after,
                    },
                }
            }
            Err(error) => Verdict::Retry {
                reason: format!("request failed: {}", error_chain(&error)),
                retry_after: None,
            },
        }
    }

    /// Asks which of `ids` are indexed; returns the ones reported `true`.
    pub async fn query_acks(&self, ids: &[u64]) -> Result<Vec<u64>, AckQueryError> {
        let failed = |error: reqwest::Error| AckQueryError::Failed(error_chain(&error));
        let response = self
            .http
            .post(self.ack_url.clone())
            .body(serde_json::to_vec(&BTreeMap::from([("acks", ids)])).unwrap_or_default())
            .send()
            .await
            .map_err(failed)?;
        let status = response.status();
        let body = response.bytes().await.map_err(failed)?;
        let reply: HecReply = serde_json::from_slice(&body).unwrap_or_default();
        // Only "ACK is disabled" (code 14 in a HEC answer) turns acknowledgement off. A 404 or
        // 405 without it comes from a load balancer or a restarting collector; it, token errors
        // and throttling are retried.
        if reply.code == Some(14) {
            return Err(AckQueryError::Refused(describe(status.as_u16(), &reply)));
        }
        if !status.is_success() {
            return Err(AckQueryError::Failed(describe(status.as_u16(), &reply)));
        }
        let reply: AckReply = serde_json::from_slice(&body)
            .map_err(|error| AckQueryError::Failed(format!("unreadable answer: {error}")))?;
        Ok(reply
            .acks
            .into_iter()
            .filter(|(_, indexed)| *indexed)
            .filter_map(|(id, _)| id.parse().ok())
            .collect())
    }

    /// Queries `/services/collector/health` with the token.
    pub async fn health(&self) -> Result<(), SinkError> {
        let response = self
            .http
            .get(self.health_url.clone())
            .send()
            .await
            .map_err(|error| SinkError::Unavailable(error_chain(&error)))?;
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap_or_default();
        let reply: HecReply = serde_json::from_slice(&body).unwrap_or_default();
        let text = reply.text.unwrap_or_else(|| format!("http {status}"));
        match status {
            200..=299 => Ok(()),
            400 | 401 | 403 => Err(SinkError::Rejected(format!("token refused: {text}"))),
            404 => Err(SinkError::Config(format!(
                "no HTTP Event Collector at this url: {text}"
            ))),
            _ => Err(SinkError::Unavailable(text)),
        }
    }
}

/// An error with its sources, e.g. `error sending request: ...: invalid peer certificate:
/// UnknownIssuer`, so TLS failures are readable.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Resolves `alias` as `target`, so a connection to `target` carries `alias` as its TLS name.
#[derive(Debug)]
struct AliasResolver {
    alias: String,
    target: String,
}

impl reqwest::dns::Resolve for AliasResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = if name.as_str() == self.alias {
            self.target.clone()
        } else {
            name.as_str().to_owned()
        };
        Box::pin(async move {
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let addresses = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let addresses: reqwest::dns::Addrs =
                Box::new(addresses.collect::<Vec<_>>().into_iter());
            Ok(addresses)
        })
    }
}

//! The log-service HTTP client: endpoint and Host handling, signing, retries with capped,
//! jittered backoff on network errors and 5xx, and typed errors. The API operations live in
//! [`super::api`], one file each.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use tokio::sync::Semaphore;

use super::auth::{self, SignedRequest, Signing, SECURITY_TOKEN_HEADER};
use super::credentials::static_keys::StaticProvider;
use super::credentials::{Credentials, CredentialsCache, CredentialsError};
use super::error::{ApiError, ApiErrorCode};
use crate::common::host::is_loopback_host;
use crate::common::{Backoff, Secret};

/// How long establishing a connection may take, whatever the request timeout (as the Java
/// consumer's `HTTP_CONNECT_TIME_OUT`).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Requests a client and its clones send at once by default (see
/// [`ClientConfig::max_inflight_requests`]).
pub const DEFAULT_MAX_INFLIGHT_REQUESTS: usize = 64;

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `https://cn-hangzhou.log.aliyuncs.com`, or `http://127.0.0.1:PORT` / `http://localhost:PORT`.
    pub endpoint: String,
    /// The project all calls address.
    pub project: String,
    /// AccessKey id.
    pub access_key_id: String,
    /// AccessKey secret.
    pub access_key_secret: Secret,
    /// STS security token, when using temporary credentials.
    pub security_token: Option<Secret>,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Attempts per call for network errors and 5xx answers (1 = no retry).
    pub max_attempts: u32,
    /// Sent as `User-Agent`.
    pub user_agent: String,
    /// How requests are signed (v1 unless set; see [`Signing::resolve`]).
    pub signing: Signing,
    /// Credentials asked for before every request (refreshed near expiry and when refused);
    /// when set, the three static values above are not used.
    pub credentials: Option<CredentialsCache>,
    /// Requests this client and its clones send at once (at least 1); each holds a
    /// connection, so this bounds the connections whatever the number of callers. Further
    /// requests wait their turn, in order. Requests of an [`Client::uncapped`] clone do not
    /// count.
    pub max_inflight_requests: usize,
}

impl ClientConfig {
    /// A configuration with default timeouts and retries.
    pub fn new(
        endpoint: &str,
        project: &str,
        access_key_id: &str,
        access_key_secret: Secret,
    ) -> Self {
        Self {
            endpoint: endpoint.to_owned(),
            project: project.to_owned(),
            access_key_id: access_key_id.to_owned(),
            access_key_secret,
            security_token: None,
            request_timeout: Duration::from_secs(60),
            max_attempts: 4,
            user_agent: concat!("siem-forwarder/", env!("CARGO_PKG_VERSION")).to_owned(),
            signing: Signing::V1,
            credentials: None,
            max_inflight_requests: DEFAULT_MAX_INFLIGHT_REQUESTS,
        }
    }

    /// A configuration with default timeouts and retries, signing with `credentials`.
    pub fn with_credentials(endpoint: &str, project: &str, credentials: CredentialsCache) -> Self {
        Self {
            credentials: Some(credentials),
            ..Self::new(endpoint, project, "", Secret::default())
        }
    }
}

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an SLS error.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The server could not be reached or the connection broke.
    #[error("cannot reach the log service at {endpoint}: {source}")]
    Network {
        /// The endpoint.
        endpoint: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered 200 with something that is not what the API returns.
    #[error("malformed {api} response: {reason}")]
    BadResponse {
        /// The API called.
        api: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The endpoint cannot be used.
    #[error("invalid endpoint `{0}`: expected http(s)://HOST[:PORT]")]
    InvalidEndpoint(String),
    /// The project name breaks the log service's naming rule (it becomes part of the host).
    #[error("invalid project name `{0}`: {1}")]
    InvalidProject(String, String),
    /// A configured value cannot travel in an HTTP header: only visible ASCII can.
    #[error("{0} contains characters that cannot be sent in an HTTP header")]
    InvalidHeaderValue(&'static str),
    /// No credentials could be had from the provider.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// The server's answer is larger than any answer of the API can be.
    #[error("{api} response of more than {limit} bytes refused")]
    ResponseTooLarge {
        /// The API called.
        api: &'static str,
        /// The limit.
        limit: usize,
    },
}

impl ClientError {
    /// True for failures that may pass by themselves (network, 5xx, quotas).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Api(error) => error.is_retryable(),
            Self::Network { .. }
            | Self::BadResponse { .. }
            | Self::ResponseTooLarge { .. }
            | Self::Credentials(_) => true,
            Self::InvalidEndpoint(_) | Self::InvalidProject(..) | Self::InvalidHeaderValue(_) => {
                false
            }
        }
    }

    /// The API error code, when the server sent one.
    pub fn api_code(&self) -> Option<&super::ApiErrorCode> {
        match self {
            Self::Api(error) => Some(&error.code),
            _ => None,
        }
    }

    /// True when the log service refused the credentials themselves (401 with
    /// `Unauthorized`, `InvalidAccessKeyId*`, `SecurityToken.Expired` or
    /// `SecurityTokenExpired`, the codes the official SDKs refresh credentials on).
    pub fn is_credentials_refused(&self) -> bool {
        let Self::Api(error) = self else {
            return false;
        };
        error.status == 401
            && matches!(
                error.code,
                ApiErrorCode::Unauthorized
                    | ApiErrorCode::InvalidAccessKeyId
                    | ApiErrorCode::SecurityTokenExpired
            )
    }

    pub(crate) fn bad_response(api: &'static str, reason: impl ToString) -> Self {
        Self::BadResponse {
            api,
            reason: reason.to_string(),
        }
    }
}

/// One API request before signing.
#[derive(Debug)]
pub(crate) struct ApiRequest {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl ApiRequest {
    pub fn new(method: Method, path: String) -> Self {
        Self {
            method,
            path,
            query: Vec::new(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    pub fn query(mut self, key: &str, value: impl ToString) -> Self {
        self.query.push((key.to_owned(), value.to_string()));
        self
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.insert(name, value);
        }
        self
    }

    pub fn json_body(self, body: &serde_json::Value) -> Self {
        let mut request = self.header("content-type", "application/json");
        request.body = Bytes::from(body.to_string());
        request
    }
}

/// A successful answer.
#[derive(Debug)]
pub(crate) struct ApiResponse {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl ApiResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    pub fn json<T: for<'de> serde::Deserialize<'de>>(
        &self,
        api: &'static str,
    ) -> Result<T, ClientError> {
        serde_json::from_slice(&self.body).map_err(|error| ClientError::bad_response(api, error))
    }
}

/// The largest response body read: no answer of the API is larger than the largest pull
/// (compressed, so at most its raw size), and a server sending more is cut off, not buffered.
pub const MAX_RESPONSE_BYTES: usize = super::compression::MAX_RAW_SIZE;

/// A client of one project.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    config: ClientConfig,
    /// Scheme and address to connect to, e.g. `http://127.0.0.1:8080`.
    base_url: String,
    /// `Host` header: `PROJECT.HOST` without a port.
    host_header: HeaderValue,
    /// The credentials requests are signed with.
    credentials: CredentialsCache,
    /// Turns to send a request, shared by the clones; `None` for an uncapped clone.
    inflight: Option<Arc<Semaphore>>,
}

impl Client {
    /// Creates a client. For a cloud endpoint it connects to `PROJECT.HOST`; for an IP address
    /// or `localhost` endpoint it connects to that address and sends `Host: PROJECT.HOST`.
    /// An endpoint without a scheme is reached over HTTPS; `http://` to a host other than
    /// this machine is allowed (VPC-internal endpoints) but logged as a warning, since logs
    /// and the STS token then travel in clear.
    ///
    /// # Errors
    ///
    /// Fails when the endpoint is not an http(s) URL, or the project, AccessKey id or token
    /// cannot be sent in a header.
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        let invalid = || ClientError::InvalidEndpoint(config.endpoint.clone());
        let trimmed = config.endpoint.trim().trim_end_matches('/');
        let with_scheme = if trimmed.contains("://") {
            trimmed.to_owned()
        } else if is_loopback_host(host_of(trimmed)) {
            format!("http://{trimmed}")
        } else {
            format!("https://{trimmed}")
        };
        let url: http::Uri = with_scheme.parse().map_err(|_| invalid())?;
        let scheme = url
            .scheme_str()
            .filter(|s| *s == "http" || *s == "https")
            .ok_or_else(invalid)?;
        let authority = url.authority().ok_or_else(invalid)?;
        let host = authority.host();
        let bare_host = host.trim_start_matches('[').trim_end_matches(']');
        let is_address = bare_host.parse::<std::net::IpAddr>().is_ok() || bare_host == "localhost";
        if scheme == "http" && !is_loopback_host(bare_host) {
            tracing::warn!(
                endpoint = %config.endpoint,
                "the log service is reached over plain http: logs and credentials travel unencrypted; use https:// unless this is a private network"
            );
        }
        super::config::check_name(&config.project, false)
            .map_err(|reason| ClientError::InvalidProject(config.project.clone(), reason))?;
        let host_header = ascii_header(&format!("{}.{}", config.project, host));
        let credentials = match &config.credentials {
            Some(cache) => cache.clone(),
            None => {
                let fixed = Credentials::new(
                    config.access_key_id.clone(),
                    config.access_key_secret.clone(),
                    config.security_token.clone(),
                );
                fixed
                    .check()
                    .map_err(|(what, _)| ClientError::InvalidHeaderValue(what))?;
                CredentialsCache::new(StaticProvider::new(fixed))
            }
        };
        let base_url = if is_address {
            format!("{scheme}://{authority}")
        } else {
            format!("{scheme}://{}.{}", config.project, authority.as_str())
        };
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(50))
            .tcp_nodelay(true)
            .user_agent(&config.user_agent)
            .build()
            .map_err(|error| ClientError::Network {
                endpoint: config.endpoint.clone(),
                source: error,
            })?;
        let inflight = Some(Arc::new(Semaphore::new(
            config.max_inflight_requests.max(1),
        )));
        Ok(Self {
            http,
            config,
            base_url,
            host_header,
            credentials,
            inflight,
        })
    }

    /// The project this client addresses.
    pub fn project(&self) -> &str {
        &self.config.project
    }

    /// The endpoint as configured.
    pub fn endpoint(&self) -> &str {
        &self.config.endpoint
    }

    /// This client (sharing its connections) with one attempt per call, each given up after
    /// `timeout`: for calls a caller repeats on its own schedule (heartbeats, commits).
    pub fn single_attempt(&self, timeout: Duration) -> Self {
        let mut client = self.clone();
        client.config.request_timeout = timeout;
        client.config.max_attempts = 1;
        client
    }

    /// This client (sharing its connections) with requests that do not wait for a turn
    /// under [`ClientConfig::max_inflight_requests`]: for heartbeats, which must not queue
    /// behind pulls, as a heartbeat late by the group timeout loses every shard. A consumer
    /// sends one heartbeat per logstore at a time, so they add at most that many connections.
    pub fn uncapped(&self) -> Self {
        Self {
            inflight: None,
            ..self.clone()
        }
    }

    /// Sends a request, retrying network errors and 5xx answers with backoff. Refused
    /// credentials are refreshed and the request sent once more at once.
    pub(crate) async fn send(
        &self,
        api: &'static str,
        request: ApiRequest,
    ) -> Result<ApiResponse, ClientError> {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        let mut attempt = 1;
        loop {
            match self.send_authorized(api, &request).await {
                Err(error) if error.is_retryable() && attempt < self.config.max_attempts => {
                    let delay = backoff.next_delay();
                    tracing::debug!(api, %error, attempt, ?delay, "log service call failed; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    /// Sends a request signed with the current credentials; when the log service refuses
    /// them, sends it once more with refreshed ones. Waits for a turn first (see
    /// [`ClientConfig::max_inflight_requests`]), held until the answer is read and its
    /// connection idle again; the credentials and the request's date come after the wait.
    async fn send_authorized(
        &self,
        api: &'static str,
        request: &ApiRequest,
    ) -> Result<ApiResponse, ClientError> {
        let _turn = match &self.inflight {
            Some(inflight) => Some(
                inflight
                    .acquire()
                    .await
                    .expect("the in-flight semaphore is never closed"),
            ),
            None => None,
        };
        let credentials = self.credentials.get().await?;
        match self.send_once(api, request, &credentials).await {
            Err(error) if error.is_credentials_refused() => {
                tracing::info!(api, provider = self.credentials.provider_name(), %error, "credentials refused; refreshing them and retrying once");
                let refreshed = self.credentials.refresh_rejected(&credentials).await?;
                self.send_once(api, request, &refreshed).await
            }
            outcome => outcome,
        }
    }

    async fn send_once(
        &self,
        api: &'static str,
        request: &ApiRequest,
        credentials: &Credentials,
    ) -> Result<ApiResponse, ClientError> {
        let mut headers = request.headers.clone();
        headers.insert("x-log-apiversion", HeaderValue::from_static("0.6.0"));
        headers.insert("host", self.host_header.clone());
        if request.body.is_empty() {
            // As the official SDKs send it on every request without a body.
            headers.insert("x-log-bodyrawsize", HeaderValue::from_static("0"));
        }
        if let Some(token) = &credentials.security_token {
            let mut token = ascii_header(token.expose());
            token.set_sensitive(true);
            headers.insert(SECURITY_TOKEN_HEADER, token);
        }
        let now = std::time::SystemTime::now();
        let secret = credentials.access_key_secret.expose();
        let id = &credentials.access_key_id;
        headers.insert("date", ascii_header(&httpdate::fmt_http_date(now)));
        let authorization = match &self.config.signing {
            Signing::V1 => {
                headers.insert(
                    "x-log-signaturemethod",
                    HeaderValue::from_static("hmac-sha1"),
                );
                if !request.body.is_empty() {
                    headers.insert(
                        "content-md5",
                        ascii_header(&auth::content_md5(&request.body)),
                    );
                }
                auth::authorization(id, secret, &signed(request, &headers))
            }
            Signing::V4 { region } => {
                // The headers the v4 documentation lists ("Request signatures (V4)").
                headers.insert(
                    "x-log-signaturemethod",
                    HeaderValue::from_static("hmac-sha256"),
                );
                headers.insert(
                    auth::v4::DATE_HEADER,
                    ascii_header(&auth::v4::format_date(now)),
                );
                headers.insert(
                    auth::v4::CONTENT_SHA256_HEADER,
                    ascii_header(&auth::v4::content_sha256(&request.body)),
                );
                auth::v4::authorization(id, secret, region, &signed(request, &headers))
            }
        };
        let mut authorization = ascii_header(&authorization);
        authorization.set_sensitive(true);
        headers.insert("authorization", authorization);
        let url = format!("{}{}", self.base_url, request.path);
        let network = |source| ClientError::Network {
            endpoint: self.config.endpoint.clone(),
            source,
        };
        let mut response = self
            .http
            .request(request.method.clone(), url)
            .timeout(self.config.request_timeout)
            .query(&request.query)
            .headers(headers)
            .body(request.body.clone())
            .send()
            .await
            .map_err(network)?;
        let status = response.status();
        let headers = response.headers().clone();
        let too_large = || ClientError::ResponseTooLarge {
            api,
            limit: MAX_RESPONSE_BYTES,
        };
        let declared = response.content_length().unwrap_or(0);
        if declared > MAX_RESPONSE_BYTES as u64 {
            return Err(too_large());
        }
        let mut body = Vec::with_capacity(declared as usize);
        while let Some(chunk) = response.chunk().await.map_err(network)? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let body = Bytes::from(body);
        if status.is_success() {
            return Ok(ApiResponse { headers, body });
        }
        let request_id = headers
            .get("x-log-requestid")
            .and_then(|value| value.to_str().ok());
        Err(ApiError::from_response(status.as_u16(), &body, request_id).into())
    }
}

/// The signed parts of `request` with its final `headers`.
fn signed<'a>(request: &'a ApiRequest, headers: &'a HeaderMap) -> SignedRequest<'a> {
    SignedRequest {
        method: request.method.as_str(),
        path: &request.path,
        query: &request.query,
        headers,
    }
}

/// A header value from text this client built itself: dates, digests and signatures are
/// ASCII, and credentials were checked ([`Credentials::check`]) in [`Client::new`] or by
/// their provider.
fn ascii_header(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).expect("generated header values are visible ASCII")
}

/// The host part of a scheme-less `HOST[:PORT]`, brackets kept for IPv6.
fn host_of(authority: &str) -> &str {
    let authority = authority.split('/').next().unwrap_or(authority);
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !port.contains(']') => host,
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(endpoint: &str) -> Client {
        Client::new(ClientConfig::new(
            endpoint,
            "proj",
            "id",
            Secret::new("secret"),
        ))
        .unwrap()
    }

    #[test]
    fn cloud_endpoints_put_the_project_in_the_host() {
        let cloud = client("https://cn-hangzhou.log.aliyuncs.com");
        assert_eq!(cloud.base_url, "https://proj.cn-hangzhou.log.aliyuncs.com");
        assert_eq!(cloud.host_header, "proj.cn-hangzhou.log.aliyuncs.com");
        let bare = client("cn-hangzhou.log.aliyuncs.com");
        assert_eq!(bare.base_url, "https://proj.cn-hangzhou.log.aliyuncs.com");
    }

    #[test]
    fn address_endpoints_connect_there_with_a_project_host() {
        let local = client("http://127.0.0.1:18080/");
        assert_eq!(local.base_url, "http://127.0.0.1:18080");
        assert_eq!(local.host_header, "proj.127.0.0.1");
        let loopback_v6 = client("[::1]:9000");
        assert_eq!(loopback_v6.base_url, "http://[::1]:9000");
        let named = client("localhost:9000");
        assert_eq!(named.base_url, "http://localhost:9000");
        assert_eq!(named.host_header, "proj.localhost");
    }

    #[test]
    fn values_that_cannot_be_headers_are_errors_not_panics() {
        let endpoint = "http://127.0.0.1:1";
        let project = ClientConfig::new(endpoint, "projé", "id", Secret::new("s"));
        assert!(matches!(
            Client::new(project),
            Err(ClientError::InvalidProject(..))
        ));
        let key_id = ClientConfig::new(endpoint, "proj", "id\n", Secret::new("s"));
        assert!(matches!(
            Client::new(key_id),
            Err(ClientError::InvalidHeaderValue("the AccessKey id"))
        ));
        let mut token = ClientConfig::new(endpoint, "proj", "id", Secret::new("s"));
        token.security_token = Some(Secret::new("token\n"));
        let error = Client::new(token).unwrap_err();
        assert!(matches!(
            error,
            ClientError::InvalidHeaderValue("the security token")
        ));
        assert!(!error.to_string().contains("token\n"), "{error}");
    }

    /// Answers one connection with `head` and keeps it open; yields what the client sent.
    async fn serve_once(head: String) -> (String, tokio::sync::oneshot::Receiver<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (sent, received) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0; 4096];
            let read = socket.read(&mut request).await.unwrap_or(0);
            let _ = sent.send(String::from_utf8_lossy(&request[..read]).to_lowercase());
            socket.write_all(head.as_bytes()).await.unwrap();
            // Hold the connection open: the client must act on the header alone.
            let _ = socket.read(&mut request).await;
        });
        (format!("http://{address}"), received)
    }

    fn list_shards() -> ApiRequest {
        ApiRequest::new(Method::GET, "/logstores".into())
    }

    #[tokio::test]
    async fn an_oversized_answer_is_refused_without_reading_it() {
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
            MAX_RESPONSE_BYTES + 1
        );
        let (endpoint, _) = serve_once(head).await;
        let mut config = ClientConfig::new(&endpoint, "proj", "id", Secret::new("s"));
        config.max_attempts = 1;
        let error = Client::new(config)
            .unwrap()
            .send("ListShards", list_shards())
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                ClientError::ResponseTooLarge {
                    api: "ListShards",
                    ..
                }
            ),
            "{error}"
        );
    }

    #[tokio::test]
    async fn bodiless_requests_declare_a_zero_raw_size_and_an_empty_token_is_not_sent() {
        let head = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}".to_owned();
        let (endpoint, request) = serve_once(head).await;
        let mut config = ClientConfig::new(&endpoint, "proj", "id", Secret::new("s"));
        config.security_token = Some(Secret::new(""));
        Client::new(config)
            .unwrap()
            .send("ListShards", list_shards())
            .await
            .unwrap();
        let request = request.await.unwrap();
        assert!(
            request.contains("\r\nx-log-bodyrawsize: 0\r\n"),
            "{request}"
        );
        assert!(!request.contains(SECURITY_TOKEN_HEADER), "{request}");
    }

    #[tokio::test]
    async fn a_single_attempt_client_gives_up_at_its_timeout_without_retrying() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(socket); // never answered
            }
        });
        let config = ClientConfig::new(&endpoint, "proj", "id", Secret::new("s"));
        let client = Client::new(config).unwrap();
        let started = std::time::Instant::now();
        let error = client
            .single_attempt(Duration::from_millis(300))
            .send("ListShards", list_shards())
            .await
            .unwrap_err();
        assert!(matches!(error, ClientError::Network { .. }), "{error}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "not the 60 s default, nor retried: {:?}",
            started.elapsed()
        );
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    /// Answers each request on its own connection (then closes it), once `gate` has a
    /// permit for it; counts the connections accepted.
    async fn gated_server() -> (String, Arc<Semaphore>, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let gate = Arc::new(Semaphore::new(0));
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (server_gate, counter) = (gate.clone(), accepted.clone());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let gate = server_gate.clone();
                tokio::spawn(async move {
                    let mut request = [0; 4096];
                    let _ = socket.read(&mut request).await;
                    gate.acquire().await.unwrap().forget();
                    let answer =
                        "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}";
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        (endpoint, gate, accepted)
    }

    /// Waits (at most 10 s) until `accepted` reaches `count`.
    async fn wait_for_connections(accepted: &std::sync::atomic::AtomicUsize, count: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while accepted.load(std::sync::atomic::Ordering::SeqCst) < count {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{count} connections not made"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn requests_past_the_cap_wait_for_a_turn_but_uncapped_ones_do_not() {
        let (endpoint, gate, accepted) = gated_server().await;
        let mut config = ClientConfig::new(&endpoint, "proj", "id", Secret::new("s"));
        config.max_attempts = 1;
        config.max_inflight_requests = 2;
        let client = Client::new(config).unwrap();
        let send = |client: Client| {
            tokio::spawn(async move { client.send("ListShards", list_shards()).await })
        };
        let capped: Vec<_> = (0..4).map(|_| send(client.clone())).collect();
        wait_for_connections(&accepted, 2).await;
        let uncapped = send(client.uncapped());
        wait_for_connections(&accepted, 3).await;
        assert_eq!(
            accepted.load(std::sync::atomic::Ordering::SeqCst),
            3,
            "two capped requests and the uncapped one, while nothing is answered"
        );
        gate.add_permits(5);
        uncapped.await.unwrap().unwrap();
        for request in capped {
            request.await.unwrap().unwrap();
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 5);
    }

    #[test]
    fn non_http_endpoints_are_rejected() {
        let config = ClientConfig::new("ftp://example.com", "proj", "id", Secret::new("s"));
        assert!(matches!(
            Client::new(config),
            Err(ClientError::InvalidEndpoint(_))
        ));
    }
}

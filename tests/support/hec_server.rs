//! A Splunk-like HTTP Event Collector for tests, on `127.0.0.1:0` (plain HTTP or TLS).
//!
//! It answers as Splunk documents HEC ("Format events for HTTP Event Collector", "HTTP Event
//! Collector REST API endpoints", "About HTTP Event Collector Indexer Acknowledgment",
//! "Troubleshoot HTTP Event Collector"):
//!
//! - `POST /services/collector/event` (also `/services/collector`, `/event/1.0`): a body of
//!   JSON objects back-to-back, each with a non-empty `event`; `Content-Encoding: gzip` bodies
//!   are decoded, other encodings get 415.
//! - `Authorization: Splunk <token>`: none gives 401 `{"text":"Token is required","code":2}`, a
//!   different scheme 401 code 3 "Invalid authorization", a wrong token 403
//!   `{"text":"Invalid token","code":4}`.
//! - When busy: 503 `{"text":"Server is busy","code":9}` with `Retry-After`. When nearly
//!   full: successes are 200 `{"text":"HEC queue is approaching its capacity limit","code":24}`.
//! - When the token has indexer acknowledgement on, a data request without a channel
//!   (`X-Splunk-Request-Channel` header or `?channel=`) gets 400
//!   `{"text":"Data channel is missing","code":10}`, a channel that is not a GUID 400 code 11.
//!   Success answers carry `"ackId"`: one id per request, counting from 0 per channel.
//! - Data errors stop at the first bad object: 400 `{"text":"Invalid data format","code":6,
//!   "invalid-event-number":N}` (also for an object matching the reject marker), code 12 for a
//!   missing `event`, code 13 for a blank one, code 5 for an empty body. The objects before N are
//!   indexed, N and the rest are not.
//! - A decoded body over `max_content_length` gets 413 and indexes nothing (the limit is
//!   applied to the decoded body so tests do not depend on the compression ratio).
//! - `POST /services/collector/ack` with `{"acks":[ids]}` on a channel answers
//!   `{"acks":{"id":bool}}`; an id reported `true` is forgotten (asking again gives `false`);
//!   400 code 14 "ACK is disabled" when the token has acknowledgement off. While acks are
//!   withheld, every id is reported `false`.
//! - `GET /services/collector/health`: 200 `{"text":"HEC is healthy","code":17}`, 503 code 18
//!   when busy, 400 code 21 for a supplied invalid token.
//! - `POST /services/collector/raw`: one event per non-empty line.
//!
//! Also documented Splunk behaviour, switched on at run time:
//! - `set_ack_disabled`: the token's indexer acknowledgement turned off, so the ack endpoint
//!   answers 400 code 14 "ACK is disabled" and successes carry no `ackId`.
//!
//! Not Splunk, but what sits in front of it (switched on at run time):
//! - `set_ack_unavailable`: a load balancer while Splunk restarts, answering the ack endpoint
//!   with a 404 HTML page and no HEC code;
//! - `set_proxy_bad_request`: a proxy or web application firewall refusing data requests with a
//!   bodyless 400 (no HEC code) before they reach Splunk.
//!
//! Indexed events are stored for assertions; switches change the behaviour at run time.

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How the server starts.
pub struct HecServerOptions {
    /// The accepted token.
    pub token: String,
    /// Whether the token has indexer acknowledgement on (`useACK`).
    pub ack: bool,
    /// Largest decoded body accepted; larger ones get 413.
    pub max_content_length: usize,
    /// Serve HTTPS with this configuration.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for HecServerOptions {
    fn default() -> Self {
        Self {
            token: "11111111-2222-3333-4444-555555555555".into(),
            ack: false,
            max_content_length: 800 << 20,
            tls: None,
        }
    }
}

/// One indexed event.
#[derive(Debug, Clone)]
pub struct IndexedEvent {
    /// The object's JSON text exactly as received (the raw line for `/raw`).
    pub raw: String,
    /// The object parsed (a string for a raw line that is not JSON).
    pub value: Value,
    /// The channel of the request that carried it.
    pub channel: Option<String>,
}

/// Counts of what the server saw.
#[derive(Debug, Default)]
pub struct Counters {
    /// Data requests received.
    pub data_requests: AtomicU64,
    /// Data requests with `Content-Encoding: gzip`.
    pub gzip_requests: AtomicU64,
    /// Busy answers given.
    pub busy_answers: AtomicU64,
    /// Token refusals given.
    pub token_refusals: AtomicU64,
    /// Data-error answers given.
    pub data_errors: AtomicU64,
    /// 413 answers given.
    pub too_large: AtomicU64,
    /// Acknowledgement ids issued.
    pub ack_ids_issued: AtomicU64,
    /// Acknowledgement ids reported `true`.
    pub ack_ids_released: AtomicU64,
    /// Acknowledgement ids reported `false` (not indexed yet, or unknown).
    pub ack_ids_unreleased: AtomicU64,
    /// Acknowledgement queries answered 400 code 14.
    pub ack_refusals: AtomicU64,
    /// Acknowledgement queries answered 404 by the simulated load balancer.
    pub ack_unavailable_answers: AtomicU64,
    /// Data requests answered with a bodyless 400 by the simulated proxy.
    pub proxy_rejections: AtomicU64,
    /// Data requests being answered at the moment.
    pub data_requests_open: AtomicU64,
    /// The most data requests ever answered at once.
    pub most_data_requests_open: AtomicU64,
}

#[derive(Default)]
struct Channel {
    next_id: u64,
    unreported: BTreeSet<u64>,
}

struct State {
    token: String,
    ack: bool,
    max_content_length: usize,
    busy: AtomicBool,
    nearly_full: AtomicBool,
    token_accepted: AtomicBool,
    withhold_acks: AtomicBool,
    ack_disabled: AtomicBool,
    ack_unavailable: AtomicBool,
    proxy_bad_request: AtomicBool,
    latency_ms: AtomicU64,
    reject_marker: Mutex<Option<String>>,
    events: Mutex<Vec<IndexedEvent>>,
    channels: Mutex<HashMap<String, Channel>>,
    channels_seen: Mutex<BTreeSet<String>>,
    counters: Counters,
}

/// The running server; stops when dropped.
pub struct HecServer {
    addr: SocketAddr,
    tls: bool,
    state: Arc<State>,
    stop: CancellationToken,
}

impl Drop for HecServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl HecServer {
    /// Starts a server on `127.0.0.1:0`.
    pub async fn start(options: HecServerOptions) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(State {
            token: options.token,
            ack: options.ack,
            max_content_length: options.max_content_length,
            busy: AtomicBool::new(false),
            nearly_full: AtomicBool::new(false),
            token_accepted: AtomicBool::new(true),
            withhold_acks: AtomicBool::new(false),
            ack_disabled: AtomicBool::new(false),
            ack_unavailable: AtomicBool::new(false),
            proxy_bad_request: AtomicBool::new(false),
            latency_ms: AtomicU64::new(0),
            reject_marker: Mutex::new(None),
            events: Mutex::new(Vec::new()),
            channels: Mutex::new(HashMap::new()),
            channels_seen: Mutex::new(BTreeSet::new()),
            counters: Counters::default(),
        });
        let stop = CancellationToken::new();
        let acceptor = options.tls.clone().map(tokio_rustls::TlsAcceptor::from);
        tokio::spawn(accept_loop(listener, acceptor, state.clone(), stop.clone()));
        Self {
            addr,
            tls: options.tls.is_some(),
            state,
            stop,
        }
    }

    /// The base URL (`https://localhost:PORT` for TLS, to match a `localhost` certificate).
    pub fn url(&self) -> String {
        if self.tls {
            format!("https://localhost:{}", self.addr.port())
        } else {
            format!("http://{}", self.addr)
        }
    }

    /// The accepted token.
    pub fn token(&self) -> &str {
        &self.state.token
    }

    /// Answers data requests after `latency`, as a distant collector.
    pub fn set_latency(&self, latency: std::time::Duration) {
        let ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        self.state.latency_ms.store(ms, Ordering::SeqCst);
    }

    /// Answers 503 "Server is busy" (code 9) to data requests while on.
    pub fn set_busy(&self, busy: bool) {
        self.state.busy.store(busy, Ordering::SeqCst);
    }

    /// Answers successes with 200 code 24 ("HEC queue is approaching its capacity limit")
    /// while on.
    pub fn set_nearly_full(&self, nearly_full: bool) {
        self.state.nearly_full.store(nearly_full, Ordering::SeqCst);
    }

    /// Refuses every token (403 code 4) while off.
    pub fn set_token_accepted(&self, accepted: bool) {
        self.state.token_accepted.store(accepted, Ordering::SeqCst);
    }

    /// Reports every acknowledgement id as not yet indexed while on.
    pub fn set_withhold_acks(&self, withhold: bool) {
        self.state.withhold_acks.store(withhold, Ordering::SeqCst);
    }

    /// Splunk with the token's indexer acknowledgement turned off while on: ack queries get
    /// 400 code 14 "ACK is disabled", successes carry no `ackId`.
    pub fn set_ack_disabled(&self, disabled: bool) {
        self.state.ack_disabled.store(disabled, Ordering::SeqCst);
    }

    /// Not Splunk: a load balancer answering ack queries with a 404 HTML page (no HEC code)
    /// while on, as while the collector behind it restarts.
    pub fn set_ack_unavailable(&self, unavailable: bool) {
        self.state
            .ack_unavailable
            .store(unavailable, Ordering::SeqCst);
    }

    /// Not Splunk: a proxy or firewall answering data requests with a bodyless 400 (no HEC
    /// code) while on; nothing reaches the collector.
    pub fn set_proxy_bad_request(&self, refuse: bool) {
        self.state.proxy_bad_request.store(refuse, Ordering::SeqCst);
    }

    /// Rejects (code 6, with its `invalid-event-number`) any object whose text contains
    /// `marker`.
    pub fn set_reject_marker(&self, marker: Option<&str>) {
        *self.state.reject_marker.lock().unwrap() = marker.map(str::to_owned);
    }

    /// Every event indexed so far.
    pub fn events(&self) -> Vec<IndexedEvent> {
        self.state.events.lock().unwrap().clone()
    }

    /// Number of events indexed so far.
    pub fn event_count(&self) -> usize {
        self.state.events.lock().unwrap().len()
    }

    /// The current value of one counter: `server.count(|c| &c.data_requests)`.
    pub fn count(&self, counter: impl Fn(&Counters) -> &AtomicU64) -> u64 {
        counter(&self.state.counters).load(Ordering::SeqCst)
    }

    /// Every channel seen on data and ack requests.
    pub fn channels_seen(&self) -> BTreeSet<String> {
        self.state.channels_seen.lock().unwrap().clone()
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<State>,
    stop: CancellationToken,
) {
    loop {
        let (stream, _) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => continue,
            },
        };
        let state = state.clone();
        let acceptor = acceptor.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(state.clone(), request));
            let http = hyper::server::conn::http1::Builder::new();
            match acceptor {
                Some(acceptor) => {
                    // A refused handshake just ends the connection, as on a real server.
                    if let Ok(stream) = acceptor.accept(stream).await {
                        let connection = http.serve_connection(TokioIo::new(stream), service);
                        tokio::select! { _ = connection => {}, _ = stop.cancelled() => {} }
                    }
                }
                None => {
                    let connection = http.serve_connection(TokioIo::new(stream), service);
                    tokio::select! { _ = connection => {}, _ = stop.cancelled() => {} }
                }
            }
        });
    }
}

fn reply(status: u16, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = StatusCode::from_u16(status).expect("status");
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().expect("header"));
    response
}

/// A non-HEC answer (as from a proxy or load balancer): an HTML page titled `title`, or no
/// body at all when `title` is empty.
fn html(status: u16, title: &str) -> Response<Full<Bytes>> {
    let body = if title.is_empty() {
        Bytes::new()
    } else {
        Bytes::from(format!("<html><title>{title}</title></html>"))
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = StatusCode::from_u16(status).expect("status");
    response
}

fn hec(status: u16, text: &str, code: i64) -> Response<Full<Bytes>> {
    reply(status, json!({"text": text, "code": code}))
}

fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.iter().map(|group| group.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|group| group.chars().all(|c| c.is_ascii_hexdigit()))
}

async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().trim_end_matches('/').to_owned();
    let channel = request
        .headers()
        .get("x-splunk-request-channel")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            request.uri().query().and_then(|query| {
                query
                    .split('&')
                    .find_map(|pair| pair.strip_prefix("channel="))
                    .map(str::to_owned)
            })
        });
    let authorization = request
        .headers()
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let encoding = request
        .headers()
        .get("content-encoding")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(hec(400, "Invalid data format", 6)),
    };
    if let Some(channel) = &channel {
        state.channels_seen.lock().unwrap().insert(channel.clone());
    }
    // The refusal to send, or `None` when the token is accepted.
    let token_refusal = || match authorization.as_deref() {
        None => Some(hec(401, "Token is required", 2)),
        Some(value) => match value.strip_prefix("Splunk ") {
            None => Some(hec(401, "Invalid authorization", 3)),
            Some(token) if token == state.token && state.token_accepted.load(Ordering::SeqCst) => {
                None
            }
            Some(_) => {
                state.counters.token_refusals.fetch_add(1, Ordering::SeqCst);
                Some(hec(403, "Invalid token", 4))
            }
        },
    };
    let response = match path.as_str() {
        "/services/collector/health" | "/services/collector/health/1.0" => {
            if authorization.is_some() && token_refusal().is_some() {
                hec(400, "Invalid token", 21)
            } else if state.busy.load(Ordering::SeqCst) {
                hec(503, "HEC is unhealthy, queues are full", 18)
            } else {
                hec(200, "HEC is healthy", 17)
            }
        }
        "/services/collector/ack" if state.ack_unavailable.load(Ordering::SeqCst) => {
            state
                .counters
                .ack_unavailable_answers
                .fetch_add(1, Ordering::SeqCst);
            html(404, "404 Not Found")
        }
        "/services/collector/ack" => match token_refusal() {
            Some(refusal) => refusal,
            None => acks(&state, channel.as_deref(), &body),
        },
        "/services/collector"
        | "/services/collector/event"
        | "/services/collector/event/1.0"
        | "/services/collector/raw"
        | "/services/collector/raw/1.0" => {
            state.counters.data_requests.fetch_add(1, Ordering::SeqCst);
            let counters = &state.counters;
            let open = counters.data_requests_open.fetch_add(1, Ordering::SeqCst) + 1;
            counters
                .most_data_requests_open
                .fetch_max(open, Ordering::SeqCst);
            let latency = state.latency_ms.load(Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
            counters.data_requests_open.fetch_sub(1, Ordering::SeqCst);
            if state.proxy_bad_request.load(Ordering::SeqCst) {
                state
                    .counters
                    .proxy_rejections
                    .fetch_add(1, Ordering::SeqCst);
                return Ok(html(400, ""));
            }
            match token_refusal() {
                Some(refusal) => refusal,
                None => data(&state, &path, channel, encoding.as_deref(), &body),
            }
        }
        _ => reply(
            404,
            json!({"text": "The requested URL was not found on this server.", "code": 404}),
        ),
    };
    Ok(response)
}

fn data(
    state: &State,
    path: &str,
    channel: Option<String>,
    encoding: Option<&str>,
    body: &[u8],
) -> Response<Full<Bytes>> {
    if state.busy.load(Ordering::SeqCst) {
        state.counters.busy_answers.fetch_add(1, Ordering::SeqCst);
        let mut response = hec(503, "Server is busy", 9);
        response
            .headers_mut()
            .insert("retry-after", "1".parse().expect("header"));
        return response;
    }
    let ack = state.ack && !state.ack_disabled.load(Ordering::SeqCst);
    match &channel {
        None if ack => return hec(400, "Data channel is missing", 10),
        Some(channel) if !is_guid(channel) => return hec(400, "Invalid data channel", 11),
        _ => {}
    }
    let decoded = match encoding {
        None => body.to_vec(),
        Some("gzip") => {
            state.counters.gzip_requests.fetch_add(1, Ordering::SeqCst);
            let mut decoded = Vec::new();
            if flate2::read::GzDecoder::new(body)
                .read_to_end(&mut decoded)
                .is_err()
            {
                return hec(400, "Invalid data format", 6);
            }
            decoded
        }
        Some(_) => return reply(415, json!({"text": "Unsupported Media Type", "code": 415})),
    };
    if decoded.len() > state.max_content_length {
        state.counters.too_large.fetch_add(1, Ordering::SeqCst);
        return html(413, "413 Content Too Large");
    }
    let (accepted, error) = if path.contains("/raw") {
        parse_raw(&decoded)
    } else {
        parse_events(&decoded)
    };
    let marker = state.reject_marker.lock().unwrap().clone();
    let (accepted, error) = match marker
        .as_deref()
        .and_then(|marker| accepted.iter().position(|event| event.raw.contains(marker)))
    {
        Some(bad) => (
            accepted[..bad].to_vec(),
            Some(json!({"text": "Invalid data format", "code": 6, "invalid-event-number": bad})),
        ),
        None => (accepted, error),
    };
    let accepted_count = accepted.len();
    state
        .events
        .lock()
        .unwrap()
        .extend(accepted.into_iter().map(|event| IndexedEvent {
            channel: channel.clone(),
            ..event
        }));
    if let Some(error) = error {
        state.counters.data_errors.fetch_add(1, Ordering::SeqCst);
        return reply(400, error);
    }
    if accepted_count == 0 {
        return hec(400, "No data", 5);
    }
    let nearly_full = state.nearly_full.load(Ordering::SeqCst);
    let (text, code) = if nearly_full {
        ("HEC queue is approaching its capacity limit", 24)
    } else {
        ("Success", 0)
    };
    if !ack {
        return hec(200, text, code);
    }
    let mut channels = state.channels.lock().unwrap();
    let acks = channels.entry(channel.unwrap_or_default()).or_default();
    let ack_id = acks.next_id;
    acks.next_id += 1;
    acks.unreported.insert(ack_id);
    state.counters.ack_ids_issued.fetch_add(1, Ordering::SeqCst);
    reply(200, json!({"text": text, "code": code, "ackId": ack_id}))
}

/// Parses back-to-back objects; stops at the first bad one with its error answer.
fn parse_events(body: &[u8]) -> (Vec<IndexedEvent>, Option<Value>) {
    let mut accepted = Vec::new();
    let mut stream = serde_json::Deserializer::from_slice(body).into_iter::<Value>();
    let mut start = 0;
    loop {
        let index = accepted.len();
        let value = match stream.next() {
            None => return (accepted, None),
            Some(Err(_)) => {
                return (
                    accepted,
                    Some(
                        json!({"text": "Invalid data format", "code": 6, "invalid-event-number": index}),
                    ),
                )
            }
            Some(Ok(value)) => value,
        };
        let end = stream.byte_offset();
        let raw = String::from_utf8_lossy(&body[start..end]).trim().to_owned();
        start = end;
        match value.get("event") {
            None => {
                return (
                    accepted,
                    Some(
                        json!({"text": "Event field is required", "code": 12, "invalid-event-number": index}),
                    ),
                )
            }
            Some(Value::String(text)) if text.is_empty() => {
                return (
                    accepted,
                    Some(
                        json!({"text": "Event field cannot be blank", "code": 13, "invalid-event-number": index}),
                    ),
                )
            }
            Some(_) => {}
        }
        accepted.push(IndexedEvent {
            raw,
            value,
            channel: None,
        });
    }
}

fn parse_raw(body: &[u8]) -> (Vec<IndexedEvent>, Option<Value>) {
    let text = String::from_utf8_lossy(body);
    let events = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| IndexedEvent {
            raw: line.to_owned(),
            value: serde_json::from_str(line).unwrap_or_else(|_| Value::String(line.to_owned())),
            channel: None,
        })
        .collect();
    (events, None)
}

fn acks(state: &State, channel: Option<&str>, body: &[u8]) -> Response<Full<Bytes>> {
    if !state.ack || state.ack_disabled.load(Ordering::SeqCst) {
        state.counters.ack_refusals.fetch_add(1, Ordering::SeqCst);
        return hec(400, "ACK is disabled", 14);
    }
    let Some(channel) = channel else {
        return hec(400, "Data channel is missing", 10);
    };
    let Ok(query) = serde_json::from_slice::<Value>(body) else {
        return hec(400, "Invalid data format", 6);
    };
    let Some(ids) = query.get("acks").and_then(Value::as_array) else {
        return hec(400, "Invalid data format", 6);
    };
    let withhold = state.withhold_acks.load(Ordering::SeqCst);
    let mut channels = state.channels.lock().unwrap();
    let pending = channels.entry(channel.to_owned()).or_default();
    let mut answer = serde_json::Map::new();
    for id in ids.iter().filter_map(Value::as_u64) {
        let indexed = !withhold && pending.unreported.remove(&id);
        let counter = if indexed {
            &state.counters.ack_ids_released
        } else {
            &state.counters.ack_ids_unreleased
        };
        counter.fetch_add(1, Ordering::SeqCst);
        answer.insert(id.to_string(), Value::Bool(indexed));
    }
    reply(200, json!({ "acks": answer }))
}

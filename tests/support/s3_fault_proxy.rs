//! A fault-injecting reverse proxy for tests, between an S3 client (the archive sink) and an
//! S3-compatible server (moto), on `127.0.0.1:0`.
//!
//! Requests are forwarded unchanged (the `Host` header included, so SigV4 signatures still
//! check upstream) and answered with the server's answer. Switched at run time:
//!
//! - [`S3FaultProxy::fail_next`]: the next requests of a [`Kind`] get the given [`Fault`]s, one
//!   each, without reaching the server: an S3 error document with a 5xx status (`InternalError`,
//!   `ServiceUnavailable`, `SlowDown`); a connection reset (RST) after part of the request body
//!   was read; or 200 with an `<Error>` document, as S3 answers a `CompleteMultipartUpload` (or
//!   a copy) that failed after its 200 was sent;
//! - [`S3FaultProxy::set_denied`]: 403 `AccessDenied` to every request while on, as a bucket
//!   policy that refuses the key;
//! - [`S3FaultProxy::set_delay`]: answers held that long after the server answered (the object
//!   is stored; only the answer is late);
//! - [`S3FaultProxy::stall`]: requests of the given kinds held before they are forwarded (nothing
//!   stored) until [`S3FaultProxy::release`].
//!
//! Every request is counted by kind on arrival ([`S3FaultProxy::count`]), and so are the ones
//! the server answered with a success ([`S3FaultProxy::stored`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What an S3 request does, told from its method and query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `PUT /bucket/key`.
    PutObject,
    /// `POST /bucket/key?uploads`.
    CreateMultipart,
    /// `PUT /bucket/key?partNumber=N&uploadId=ID`.
    UploadPart,
    /// `POST /bucket/key?uploadId=ID`.
    CompleteMultipart,
    /// `DELETE /bucket/key?uploadId=ID`.
    AbortMultipart,
    /// `GET` of a bucket (a listing).
    List,
    /// `GET` of an object.
    Get,
    /// `HEAD` of an object or bucket.
    Head,
    /// Anything else (`DELETE` of an object, bucket creation through the proxy, ...).
    Other,
}

impl Kind {
    /// The kind of a request to `path` (`/bucket[/key]`) with `query`.
    pub fn of(method: &Method, path: &str, query: &str) -> Self {
        let has = |name: &str| {
            query
                .split('&')
                .any(|pair| pair.split('=').next() == Some(name))
        };
        let object = path.trim_start_matches('/').contains('/');
        match *method {
            Method::PUT if has("partNumber") && has("uploadId") => Self::UploadPart,
            Method::PUT if object => Self::PutObject,
            Method::POST if has("uploads") => Self::CreateMultipart,
            Method::POST if has("uploadId") => Self::CompleteMultipart,
            Method::DELETE if has("uploadId") => Self::AbortMultipart,
            Method::GET if object => Self::Get,
            Method::GET => Self::List,
            Method::HEAD => Self::Head,
            _ => Self::Other,
        }
    }

    /// The kinds that store data: what a stall holds back.
    pub const WRITES: [Kind; 3] = [Kind::PutObject, Kind::UploadPart, Kind::CompleteMultipart];
}

/// What a faulted request gets instead of the server's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// This status with an S3 error document of this code.
    Status(u16, &'static str),
    /// The connection is reset (RST) once part of the request body was read.
    Reset,
    /// 200 with an `<Error>` document of this code (and no `ETag`).
    OkWithError(&'static str),
}

impl Fault {
    /// 500 `InternalError`.
    pub const INTERNAL: Fault = Fault::Status(500, "InternalError");
    /// 503 `ServiceUnavailable`.
    pub const UNAVAILABLE: Fault = Fault::Status(503, "ServiceUnavailable");
    /// 503 `SlowDown` (S3's throttling).
    pub const SLOW_DOWN: Fault = Fault::Status(503, "SlowDown");
}

struct State {
    upstream: String,
    client: reqwest::Client,
    faults: Mutex<BTreeMap<Kind, VecDeque<Fault>>>,
    denied: AtomicBool,
    delay_ms: AtomicU64,
    stalled: watch::Sender<BTreeSet<Kind>>,
    held: AtomicU64,
    received: Mutex<BTreeMap<Kind, u64>>,
    stored: Mutex<BTreeMap<Kind, u64>>,
    faulted: AtomicU64,
}

/// The running proxy; stops when dropped.
pub struct S3FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    stop: CancellationToken,
}

impl Drop for S3FaultProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl S3FaultProxy {
    /// Starts a proxy on `127.0.0.1:0` in front of `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_owned(),
            // A fresh connection to the server for every request: a kept-alive one the
            // server has closed meanwhile would fail a forward, a fault nobody chose.
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .pool_max_idle_per_host(0)
                .build()
                .expect("proxy client"),
            faults: Mutex::new(BTreeMap::new()),
            denied: AtomicBool::new(false),
            delay_ms: AtomicU64::new(0),
            stalled: watch::channel(BTreeSet::new()).0,
            held: AtomicU64::new(0),
            received: Mutex::new(BTreeMap::new()),
            stored: Mutex::new(BTreeMap::new()),
            faulted: AtomicU64::new(0),
        });
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(listener, state.clone(), stop.clone()));
        Self { addr, state, stop }
    }

    /// `http://127.0.0.1:PORT`, the endpoint to give the client.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next requests of `kind` get `faults`, one each, in order (after any still queued).
    pub fn fail_next(&self, kind: Kind, faults: &[Fault]) {
        self.state
            .faults
            .lock()
            .unwrap()
            .entry(kind)
            .or_default()
            .extend(faults);
    }

    /// Faults queued by [`S3FaultProxy::fail_next`] and not given yet.
    pub fn faults_pending(&self) -> usize {
        self.state
            .faults
            .lock()
            .unwrap()
            .values()
            .map(VecDeque::len)
            .sum()
    }

    /// Faults given so far (denials included).
    pub fn faults_given(&self) -> u64 {
        self.state.faulted.load(Ordering::SeqCst)
    }

    /// Answers every request with 403 `AccessDenied` while on.
    pub fn set_denied(&self, denied: bool) {
        self.state.denied.store(denied, Ordering::SeqCst);
    }

    /// Holds every answer `delay` after the server gave it.
    pub fn set_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.state.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Holds requests of `kinds` before forwarding them until [`S3FaultProxy::release`].
    pub fn stall(&self, kinds: &[Kind]) {
        self.state
            .stalled
            .send_modify(|stalled| stalled.extend(kinds.iter().copied()));
    }

    /// Forwards the held requests and stops holding any.
    pub fn release(&self) {
        self.state.stalled.send_modify(BTreeSet::clear);
    }

    /// Requests being held by a stall right now.
    pub fn held(&self) -> u64 {
        self.state.held.load(Ordering::SeqCst)
    }

    /// Requests of `kind` received so far.
    pub fn count(&self, kind: Kind) -> u64 {
        count_of(&self.state.received, kind)
    }

    /// Requests of `kind` the server answered with a success.
    pub fn stored(&self, kind: Kind) -> u64 {
        count_of(&self.state.stored, kind)
    }
}

fn count_of(counts: &Mutex<BTreeMap<Kind, u64>>, kind: Kind) -> u64 {
    counts.lock().unwrap().get(&kind).copied().unwrap_or(0)
}

fn bump(counts: &Mutex<BTreeMap<Kind, u64>>, kind: Kind) {
    *counts.lock().unwrap().entry(kind).or_default() += 1;
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, stop: CancellationToken) {
    loop {
        let stream = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        tokio::spawn(serve_connection(stream, state.clone(), stop.clone()));
    }
}

/// Serves one connection until it ends, the proxy stops or a request asks for a reset: then
/// the socket is closed with a zero linger, which sends RST instead of FIN.
async fn serve_connection(stream: TcpStream, state: Arc<State>, stop: CancellationToken) {
    let Ok(socket) = stream.into_std() else {
        return;
    };
    let Ok(handle) = socket.try_clone() else {
        return;
    };
    let Ok(stream) = TcpStream::from_std(socket) else {
        return;
    };
    let reset = CancellationToken::new();
    let service = service_fn({
        let reset = reset.clone();
        move |request| handle_request(state.clone(), reset.clone(), request)
    });
    let connection =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = connection => {}
        () = stop.cancelled() => {}
        () = reset.cancelled() => {
            let _ = socket2::SockRef::from(&handle).set_linger(Some(Duration::ZERO));
        }
    }
}

/// An S3 error document.
fn error_document(code: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
         <Message>injected by the test proxy</Message><RequestId>fault-proxy</RequestId></Error>"
    )
}

fn s3_error(status: u16, code: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(error_document(code))));
    *response.status_mut() = StatusCode::from_u16(status).expect("status");
    response
        .headers_mut()
        .insert("content-type", "application/xml".parse().expect("header"));
    response
}

/// Headers that belong to one connection, not to the request or answer.
fn hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "content-length"
    )
}

async fn handle_request(
    state: Arc<State>,
    reset: CancellationToken,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let kind = Kind::of(
        request.method(),
        request.uri().path(),
        request.uri().query().unwrap_or(""),
    );
    bump(&state.received, kind);
    if state.denied.load(Ordering::SeqCst) {
        state.faulted.fetch_add(1, Ordering::SeqCst);
        return Ok(s3_error(403, "AccessDenied"));
    }
    let fault = state
        .faults
        .lock()
        .unwrap()
        .get_mut(&kind)
        .and_then(VecDeque::pop_front);
    if let Some(fault) = fault {
        state.faulted.fetch_add(1, Ordering::SeqCst);
        return Ok(match fault {
            Fault::Status(status, code) => s3_error(status, code),
            Fault::OkWithError(code) => s3_error(200, code),
            Fault::Reset => {
                let mut body = request.into_body();
                let _ = body.frame().await;
                reset.cancel();
                std::future::pending().await
            }
        });
    }
    let mut stalled = state.stalled.subscribe();
    if stalled.borrow().contains(&kind) {
        let _held = Held::count(&state.held);
        let _ = stalled.wait_for(|stalled| !stalled.contains(&kind)).await;
    }
    let response = match forward(&state, request).await {
        Ok(response) => response,
        Err(_) => s3_error(502, "ProxyUpstreamFailed"),
    };
    if response.status().is_success() {
        bump(&state.stored, kind);
    }
    let delay = state.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    Ok(response)
}

/// A request counted as held by a stall until dropped (released, or given up by the client).
struct Held<'a>(&'a AtomicU64);

impl<'a> Held<'a> {
    fn count(held: &'a AtomicU64) -> Self {
        held.fetch_add(1, Ordering::SeqCst);
        Self(held)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Sends `request` to the upstream server as it came, and returns its answer.
async fn forward(
    state: &State,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, reqwest::Error> {
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |path| path.as_str())
        .to_owned();
    let body = body
        .collect()
        .await
        .map(|body| body.to_bytes())
        .unwrap_or_default();
    let mut upstream = state
        .client
        .request(parts.method, format!("{}{path}", state.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        if !hop_by_hop(name.as_str()) {
            upstream = upstream.header(name, value);
        }
    }
    let answer = upstream.send().await?;
    let status = answer.status();
    let headers = answer.headers().clone();
    let body = answer.bytes().await?;
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if !hop_by_hop(name.as_str()) {
            response.headers_mut().append(name, value.clone());
        }
    }
    Ok(response)
}

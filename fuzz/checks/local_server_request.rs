//! The embedded server's request handling, over a real HTTP/1.1 connection: the server runs
//! on a current-thread runtime in a thread of its own, and each input becomes one request.
//!
//! Input: one flags byte, then the request as text: `METHOD TARGET`, header lines
//! `name: value`, an empty line and the body. Unusable parts are repaired rather than
//! rejected (a bad method becomes `GET`, bytes a request target cannot carry are
//! percent-encoded, invalid header lines are dropped) and the check sets the framing headers
//! itself. Flags: bit 0 signs the request with the server's AccessKey (so the handlers behind
//! the signature check are reached), bit 1 adds the body's `Content-MD5`, bit 2 addresses
//! the server by IP (no project in `Host`) when the input sets no `Host`.
//!
//! Properties: every request gets an HTTP answer on its connection, and no answer reports a
//! handler that panicked (on the blocking pool a panic becomes a 500 `InternalServerError`
//! naming the panic; elsewhere the fuzzer aborts on it and the replay loses the answer). A
//! 500 for a storage failure is allowed: the data directory's disk may be full.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::Method;
use siem_forwarder::common::Secret;
use siem_forwarder::local_server::{
    decode_query, LocalServer, LocalServerConfig, LogstoreSpec, DEFAULT_REGION,
};
use siem_forwarder::source::auth::{self, SignedRequest};

use super::input::Input;

const ACCESS_KEY_ID: &str = "fuzz-key-id";
const ACCESS_KEY_SECRET: &str = "fuzz-key-secret";
/// The project the server holds; requests name it in `Host` as `fuzz.HOST`.
const PROJECT: &str = "fuzz";
/// Larger bodies are refused with 413 before they are read.
const MAX_BODY_BYTES: usize = 256 << 10;
/// A request that takes longer than this counts as a hang.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Headers the check sets itself, because they frame the request on the connection.
const FRAMING_HEADERS: [&str; 8] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "expect",
    "upgrade",
    "te",
    "trailer",
];

/// A local server on `127.0.0.1` and one keep-alive connection to it.
pub struct Server {
    address: SocketAddr,
    connection: Mutex<Option<Connection>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Server {
    /// Starts a server that stores its data in `data_dir`.
    pub fn start(data_dir: &Path) -> Self {
        let config = LocalServerConfig {
            data_dir: data_dir.to_owned(),
            access_key_id: ACCESS_KEY_ID.into(),
            access_key_secret: Secret::new(ACCESS_KEY_SECRET),
            max_body_bytes: MAX_BODY_BYTES,
            region: DEFAULT_REGION.into(),
            logstores: [("ls", 2), ("other", 1)]
                .into_iter()
                .map(|(logstore, shards)| LogstoreSpec {
                    project: PROJECT.into(),
                    logstore: logstore.into(),
                    shards,
                })
                .collect(),
        };
        let server = LocalServer::open(config).expect("open the local server");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let address = listener.local_addr().expect("local address");
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let stopped = async {
                    let _ = stop.await;
                };
                server.run(listener, stopped).await.expect("serve");
            });
        });
        Self {
            address,
            connection: Mutex::new(None),
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// Runs one input; panics when a property fails.
    pub fn check(&self, data: &[u8]) {
        let request = build_request(data);
        let mut connection = self
            .connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // A kept-alive connection may have been closed by the server since the last answer:
        // then the request is sent once more on a new connection.
        let answer = match connection.take() {
            Some(open) => match exchange(open, &request) {
                Ok(answer) => answer,
                Err(_) => self.exchange_on_new_connection(&request),
            },
            None => self.exchange_on_new_connection(&request),
        };
        let (status, body, reusable) = answer;
        assert!(
            status != 500 || !body.contains("panicked"),
            "a handler panicked on request {:?}: {body}",
            String::from_utf8_lossy(&request.bytes)
        );
        *connection = reusable;
    }

    fn exchange_on_new_connection(&self, request: &Request) -> Answer {
        let writer = TcpStream::connect(self.address).expect("connect to the local server");
        writer.set_nodelay(true).expect("nodelay");
        writer
            .set_read_timeout(Some(ANSWER_TIMEOUT))
            .expect("read timeout");
        let reader = BufReader::new(writer.try_clone().expect("clone the stream"));
        exchange(Connection { reader, writer }, request).unwrap_or_else(|error| {
            panic!(
                "no answer to request {:?}: {error}",
                String::from_utf8_lossy(&request.bytes)
            )
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Close the client side first: the server waits for open connections when stopping.
        drop(
            self.connection
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take(),
        );
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A request as written on the connection.
struct Request {
    bytes: Vec<u8>,
    /// HEAD answers carry a `Content-Length` but no body.
    head: bool,
}

fn build_request(data: &[u8]) -> Request {
    let mut input = Input::new(data);
    let flags = input.byte();
    let text = input.rest();
    let (head, body) = match text.windows(2).position(|pair| pair == b"\n\n") {
        Some(at) => (&text[..at], &text[at + 2..]),
        None => (text, &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    let mut lines = head.lines();
    let first = lines.next().unwrap_or("");
    let (method, target) = first.trim().split_once(' ').unwrap_or((first, "/"));
    let method = Method::from_bytes(method.trim().as_bytes()).unwrap_or(Method::GET);
    let target = request_target(target.trim());
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));

    let mut headers = HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value.trim()),
        ) else {
            continue;
        };
        if !FRAMING_HEADERS.contains(&name.as_str()) {
            headers.append(name, value);
        }
    }
    if !headers.contains_key(http::header::HOST) {
        let host = if flags & 4 != 0 {
            "127.0.0.1".to_owned()
        } else {
            format!("{PROJECT}.127.0.0.1")
        };
        headers.insert(http::header::HOST, header_value(&host));
    }
    if flags & 2 != 0 && !body.is_empty() {
        headers.insert("content-md5", header_value(&auth::content_md5(body)));
    }
    if flags & 1 != 0 {
        headers.insert(
            http::header::DATE,
            header_value(&httpdate::fmt_http_date(SystemTime::now())),
        );
        let query = decode_query(Some(query));
        let signed = SignedRequest {
            method: method.as_str(),
            path,
            query: &query,
            headers: &headers,
        };
        let authorization = auth::authorization(ACCESS_KEY_ID, ACCESS_KEY_SECRET, &signed);
        headers.insert(http::header::AUTHORIZATION, header_value(&authorization));
    }

    let mut bytes = format!("{method} {target} HTTP/1.1\r\n").into_bytes();
    for (name, value) in &headers {
        bytes.extend_from_slice(name.as_str().as_bytes());
        bytes.extend_from_slice(b": ");
        bytes.extend_from_slice(value.as_bytes());
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    bytes.extend_from_slice(body);
    Request {
        bytes,
        head: method == Method::HEAD,
    }
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).expect("a visible ASCII header value")
}

/// `target` as an origin-form request target: starting with `/`, every byte outside the
/// unreserved, sub-delimiter and `:@/?%` characters percent-encoded.
fn request_target(target: &str) -> String {
    let mut out = String::with_capacity(target.len() + 1);
    if !target.starts_with('/') {
        out.push('/');
    }
    for byte in target.bytes() {
        let keep = byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&byte);
        if keep {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// An answer's status and body, and the connection when it stays open.
type Answer = (u16, String, Option<Connection>);

/// Writes `request` and reads the answer.
fn exchange(mut connection: Connection, request: &Request) -> std::io::Result<Answer> {
    connection.writer.write_all(&request.bytes)?;
    let mut status_line = String::new();
    if connection.reader.read_line(&mut status_line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("malformed status line {status_line:?}"));
    let (mut length, mut close) = (None, false);
    loop {
        let mut line = String::new();
        if connection.reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            panic!("malformed header line {line:?}");
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<u64>().expect("numeric content-length"));
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            panic!("unexpected transfer-encoding {value:?}");
        }
    }
    let mut body = Vec::new();
    match (request.head, length) {
        (true, _) | (false, Some(0)) => {}
        (false, Some(length)) => {
            (&mut connection.reader)
                .take(length)
                .read_to_end(&mut body)?;
            if body.len() as u64 != length {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        (false, None) => {
            // Without a length the body runs to the end of the connection.
            connection.reader.read_to_end(&mut body)?;
            close = true;
        }
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    Ok((status, body, (!close).then_some(connection)))
}

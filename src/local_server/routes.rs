//! HTTP routing of the local server: request parsing, signature verification, and one
//! handler per SLS API. Handlers answer with the SLS JSON bodies and headers the official
//! SDKs read (lowercase header names, `x-log-requestid` on every response).
//!
//! A request is authenticated from its headers (v1 signature and `Date`, or v4 signature and
//! `x-log-date`) before its body is read; the body must then match the digest the signature
//! covers: `Content-MD5` for v1, `x-log-content-sha256` for v4.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use serde::Deserialize;
use serde_json::json;

use super::state::{blocking, Failure, Logstore, Project};
use super::{DeniedAction, LocalServer};
use crate::source::auth::{self, SignatureVersion, SignedRequest, VerifyError};
use crate::source::compression::Compression;
use crate::source::{cursor, protobuf, ApiErrorCode};

/// Upper bound of one PullLogs response's raw size; the server returns fewer groups than
/// asked rather than more bytes (clients handle short batches).
const MAX_PULL_BYTES: usize = 8 << 20;

/// A compressed PutLogs body may declare an uncompressed size of up to this many times the
/// body limit.
const RAW_SIZE_LIMIT_FACTOR: usize = 4;

type Reply = Response<Full<Bytes>>;
type Outcome = Result<Reply, Failure>;

/// A parsed request, after the body was read and the signature checked.
struct Call {
    method: Method,
    segments: Vec<String>,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
    project: Option<String>,
}

impl Call {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn required(&self, name: &str) -> Result<&str, Failure> {
        self.param(name)
            .ok_or_else(|| invalid(format!("missing query parameter `{name}`")))
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
    }

    fn json<T: for<'de> Deserialize<'de>>(&self) -> Result<T, Failure> {
        serde_json::from_slice(&self.body).map_err(|error| {
            Failure::new(
                ApiErrorCode::PostBodyInvalid,
                format!("invalid json body: {error}"),
            )
        })
    }

    fn project(&self, server: &LocalServer) -> Result<Arc<Project>, Failure> {
        let name = self.project.as_deref().ok_or_else(|| {
            Failure::new(
                ApiErrorCode::ProjectNotExist,
                "no project in the Host header (expected PROJECT.HOST)",
            )
        })?;
        server.projects.project(name)
    }
}

fn invalid(message: impl Into<String>) -> Failure {
    Failure::new(ApiErrorCode::ParameterInvalid, message)
}

/// The query pairs of a request target as the server reads them (and signs them): split on
/// `&` and the first `=`, each side percent-decoded, invalid UTF-8 replaced.
pub fn decode_query(query: Option<&str>) -> Vec<(String, String)> {
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(text)
            .decode_utf8_lossy()
            .into_owned()
    };
    query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) => (decode(key), decode(value)),
            None => (decode(pair), String::new()),
        })
        .collect()
}

/// The project named by the Host header (or the authority of an absolute-form target):
/// the text before the first dot, unless the host is a bare IP address or `localhost`.
fn project_from_host(request: &Request<hyper::body::Incoming>) -> Option<String> {
    let authority = request
        .uri()
        .authority()
        .map(|authority| authority.host().to_owned())
        .or_else(|| {
            let host = request.headers().get(http::header::HOST)?.to_str().ok()?;
            Some(strip_port(host).to_owned())
        })?;
    let host = authority.trim_start_matches('[').trim_end_matches(']');
    if host.parse::<std::net::IpAddr>().is_ok() || host == "localhost" {
        return None;
    }
    host.split_once('.').map(|(project, _)| project.to_owned())
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(inside, _)| inside)
            .trim_start_matches('[');
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

impl LocalServer {
    /// Answers one HTTP request.
    pub(super) async fn handle(self: Arc<Self>, request: Request<hyper::body::Incoming>) -> Reply {
        let request_id = self.next_request_id();
        if let Some(sts) = self.sts().filter(|_| super::sts::Issuer::serves(&request)) {
            return sts.answer(request, &request_id).await;
        }
        let outcome = match self.read_call(request).await {
            Ok(call) => self.clone().dispatch(call).await,
            Err(failure) => Err(failure),
        };
        let mut reply = outcome.unwrap_or_else(|failure| error_reply(&failure));
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            reply.headers_mut().insert("x-log-requestid", value);
        }
        reply
    }

    async fn read_call(&self, request: Request<hyper::body::Incoming>) -> Result<Call, Failure> {
        let too_large = || {
            Failure::new(
                ApiErrorCode::PostBodyTooLarge,
                format!("body exceeds {} bytes", self.config.max_body_bytes),
            )
        };
        let declared_length = request
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.parse::<usize>().ok());
        if declared_length.is_some_and(|length| length > self.config.max_body_bytes) {
            return Err(too_large());
        }
        let project = project_from_host(&request);
        let (parts, body) = request.into_parts();
        let path = parts.uri.path().to_owned();
        let query = decode_query(parts.uri.query());
        // The signature covers the headers (`Content-MD5` included), so it is checked before
        // anything of an unauthenticated body is buffered.
        let version = self.authenticate(&SignedRequest {
            method: parts.method.as_str(),
            path: &path,
            query: &query,
            headers: &parts.headers,
        })?;
        let body = Limited::new(body, self.config.max_body_bytes)
            .collect()
            .await
            .map_err(|error| {
                if error.is::<http_body_util::LengthLimitError>() {
                    too_large()
                } else {
                    Failure::new(
                        ApiErrorCode::PostBodyInvalid,
                        format!("cannot read body: {error}"),
                    )
                }
            })?
            .to_bytes();
        match version {
            SignatureVersion::V1 => check_content_md5(&parts.headers, &body)?,
            SignatureVersion::V4 => check_content_sha256(&parts.headers, &body)?,
        }
        Ok(Call {
            method: parts.method,
            segments: path
                .split('/')
                .filter(|segment| !segment.is_empty())
                .map(str::to_owned)
                .collect(),
            query,
            headers: parts.headers,
            body,
            project,
        })
    }

    /// Verifies the v1 or v4 signature (v4 scoped to this server's region) and the request's
    /// date against the server clock, with the long-term AccessKey or temporary credentials
    /// this server issued; returns the version verified.
    fn authenticate(&self, request: &SignedRequest<'_>) -> Result<SignatureVersion, Failure> {
        let now = std::time::SystemTime::now();
        let region = &self.config.region;
        match auth::verify(
            &self.config.access_key_id,
            self.config.access_key_secret.expose(),
            region,
            request,
            now,
        ) {
            Err(VerifyError::UnknownAccessKeyId(id)) => self
                .sts()
                .and_then(|sts| sts.authenticate(&id, region, request, now))
                .unwrap_or_else(|| Err(verify_failure(VerifyError::UnknownAccessKeyId(id)))),
            verified => verified.map_err(verify_failure),
        }
    }

    async fn dispatch(self: Arc<Self>, call: Call) -> Outcome {
        let segments: Vec<&str> = call.segments.iter().map(String::as_str).collect();
        match (&call.method, segments.as_slice()) {
            (&Method::POST, []) => self.create_project(&call),
            (&Method::GET, ["logstores"]) => self.list_logstores(&call),
            (&Method::POST, ["logstores"]) => self.create_logstore(&call).await,
            (&Method::POST, ["logstores", logstore]) => {
                self.put_logs(&call, logstore, ShardChoice::Balanced).await
            }
            (&Method::GET, ["logstores", logstore, "shards"]) => json_reply(
                &serde_json::to_value(self.logstore(&call, logstore)?.shard_infos())
                    .expect("shards serialize"),
            ),
            (&Method::POST, ["logstores", logstore, "shards", "lb"]) => {
                self.put_logs(&call, logstore, ShardChoice::Balanced).await
            }
            (&Method::POST, ["logstores", logstore, "shards", "route"]) => {
                let key = call.required("key")?.to_owned();
                self.put_logs(&call, logstore, ShardChoice::HashKey(key))
                    .await
            }
            (&Method::POST, ["logstores", logstore, "shards", shard]) => {
                let shard = parse_shard(shard)?;
                // A reshape writes and fsyncs the logstore's metadata.
                let reshaped = match call.param("action") {
                    Some("split") => {
                        let logstore = self.logstore(&call, logstore)?;
                        let key = call.required("key")?.to_owned();
                        Some(blocking(move || logstore.split(shard, &key)).await?)
                    }
                    Some("merge") => {
                        let logstore = self.logstore(&call, logstore)?;
                        Some(blocking(move || logstore.merge(shard)).await?)
                    }
                    Some(other) => return Err(invalid(format!("unknown action `{other}`"))),
                    None => None,
                };
                if let Some(shards) = reshaped {
                    return json_reply(&serde_json::to_value(shards).expect("shards serialize"));
                }
                self.put_logs(&call, logstore, ShardChoice::Shard(shard))
                    .await
            }
            (&Method::GET, ["logstores", name, "shards", shard]) => {
                let logstore = self.logstore(&call, name)?;
                let shard = parse_shard(shard)?;
                match call.required("type")? {
                    "cursor" => get_cursor(&call, &logstore, shard),
                    "cursor_time" => get_cursor_time(&call, &logstore, shard),
                    "log" | "logs" => {
                        self.admit_pull(&call, name, shard)?;
                        pull_logs(call, logstore, shard).await
                    }
                    other => Err(invalid(format!("unknown type `{other}`"))),
                }
            }
            (&Method::GET, ["logstores", logstore, "consumergroups"]) => {
                self.permit(&call, DeniedAction::ListConsumerGroup, logstore, "*")?;
                let groups: Vec<_> = self
                    .logstore(&call, logstore)?
                    .list_groups()
                    .into_iter()
                    .map(|(name, timeout, order)| json!({"name": name, "timeout": timeout, "order": order}))
                    .collect();
                json_reply(&json!(groups))
            }
            (&Method::POST, ["logstores", logstore, "consumergroups"]) => {
                #[derive(Deserialize)]
                struct Create {
                    #[serde(rename = "consumerGroup")]
                    consumer_group: String,
                    timeout: u32,
                    #[serde(default)]
                    order: bool,
                }
                let body: Create = call.json()?;
                let group = &body.consumer_group;
                self.permit(&call, DeniedAction::CreateConsumerGroup, logstore, group)?;
                if body.timeout == 0 {
                    return Err(invalid("timeout must be positive"));
                }
                self.logstore(&call, logstore)?
                    .create_group(&body.consumer_group, body.timeout, body.order)
                    .await?;
                Ok(empty_reply())
            }
            (&Method::PUT, ["logstores", logstore, "consumergroups", group]) => {
                #[derive(Deserialize)]
                struct Update {
                    timeout: Option<u32>,
                    order: Option<bool>,
                }
                let body: Update = call.json()?;
                self.permit(&call, DeniedAction::UpdateConsumerGroup, logstore, group)?;
                self.logstore(&call, logstore)?
                    .update_group(group, body.timeout, body.order)
                    .await?;
                Ok(empty_reply())
            }
            (&Method::DELETE, ["logstores", logstore, "consumergroups", group]) => {
                self.logstore(&call, logstore)?.delete_group(group).await?;
                Ok(empty_reply())
            }
            (&Method::POST, ["logstores", logstore, "consumergroups", group]) => {
                let logstore = self.logstore(&call, logstore)?;
                let consumer = call.required("consumer")?;
                match call.required("type")? {
                    "heartbeat" => {
                        let reported: Vec<u32> = if call.body.is_empty() {
                            Vec::new()
                        } else {
                            call.json()?
                        };
                        json_reply(&json!(logstore.heartbeat(group, consumer, &reported)?))
                    }
                    "checkpoint" => {
                        #[derive(Deserialize)]
                        struct Update {
                            shard: u32,
                            checkpoint: String,
                        }
                        let body: Update = call.json()?;
                        if cursor::decode(&body.checkpoint).is_err() {
                            return Err(Failure::new(
                                ApiErrorCode::InvalidShardCheckPoint,
                                format!("checkpoint `{}` is not a cursor", body.checkpoint),
                            ));
                        }
                        let force = call
                            .param("forceSuccess")
                            .is_none_or(|v| v.eq_ignore_ascii_case("true"));
                        logstore
                            .update_checkpoint(group, consumer, body.shard, body.checkpoint, force)
                            .await?;
                        Ok(empty_reply())
                    }
                    other => Err(invalid(format!("unknown type `{other}`"))),
                }
            }
            (&Method::GET, ["logstores", logstore, "consumergroups", group]) => {
                let shard = call.param("shard").map(parse_shard).transpose()?;
                let checkpoints: Vec<_> = self
                    .logstore(&call, logstore)?
                    .checkpoints(group, shard)?
                    .into_iter()
                    .map(|(shard, checkpoint)| {
                        json!({
                            "shard": shard,
                            "checkpoint": checkpoint.checkpoint,
                            "updateTime": checkpoint.update_time,
                            "consumer": checkpoint.consumer,
                        })
                    })
                    .collect();
                json_reply(&json!(checkpoints))
            }
            _ => Err(invalid(format!(
                "no api for {} {}",
                call.method,
                call.segments.join("/")
            ))),
        }
    }

    /// Refuses a pull over the shard's read quota, when one is set.
    fn admit_pull(&self, call: &Call, logstore: &str, shard: u32) -> Result<(), Failure> {
        let project = call.project.as_deref().unwrap_or_default();
        if self.read_quota.admit(project, logstore, shard) {
            return Ok(());
        }
        let limit = self.read_quota.limit().map_or(0, |limit| limit.get());
        Err(Failure::new(
            ApiErrorCode::ShardReadQuotaExceed,
            format!("shard {shard} read quota exceeded: more than {limit} pulls a second"),
        ))
    }

    fn permit(
        &self,
        call: &Call,
        action: DeniedAction,
        logstore: &str,
        group: &str,
    ) -> Result<(), Failure> {
        let project = call.project.as_deref().unwrap_or_default();
        let region = &self.config.region;
        self.denials.check(action, region, project, logstore, group)
    }

    fn logstore(&self, call: &Call, name: &str) -> Result<Arc<Logstore>, Failure> {
        call.project(self)?.logstore(name)
    }

    fn create_project(&self, call: &Call) -> Outcome {
        #[derive(Deserialize)]
        struct Create {
            #[serde(rename = "projectName")]
            project_name: String,
        }
        let body: Create = call.json()?;
        self.projects.ensure_project(&body.project_name)?;
        Ok(empty_reply())
    }

    fn list_logstores(&self, call: &Call) -> Outcome {
        let names = call.project(self)?.logstore_names();
        json_reply(&json!({"count": names.len(), "total": names.len(), "logstores": names}))
    }

    async fn create_logstore(&self, call: &Call) -> Outcome {
        #[derive(Deserialize)]
        struct Create {
            #[serde(rename = "logstoreName")]
            logstore_name: String,
            #[serde(rename = "shardCount", default = "default_shards")]
            shard_count: u32,
        }
        fn default_shards() -> u32 {
            2
        }
        let body: Create = call.json()?;
        if !(1..=256).contains(&body.shard_count) {
            return Err(invalid("shard count must be between 1 and 256"));
        }
        let project = call.project(self)?;
        // Creating the shard files and metadata fsyncs: keep it off the runtime threads.
        blocking(move || Ok(project.ensure_logstore(&body.logstore_name, body.shard_count)?))
            .await?;
        Ok(empty_reply())
    }

    async fn put_logs(&self, call: &Call, logstore: &str, choice: ShardChoice) -> Outcome {
        let logstore = self.logstore(call, logstore)?;
        let shard = match choice {
            ShardChoice::Balanced => logstore.shard_for_write(None)?,
            ShardChoice::HashKey(key) => logstore.shard_for_write(Some(&key))?,
            ShardChoice::Shard(id) => logstore.writable_shard(id)?,
        };
        let compression = Compression::from_header(call.header("x-log-compresstype"))
            .map_err(|error| Failure::new(ApiErrorCode::InvalidCompressType, error.to_string()))?;
        let raw_size = match compression {
            Compression::None => call.body.len(),
            _ => declared_raw_size(
                call.header("x-log-bodyrawsize"),
                compression,
                call.body.len(),
                self.config
                    .max_body_bytes
                    .saturating_mul(RAW_SIZE_LIMIT_FACTOR),
            )?,
        };
        let body = call.body.clone();
        blocking(move || {
            let raw = compression
                .decompress(&body, raw_size)
                .map_err(|error| Failure::new(ApiErrorCode::PostBodyInvalid, error.to_string()))?;
            let logs = protobuf::count_logs_in_group(&raw)
                .map_err(|error| Failure::new(ApiErrorCode::PostBodyInvalid, error.to_string()))?;
            if logs == 0 {
                return Err(Failure::new(
                    ApiErrorCode::PostBodyInvalid,
                    "log group holds no log",
                ));
            }
            shard.append(&raw)?;
            Ok(empty_reply())
        })
        .await
    }
}

/// The answer to a request that failed signature verification.
pub(super) fn verify_failure(error: VerifyError) -> Failure {
    let code = match error {
        VerifyError::Unsigned
        | VerifyError::Malformed
        | VerifyError::UnsupportedScheme(_)
        | VerifyError::WrongRegion { .. }
        | VerifyError::MissingContentSha256 => ApiErrorCode::Unauthorized,
        VerifyError::UnknownAccessKeyId(_) => ApiErrorCode::InvalidAccessKeyId,
        VerifyError::Mismatch => ApiErrorCode::SignatureNotMatch,
        VerifyError::InvalidDate(_) => ApiErrorCode::Other("InvalidRequestTime".into()),
        VerifyError::Expired { .. } => ApiErrorCode::RequestTimeExpired,
    };
    Failure::new(code, error.to_string())
}

/// Requires a `Content-MD5` on every request with a body, matching it: the v1 signature
/// covers the header, so this makes it cover the body too. The official SDKs always send
/// one with a body (uppercase hex); a body-less request may omit it.
fn check_content_md5(headers: &HeaderMap, body: &[u8]) -> Result<(), Failure> {
    let declared = headers
        .get("content-md5")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    if declared.is_empty() {
        if body.is_empty() {
            return Ok(());
        }
        return Err(Failure::new(
            ApiErrorCode::Other("MissingContentMD5".into()),
            "a request with a body must carry its content-md5",
        ));
    }
    if !declared.eq_ignore_ascii_case(&auth::content_md5(body)) {
        return Err(Failure::new(
            ApiErrorCode::Other("InvalidContentMD5".into()),
            "content-md5 does not match the body",
        ));
    }
    Ok(())
}

/// Requires a v4 request's body to match its `x-log-content-sha256`, which the signature
/// covers (present on every v4 request; the digest of an empty body when there is none).
fn check_content_sha256(headers: &HeaderMap, body: &[u8]) -> Result<(), Failure> {
    let declared = headers
        .get(auth::v4::CONTENT_SHA256_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    if declared.eq_ignore_ascii_case(&auth::v4::content_sha256(body)) {
        Ok(())
    } else {
        Err(Failure::new(
            ApiErrorCode::SignatureNotMatch,
            "x-log-content-sha256 does not match the body",
        ))
    }
}

/// The uncompressed size a compressed body declares in `x-log-bodyrawsize`, refused when
/// above `limit` or above what `body_len` bytes can expand to, because the decompressor
/// allocates the declared size up front.
fn declared_raw_size(
    header: &str,
    compression: Compression,
    body_len: usize,
    limit: usize,
) -> Result<usize, Failure> {
    let size: usize = header
        .trim()
        .parse()
        .map_err(|_| invalid("x-log-bodyrawsize is required with x-log-compresstype"))?;
    if size > limit {
        return Err(invalid(format!(
            "x-log-bodyrawsize {size} exceeds the limit of {limit} bytes"
        )));
    }
    compression
        .check_raw_size(size, body_len)
        .map_err(|error| invalid(format!("x-log-bodyrawsize: {error}")))?;
    Ok(size)
}

enum ShardChoice {
    Balanced,
    HashKey(String),
    Shard(u32),
}

fn parse_shard(text: &str) -> Result<u32, Failure> {
    text.parse().map_err(|_| {
        Failure::new(
            ApiErrorCode::ShardNotExist,
            format!("shard `{text}` does not exist"),
        )
    })
}

fn parse_position(text: &str, end: u64) -> Result<u64, Failure> {
    let position = cursor::decode(text).map_err(|_| {
        Failure::new(
            ApiErrorCode::InvalidCursor,
            format!("cursor `{text}` is malformed"),
        )
    })?;
    u64::try_from(position)
        .ok()
        .filter(|position| *position <= end)
        .ok_or_else(|| {
            Failure::new(
                ApiErrorCode::InvalidCursor,
                format!("cursor `{text}` is out of range"),
            )
        })
}

fn get_cursor(call: &Call, logstore: &Logstore, shard: u32) -> Outcome {
    let shard = logstore.shard(shard)?;
    let position = match call.required("from")? {
        "begin" => 0,
        "end" => shard.end(),
        time => shard.position_at(
            time.parse::<i64>()
                .map_err(|_| {
                    invalid(format!(
                        "`from` must be begin, end or unix seconds, not `{time}`"
                    ))
                })?
                .clamp(0, i64::from(u32::MAX)) as u32,
        ),
    };
    json_reply(&json!({"cursor": cursor::encode(position as i64)}))
}

fn get_cursor_time(call: &Call, logstore: &Logstore, shard: u32) -> Outcome {
    let shard = logstore.shard(shard)?;
    let position = parse_position(call.required("cursor")?, shard.end())?;
    json_reply(&json!({"cursor_time": shard.time_before(position + 1)}))
}

/// The compression for a pull response from the client's `Accept-Encoding` (lz4 when absent).
fn pull_compression(accept: Option<&str>) -> Compression {
    let Some(accept) = accept else {
        return Compression::Lz4;
    };
    let offered: Vec<&str> = accept
        .split(',')
        .map(|item| item.split(';').next().unwrap_or("").trim())
        .collect();
    [Compression::Lz4, Compression::Zstd, Compression::Deflate]
        .into_iter()
        .find(|kind| offered.contains(&kind.header_value().unwrap_or("")))
        .unwrap_or(Compression::None)
}

async fn pull_logs(call: Call, logstore: Arc<Logstore>, shard_id: u32) -> Outcome {
    let shard = logstore.shard(shard_id)?;
    let end = shard.end();
    let position = parse_position(call.required("cursor")?, end)?;
    let count: usize = match call.param("count") {
        None => 1000,
        Some(text) => text
            .parse()
            .ok()
            .filter(|count| (1..=1000).contains(count))
            .ok_or_else(|| invalid("count must be between 1 and 1000"))?,
    };
    let until = match call.param("end_cursor").or_else(|| call.param("endCursor")) {
        Some(text) if !text.is_empty() => Some(parse_position(text, end)?),
        _ => None,
    };
    let compression = pull_compression(
        call.headers
            .get("accept-encoding")
            .and_then(|v| v.to_str().ok()),
    );
    let pulled = blocking(move || {
        Ok(shard.read(position, count, MAX_PULL_BYTES, until, |raw| {
            let body = if raw.is_empty() {
                Vec::new()
            } else {
                compression.compress(raw)
            };
            (raw.len(), body)
        }))
    })
    .await?;
    let (raw_size, body) = pulled.payload;
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    let headers = reply.headers_mut();
    let mut set = |name: &'static str, value: String| {
        headers.insert(
            name,
            HeaderValue::from_str(&value).expect("header values are ascii"),
        );
    };
    set("content-type", "application/x-protobuf".into());
    set("x-log-cursor", cursor::encode(pulled.next as i64));
    set("x-log-count", pulled.count.to_string());
    set("x-log-bodyrawsize", raw_size.to_string());
    set(
        "x-log-end-of-cursor",
        u8::from(pulled.next == pulled.end).to_string(),
    );
    set(
        "x-log-read-last-cursor",
        (pulled.next as i64 - 1).to_string(),
    );
    set("x-log-cursor-time", pulled.cursor_time.to_string());
    if raw_size > 0 {
        if let Some(kind) = compression.header_value() {
            set("x-log-compresstype", kind.into());
        }
    }
    Ok(reply)
}

fn json_reply(value: &serde_json::Value) -> Outcome {
    let mut reply = Response::new(Full::new(Bytes::from(value.to_string())));
    reply
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    Ok(reply)
}

fn empty_reply() -> Reply {
    Response::new(Full::new(Bytes::new()))
}

fn error_reply(failure: &Failure) -> Reply {
    let body = json!({"errorCode": failure.code.as_str(), "errorMessage": failure.message});
    let mut reply = Response::new(Full::new(Bytes::from(body.to_string())));
    *reply.status_mut() =
        StatusCode::from_u16(failure.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    reply
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_decoded() {
        let pairs = decode_query(Some("type=log&cursor=MA%3D%3D&count=1000&flag"));
        assert_eq!(pairs[1], ("cursor".to_owned(), "MA==".to_owned()));
        assert_eq!(pairs[3], ("flag".to_owned(), String::new()));
    }

    #[test]
    fn pull_compression_prefers_lz4() {
        assert_eq!(pull_compression(None), Compression::Lz4);
        assert_eq!(pull_compression(Some("lz4")), Compression::Lz4);
        assert_eq!(pull_compression(Some("zstd, deflate")), Compression::Zstd);
        assert_eq!(pull_compression(Some("deflate")), Compression::Deflate);
        assert_eq!(pull_compression(Some("")), Compression::None);
    }

    #[test]
    fn declared_raw_sizes_are_bounded_by_the_limit_and_the_body() {
        let limit = 1 << 20;
        assert_eq!(
            declared_raw_size("1000", Compression::Lz4, 100, limit),
            Ok(1000)
        );
        for (header, body_len) in [
            ("18446744073709551615", 100),
            ("1048577", 1 << 20),
            ("25501", 100),
            ("", 100),
            ("-1", 100),
        ] {
            let failure =
                declared_raw_size(header, Compression::Lz4, body_len, limit).expect_err(header);
            assert_eq!(failure.code, ApiErrorCode::ParameterInvalid, "{header}");
        }
        assert_eq!(
            declared_raw_size("3276800", Compression::Zstd, 100, 4 << 20),
            Ok(3_276_800)
        );
    }

    #[test]
    fn bodies_need_a_matching_content_md5() {
        let mut headers = HeaderMap::new();
        assert_eq!(check_content_md5(&headers, b""), Ok(()));
        let missing = check_content_md5(&headers, b"[0]").unwrap_err();
        assert_eq!(missing.code.as_str(), "MissingContentMD5");
        headers.insert(
            "content-md5",
            HeaderValue::from_str(&auth::content_md5(b"[0]")).unwrap(),
        );
        assert_eq!(check_content_md5(&headers, b"[0]"), Ok(()));
        let altered = check_content_md5(&headers, b"[1]").unwrap_err();
        assert_eq!(altered.code.as_str(), "InvalidContentMD5");
        assert!(check_content_md5(&headers, b"").is_err(), "md5 of no body");
    }

    #[test]
    fn ports_are_stripped_from_hosts() {
        assert_eq!(strip_port("proj.example.com:8080"), "proj.example.com");
        assert_eq!(strip_port("proj.127.0.0.1"), "proj.127.0.0.1");
        assert_eq!(strip_port("[::1]:80"), "::1");
    }
}

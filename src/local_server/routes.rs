//! HTTP routing of the local server: request reading, signature verification, and the table
//! that hands each request to its SLS API handler in [`super::api`]. Handlers answer with the
//! SLS JSON bodies and headers the official SDKs read (lowercase header names,
//! `x-log-requestid` on every response).
//!
//! A request is authenticated from its headers (v1 signature and `Date`, or v4 signature and
//! `x-log-date`) before its body is read; the body must then match the digest the signature
//! covers: `Content-MD5` for v1, `x-log-content-sha256` for v4.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::json;

use super::api::put_logs::ShardChoice;
use super::api::shards::Reshape;
use super::api::{checkpoint, cursor, heartbeat, invalid, parse_shard, pull_logs};
use super::api::{Call, HandlerResult, Reply};
use super::state::Failure;
use super::LocalServer;
use crate::source::auth::{self, SignatureVersion, SignedRequest, VerifyError};
use crate::source::ApiErrorCode;

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

    async fn dispatch(self: Arc<Self>, call: Call) -> HandlerResult {
        let segments: Vec<&str> = call.segments.iter().map(String::as_str).collect();
        match (&call.method, segments.as_slice()) {
            (&Method::POST, []) => self.create_project(&call),
            (&Method::GET, ["logstores"]) => self.list_logstores(&call),
            (&Method::POST, ["logstores"]) => self.create_logstore(&call).await,
            (&Method::POST, ["logstores", logstore]) => {
                self.put_logs(&call, logstore, ShardChoice::Balanced).await
            }
            (&Method::GET, ["logstores", logstore, "shards"]) => self.list_shards(&call, logstore),
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
                match call.param("action") {
                    Some("split") => {
                        self.reshape_shard(&call, logstore, shard, Reshape::Split)
                            .await
                    }
                    Some("merge") => {
                        self.reshape_shard(&call, logstore, shard, Reshape::Merge)
                            .await
                    }
                    Some(other) => Err(invalid(format!("unknown action `{other}`"))),
                    None => {
                        self.put_logs(&call, logstore, ShardChoice::Shard(shard))
                            .await
                    }
                }
            }
            (&Method::GET, ["logstores", name, "shards", shard]) => {
                let logstore = self.logstore(&call, name)?;
                let shard = parse_shard(shard)?;
                match call.required("type")? {
                    "cursor" => cursor::get_cursor(&call, &logstore, shard),
                    "cursor_time" => cursor::get_cursor_time(&call, &logstore, shard),
                    "log" | "logs" => {
                        self.admit_pull(&call, name, shard)?;
                        pull_logs::pull_logs(call, logstore, shard).await
                    }
                    other => Err(invalid(format!("unknown type `{other}`"))),
                }
            }
            (&Method::GET, ["logstores", logstore, "consumergroups"]) => {
                self.list_groups(&call, logstore)
            }
            (&Method::POST, ["logstores", logstore, "consumergroups"]) => {
                self.create_group(&call, logstore).await
            }
            (&Method::PUT, ["logstores", logstore, "consumergroups", group]) => {
                self.update_group(&call, logstore, group).await
            }
            (&Method::DELETE, ["logstores", logstore, "consumergroups", group]) => {
                self.delete_group(&call, logstore, group).await
            }
            (&Method::POST, ["logstores", logstore, "consumergroups", group]) => {
                let logstore = self.logstore(&call, logstore)?;
                let consumer = call.required("consumer")?;
                match call.required("type")? {
                    "heartbeat" => heartbeat::heartbeat(&call, &logstore, group, consumer),
                    "checkpoint" => {
                        checkpoint::update_checkpoint(&call, &logstore, group, consumer).await
                    }
                    other => Err(invalid(format!("unknown type `{other}`"))),
                }
            }
            (&Method::GET, ["logstores", logstore, "consumergroups", group]) => {
                self.get_checkpoints(&call, logstore, group)
            }
            _ => Err(invalid(format!(
                "no api for {} {}",
                call.method,
                call.segments.join("/")
            ))),
        }
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

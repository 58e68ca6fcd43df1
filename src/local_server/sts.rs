//! Temporary credentials as Alibaba Cloud hands them out, served by the embedded log service on
//! its own listen address when it is given a role (`local-server --sts-role NAME`):
//!
//! - the ECS instance metadata service: `PUT /latest/api/token` (IMDSv2 session token,
//!   `X-aliyun-ecs-metadata-token-ttl-seconds` 1 to 21600), `GET
//!   /latest/meta-data/ram/security-credentials/` (the role name) and `GET
//!   /latest/meta-data/ram/security-credentials/ROLE` (fresh credentials on every call). A
//!   request carrying `X-aliyun-ecs-metadata-token` must carry a valid, unexpired one (else
//!   401); one without is served, as the metadata service does in its normal (IMDSv1-compatible)
//!   mode;
//! - STS `AssumeRoleWithOIDC` (RPC style at `/`, parameters in the query string and/or a
//!   form-urlencoded body, unsigned, as the official credential providers call it);
//! - verification of log-service requests signed with an issued AccessKey: the signed
//!   `x-acs-security-token` must be the token issued with that key (else 401 `Unauthorized`),
//!   and after the key's expiry the answer is 401 `SecurityTokenExpired`, the code the official
//!   SDKs treat as "refresh the credentials".
//!
//! Nothing is stored per credential: an AccessKey id carries its expiry, a serial number and a
//! MAC of both; its secret and its security token are MACs of the id under a key drawn at
//! start-up. Memory stays constant however many credentials are issued, and they die with the
//! process (a restarted server refuses them as unknown keys).
//!
//! What is not emulated: the OIDC token is not verified beyond being non-empty (there is no
//! identity provider here), the role ARN's account is not checked, and `Policy` is ignored.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use ring::hmac;
use serde_json::{json, Value};

use super::state::Failure;
use crate::source::auth::{
    self, constant_time_eq, SignatureVersion, SignedRequest, SECURITY_TOKEN_HEADER,
};
use crate::source::ApiErrorCode;

/// The longest lifetime of issued credentials: 12 hours, the longest STS session.
pub const MAX_STS_TTL: Duration = Duration::from_secs(12 * 3600);

/// How the embedded log service issues temporary credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsConfig {
    /// The RAM role name the instance metadata serves, and the role an `AssumeRoleWithOIDC`
    /// `RoleArn` must name (`acs:ram::ACCOUNT:role/NAME`, compared case-insensitively).
    pub role: String,
    /// Lifetime of the credentials issued: metadata credentials live exactly this long;
    /// `AssumeRoleWithOIDC` honours a shorter `DurationSeconds` (as STS does) and is capped at
    /// this, so tests can force short lifetimes. At most [`MAX_STS_TTL`].
    pub ttl: Duration,
}

/// Header of `PUT /latest/api/token` asking for a session token lifetime in seconds.
const METADATA_TOKEN_TTL_HEADER: &str = "x-aliyun-ecs-metadata-token-ttl-seconds";
/// Header carrying a session token on metadata reads.
const METADATA_TOKEN_HEADER: &str = "x-aliyun-ecs-metadata-token";
/// The longest session token the metadata service issues (6 hours).
const MAX_METADATA_TOKEN_TTL: u64 = 21_600;
const METADATA_PREFIX: &str = "/latest/";
const TOKEN_PATH: &str = "/latest/api/token";
const CREDENTIALS_PATH: &str = "/latest/meta-data/ram/security-credentials/";
/// Temporary AccessKey ids start with this, as STS's do.
const ACCESS_KEY_PREFIX: &str = "STS.";
/// Bytes of MAC kept in an AccessKey id.
const ID_TAG_BYTES: usize = 8;
/// Bytes of MAC in an issued secret (30 hex digits, as long as a real AccessKey secret).
const SECRET_BYTES: usize = 15;
/// Bytes of MAC kept in a metadata session token.
const METADATA_TAG_BYTES: usize = 16;
/// Largest accepted `AssumeRoleWithOIDC` form body (an OIDC token is at most 20,000 chars).
const MAX_FORM_BYTES: usize = 64 << 10;
/// `DurationSeconds` when absent, and its range, as STS documents them.
const DEFAULT_DURATION_SECONDS: u64 = 3600;
const DURATION_SECONDS: std::ops::RangeInclusive<u64> = 900..=43_200;
/// `Expiration` and `LastUpdated` format, e.g. `2026-12-02T08:00:00Z`.
const TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%SZ";

type Reply = Response<Full<Bytes>>;

/// Credentials as issued.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Issued {
    access_key_id: String,
    access_key_secret: String,
    security_token: String,
    /// Unix seconds after which they are refused.
    expires: u64,
}

/// Issues and verifies temporary credentials (see the module docs).
#[derive(Debug)]
pub(super) struct Issuer {
    config: StsConfig,
    /// Drawn at start-up; everything issued is a MAC under it.
    key: hmac::Key,
    serial: AtomicU64,
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

fn format_time(unix: u64) -> String {
    DateTime::<Utc>::from(UNIX_EPOCH + Duration::from_secs(unix))
        .format(TIME_FORMAT)
        .to_string()
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02X}")).collect()
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).ok())
        .collect()
}

impl Issuer {
    /// An issuer with a fresh random key.
    pub(super) fn new(config: StsConfig) -> Self {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
            .expect("the system random generator works");
        Self {
            config,
            key,
            serial: AtomicU64::new(0),
        }
    }

    fn mac(&self, purpose: &str, data: &[u8]) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(purpose.as_bytes());
        context.update(b"\n");
        context.update(data);
        context.sign()
    }

    /// New credentials valid for `lifetime` from `now`.
    fn issue(&self, lifetime: Duration, now: SystemTime) -> Issued {
        let expires = unix_seconds(now) + lifetime.as_secs();
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let mut body = Vec::with_capacity(16 + ID_TAG_BYTES);
        body.extend_from_slice(&expires.to_be_bytes());
        body.extend_from_slice(&serial.to_be_bytes());
        let tag = self.mac("access-key-id", &body);
        body.extend_from_slice(&tag.as_ref()[..ID_TAG_BYTES]);
        let access_key_id = format!("{ACCESS_KEY_PREFIX}{}", hex_upper(&body));
        Issued {
            access_key_secret: self.secret_of(&access_key_id),
            security_token: self.token_of(&access_key_id),
            access_key_id,
            expires,
        }
    }

    /// 30 letters and digits, the shape of a real AccessKey secret: never starting with `-`,
    /// so command lines (`--access-key-secret VALUE`) take it as a value, not an option.
    fn secret_of(&self, access_key_id: &str) -> String {
        let tag = self.mac("access-key-secret", access_key_id.as_bytes());
        hex_upper(&tag.as_ref()[..SECRET_BYTES])
    }

    fn token_of(&self, access_key_id: &str) -> String {
        STANDARD.encode(self.mac("security-token", access_key_id.as_bytes()))
    }

    /// The expiry of an AccessKey id this issuer made; `None` for any other id.
    fn expiry_of(&self, access_key_id: &str) -> Option<u64> {
        let body = from_hex(access_key_id.strip_prefix(ACCESS_KEY_PREFIX)?)?;
        if body.len() != 16 + ID_TAG_BYTES {
            return None;
        }
        let (data, tag) = body.split_at(16);
        let expected = self.mac("access-key-id", data);
        if !constant_time_eq(&expected.as_ref()[..ID_TAG_BYTES], tag) {
            return None;
        }
        Some(u64::from_be_bytes(data[..8].try_into().expect("8 bytes")))
    }

    /// Verifies a log-service request signed with `access_key_id` (v1, or v4 scoped to
    /// `region`): `None` when this issuer did not make that id (the caller refuses it as
    /// unknown); otherwise the verified version, or why it is refused.
    pub(super) fn authenticate(
        &self,
        access_key_id: &str,
        region: &str,
        request: &SignedRequest<'_>,
        now: SystemTime,
    ) -> Option<Result<SignatureVersion, Failure>> {
        let expires = self.expiry_of(access_key_id)?;
        let secret = self.secret_of(access_key_id);
        let verified = auth::verify(access_key_id, &secret, region, request, now)
            .map_err(super::routes::verify_failure)
            .and_then(|version| {
                let token = request
                    .headers
                    .get(SECURITY_TOKEN_HEADER)
                    .map(HeaderValue::as_bytes)
                    .unwrap_or_default();
                if token.is_empty() {
                    return Err(Failure::new(
                        ApiErrorCode::Unauthorized,
                        "a temporary access key must be used with its security token (x-acs-security-token)",
                    ));
                }
                if !constant_time_eq(self.token_of(access_key_id), token) {
                    return Err(Failure::new(
                        ApiErrorCode::Unauthorized,
                        "the security token does not belong to this access key",
                    ));
                }
                if unix_seconds(now) >= expires {
                    return Err(Failure::new(
                        ApiErrorCode::SecurityTokenExpired,
                        format!("the security token expired at {}", format_time(expires)),
                    ));
                }
                Ok(version)
            });
        Some(verified)
    }

    /// A metadata session token valid for `ttl_seconds`: its expiry and a MAC of it.
    fn metadata_token(&self, ttl_seconds: u64, now: SystemTime) -> String {
        let expires = (unix_seconds(now) + ttl_seconds).to_be_bytes();
        let mut token = expires.to_vec();
        token.extend_from_slice(
            &self.mac("metadata-token", &expires).as_ref()[..METADATA_TAG_BYTES],
        );
        URL_SAFE_NO_PAD.encode(token)
    }

    fn metadata_token_is_valid(&self, token: &str, now: SystemTime) -> bool {
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(token.trim()) else {
            return false;
        };
        if bytes.len() != 8 + METADATA_TAG_BYTES {
            return false;
        }
        let (expires, tag) = bytes.split_at(8);
        let expected = self.mac("metadata-token", expires);
        constant_time_eq(&expected.as_ref()[..METADATA_TAG_BYTES], tag)
            && unix_seconds(now) < u64::from_be_bytes(expires.try_into().expect("8 bytes"))
    }

    /// Answers an instance metadata request: status and text body.
    fn metadata(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        now: SystemTime,
    ) -> (StatusCode, String) {
        if path == TOKEN_PATH {
            if method != Method::PUT {
                return (StatusCode::METHOD_NOT_ALLOWED, "use PUT".into());
            }
            let ttl = headers
                .get(METADATA_TOKEN_TTL_HEADER)
                .and_then(|value| value.to_str().ok()?.trim().parse::<u64>().ok())
                .filter(|ttl| (1..=MAX_METADATA_TOKEN_TTL).contains(ttl));
            return match ttl {
                Some(ttl) => (StatusCode::OK, self.metadata_token(ttl, now)),
                None => (
                    StatusCode::BAD_REQUEST,
                    format!("{METADATA_TOKEN_TTL_HEADER} must be between 1 and {MAX_METADATA_TOKEN_TTL}"),
                ),
            };
        }
        if let Some(token) = headers.get(METADATA_TOKEN_HEADER) {
            let valid = token
                .to_str()
                .is_ok_and(|token| self.metadata_token_is_valid(token, now));
            if !valid {
                return (
                    StatusCode::UNAUTHORIZED,
                    "the metadata token is invalid or expired".into(),
                );
            }
        }
        if method != Method::GET {
            return (StatusCode::METHOD_NOT_ALLOWED, "use GET".into());
        }
        match path.strip_prefix(CREDENTIALS_PATH) {
            Some("") => (StatusCode::OK, self.config.role.clone()),
            Some(role) if role == self.config.role => {
                let issued = self.issue(self.config.ttl, now);
                let body = json!({
                    "AccessKeyId": issued.access_key_id,
                    "AccessKeySecret": issued.access_key_secret,
                    "Expiration": format_time(issued.expires),
                    "SecurityToken": issued.security_token,
                    "LastUpdated": format_time(unix_seconds(now)),
                    "Code": "Success",
                });
                (StatusCode::OK, body.to_string())
            }
            _ => (StatusCode::NOT_FOUND, "not found".into()),
        }
    }

    /// Answers `AssumeRoleWithOIDC` with the request's parameters (query first, then form).
    fn assume_role_with_oidc(
        &self,
        params: &[(String, String)],
        request_id: &str,
        now: SystemTime,
    ) -> Result<Value, StsError> {
        let param = |name: &str| {
            params
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
                .filter(|value| !value.is_empty())
        };
        match param("Action") {
            Some("AssumeRoleWithOIDC") => {}
            action => {
                return Err(StsError::new(
                    StatusCode::NOT_FOUND,
                    "InvalidAction.NotFound",
                    format!(
                        "Specified api is not found, please check your url and method: {}",
                        action.unwrap_or("no Action")
                    ),
                ))
            }
        }
        let missing = |name: &str| {
            StsError::new(
                StatusCode::BAD_REQUEST,
                &format!("Missing{name}"),
                format!("{name} is mandatory for this action."),
            )
        };
        let role_arn = param("RoleArn").ok_or_else(|| missing("RoleArn"))?;
        param("OIDCProviderArn").ok_or_else(|| missing("OIDCProviderArn"))?;
        if param("OIDCToken").is_none() {
            return Err(StsError::new(
                StatusCode::UNAUTHORIZED,
                "AuthenticationFail.OIDCToken.Invalid",
                "The OIDCToken can not empty.".into(),
            ));
        }
        let role = role_arn
            .strip_prefix("acs:ram::")
            .and_then(|rest| rest.split_once(":role/"))
            .map(|(_, role)| role)
            .filter(|role| !role.is_empty())
            .ok_or_else(|| {
                StsError::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidParameter.RoleArn",
                    format!("The parameter RoleArn is wrongly formed: {role_arn}"),
                )
            })?;
        if !role.eq_ignore_ascii_case(&self.config.role) {
            return Err(StsError::new(
                StatusCode::NOT_FOUND,
                "EntityNotExist.Role",
                format!("The specified Role not exists: {role_arn}"),
            ));
        }
        let duration = match param("DurationSeconds") {
            None => DEFAULT_DURATION_SECONDS,
            Some(text) => text
                .parse::<u64>()
                .ok()
                .filter(|seconds| DURATION_SECONDS.contains(seconds))
                .ok_or_else(|| {
                    StsError::new(
                        StatusCode::BAD_REQUEST,
                        "InvalidParameter.DurationSeconds",
                        format!(
                            "The Min/Max value of DurationSeconds is {}s/{}s.",
                            DURATION_SECONDS.start(),
                            DURATION_SECONDS.end()
                        ),
                    )
                })?,
        };
        let lifetime = Duration::from_secs(duration).min(self.config.ttl);
        let issued = self.issue(lifetime, now);
        let session = param("RoleSessionName").unwrap_or("oidc-session");
        Ok(json!({
            "RequestId": request_id,
            "AssumedRoleUser": {
                "Arn": format!("{role_arn}/{session}"),
                "AssumedRoleId": format!("{}:{session}", &issued.access_key_id[ACCESS_KEY_PREFIX.len()..][..16]),
            },
            "Credentials": {
                "AccessKeyId": issued.access_key_id,
                "AccessKeySecret": issued.access_key_secret,
                "SecurityToken": issued.security_token,
                "Expiration": format_time(issued.expires),
            },
        }))
    }

    /// True for the requests this module answers rather than the log service: instance
    /// metadata paths, and STS calls at `/` (an `Action` parameter, or an unsigned form post).
    pub(super) fn serves<B>(request: &Request<B>) -> bool {
        let path = request.uri().path();
        if path.starts_with(METADATA_PREFIX) {
            return true;
        }
        if path != "/" {
            return false;
        }
        let has_action = form_pairs(request.uri().query().unwrap_or(""))
            .iter()
            .any(|(key, _)| key == "Action");
        let form = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
        has_action || (form && !request.headers().contains_key(http::header::AUTHORIZATION))
    }

    /// Answers a request [`Issuer::serves`].
    pub(super) async fn answer(
        &self,
        request: Request<hyper::body::Incoming>,
        request_id: &str,
    ) -> Reply {
        let now = SystemTime::now();
        let (parts, body) = request.into_parts();
        if parts.uri.path().starts_with(METADATA_PREFIX) {
            let (status, text) =
                self.metadata(&parts.method, parts.uri.path(), &parts.headers, now);
            return reply(status, "text/plain", text);
        }
        let mut params = form_pairs(parts.uri.query().unwrap_or(""));
        match Limited::new(body, MAX_FORM_BYTES).collect().await {
            Ok(body) => params.extend(form_pairs(&String::from_utf8_lossy(&body.to_bytes()))),
            Err(_) => {
                return StsError::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidParameter",
                    format!("the request body is unreadable or larger than {MAX_FORM_BYTES} bytes"),
                )
                .reply(request_id)
            }
        }
        match self.assume_role_with_oidc(&params, request_id, now) {
            Ok(body) => reply(StatusCode::OK, "application/json", body.to_string()),
            Err(error) => error.reply(request_id),
        }
    }
}

/// `application/x-www-form-urlencoded` pairs (also the RPC query string): `+` is a space,
/// the rest percent-decoded.
fn form_pairs(text: &str) -> Vec<(String, String)> {
    let decode = |part: &str| {
        percent_encoding::percent_decode_str(&part.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    *reply.status_mut() = status;
    reply.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    reply
}

/// An STS error answer: status and the `Code`/`Message` of its JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StsError {
    status: StatusCode,
    code: String,
    message: String,
}

impl StsError {
    fn new(status: StatusCode, code: &str, message: String) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message,
        }
    }

    /// The JSON body STS answers errors with.
    fn reply(&self, request_id: &str) -> Reply {
        let body = json!({
            "RequestId": request_id,
            "HostId": "sts.local",
            "Code": self.code,
            "Message": self.message,
        });
        reply(self.status, "application/json", body.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLE: &str = "ForwarderRole";

    fn issuer(ttl: u64) -> Issuer {
        Issuer::new(StsConfig {
            role: ROLE.into(),
            ttl: Duration::from_secs(ttl),
        })
    }

    fn at(unix: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(unix)
    }

    const NOW: u64 = 1_790_000_000;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    fn oidc_params() -> Vec<(&'static str, &'static str)> {
        vec![
            ("Action", "AssumeRoleWithOIDC"),
            ("Version", "2015-04-01"),
            ("Format", "JSON"),
            ("RoleArn", "acs:ram::1234567890:role/forwarderrole"),
            ("OIDCProviderArn", "acs:ram::1234567890:oidc-provider/ack"),
            ("OIDCToken", "eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl"),
            ("RoleSessionName", "pod-1"),
            ("DurationSeconds", "3600"),
        ]
    }

    /// A v1-signed request (`Date` at `signed`) with `token` in `x-acs-security-token`.
    fn signed_headers(issued: &Issued, token: &str, signed: SystemTime) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            "date",
            HeaderValue::from_str(&httpdate::fmt_http_date(signed)).unwrap(),
        );
        headers.insert("x-log-apiversion", HeaderValue::from_static("0.6.0"));
        if !token.is_empty() {
            headers.insert(SECURITY_TOKEN_HEADER, HeaderValue::from_str(token).unwrap());
        }
        let authorization = auth::authorization(
            &issued.access_key_id,
            &issued.access_key_secret,
            &SignedRequest {
                method: "GET",
                path: "/logstores",
                query: &[],
                headers: &headers,
            },
        );
        headers.insert(
            "authorization",
            HeaderValue::from_str(&authorization).unwrap(),
        );
        headers
    }

    fn check(
        issuer: &Issuer,
        id: &str,
        headers: &HeaderMap,
        now: SystemTime,
    ) -> Option<Result<SignatureVersion, String>> {
        let request = SignedRequest {
            method: "GET",
            path: "/logstores",
            query: &[],
            headers,
        };
        issuer
            .authenticate(id, "cn-hangzhou", &request, now)
            .map(|result| result.map_err(|failure| failure.code.as_str().to_owned()))
    }

    #[test]
    fn issued_secrets_are_thirty_letters_and_digits_so_a_command_line_takes_them_as_values() {
        let issuer = issuer(600);
        for _ in 0..2000 {
            let issued = issuer.issue(Duration::from_secs(600), at(NOW));
            let secret = &issued.access_key_secret;
            assert_eq!(secret.len(), 30, "{secret}");
            assert!(
                secret.bytes().all(|b| b.is_ascii_alphanumeric()),
                "{secret}"
            );
            assert!(!issued.security_token.starts_with('-'));
        }
    }

    #[test]
    fn issued_credentials_are_fresh_and_verify_until_they_expire() {
        let issuer = issuer(600);
        let first = issuer.issue(Duration::from_secs(600), at(NOW));
        let second = issuer.issue(Duration::from_secs(600), at(NOW));
        assert_ne!(first.access_key_id, second.access_key_id);
        assert_ne!(first.access_key_secret, second.access_key_secret);
        assert_ne!(first.security_token, second.security_token);
        assert!(first.access_key_id.starts_with("STS."));
        assert_eq!(first.expires, NOW + 600);

        let headers = signed_headers(&first, &first.security_token, at(NOW + 599));
        assert_eq!(
            check(&issuer, &first.access_key_id, &headers, at(NOW + 599)),
            Some(Ok(SignatureVersion::V1))
        );
        let headers = signed_headers(&first, &first.security_token, at(NOW + 600));
        assert_eq!(
            check(&issuer, &first.access_key_id, &headers, at(NOW + 600)),
            Some(Err("SecurityTokenExpired".into()))
        );
    }

    #[test]
    fn a_missing_or_foreign_token_is_refused() {
        let issuer = issuer(600);
        let mine = issuer.issue(Duration::from_secs(600), at(NOW));
        let other = issuer.issue(Duration::from_secs(600), at(NOW));
        for token in ["", other.security_token.as_str(), "forged"] {
            let headers = signed_headers(&mine, token, at(NOW));
            assert_eq!(
                check(&issuer, &mine.access_key_id, &headers, at(NOW)),
                Some(Err("Unauthorized".into())),
                "token `{token}`"
            );
        }
    }

    #[test]
    fn a_wrong_secret_fails_the_signature() {
        let issuer = issuer(600);
        let mut issued = issuer.issue(Duration::from_secs(600), at(NOW));
        issued.access_key_secret = "guessed".into();
        let headers = signed_headers(&issued, &issued.security_token, at(NOW));
        assert_eq!(
            check(&issuer, &issued.access_key_id, &headers, at(NOW)),
            Some(Err("SignatureNotMatch".into()))
        );
    }

    #[test]
    fn ids_not_issued_here_are_unknown() {
        let issuer = issuer(600);
        let issued = issuer.issue(Duration::from_secs(600), at(NOW));
        let headers = signed_headers(&issued, &issued.security_token, at(NOW));
        // Another process's key, an edited expiry, and ids of other shapes.
        let elsewhere = self::issuer(600).issue(Duration::from_secs(600), at(NOW));
        let mut extended = issued.access_key_id.clone();
        extended.replace_range(4..6, "FF");
        for id in [
            elsewhere.access_key_id.as_str(),
            extended.as_str(),
            "STS.",
            "STS.ZZ",
            "STS.+1",
            "local",
        ] {
            assert_eq!(check(&issuer, id, &headers, at(NOW)), None, "{id}");
        }
    }

    #[test]
    fn metadata_serves_the_role_and_credentials_with_or_without_a_session_token() {
        let issuer = issuer(900);
        let none = HeaderMap::new();
        let (status, role) = issuer.metadata(&Method::GET, CREDENTIALS_PATH, &none, at(NOW));
        assert_eq!((status, role.as_str()), (StatusCode::OK, ROLE));

        let path = format!("{CREDENTIALS_PATH}{ROLE}");
        let (status, body) = issuer.metadata(&Method::GET, &path, &none, at(NOW));
        assert_eq!(status, StatusCode::OK, "IMDSv1: no token needed");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["Code"], "Success");
        assert_eq!(body["Expiration"], format_time(NOW + 900));
        assert_eq!(body["LastUpdated"], format_time(NOW));
        let id = body["AccessKeyId"].as_str().unwrap();
        assert_eq!(issuer.expiry_of(id), Some(NOW + 900));
        assert_eq!(body["AccessKeySecret"], issuer.secret_of(id));
        assert_eq!(body["SecurityToken"], issuer.token_of(id));

        let mut ask = HeaderMap::new();
        ask.insert(METADATA_TOKEN_TTL_HEADER, HeaderValue::from_static("60"));
        let (status, token) = issuer.metadata(&Method::PUT, TOKEN_PATH, &ask, at(NOW));
        assert_eq!(status, StatusCode::OK);
        let mut with_token = HeaderMap::new();
        with_token.insert(
            METADATA_TOKEN_HEADER,
            HeaderValue::from_str(&token).unwrap(),
        );
        for (now, expected) in [
            (NOW + 59, StatusCode::OK),
            (NOW + 60, StatusCode::UNAUTHORIZED),
        ] {
            let (status, _) = issuer.metadata(&Method::GET, &path, &with_token, at(now));
            assert_eq!(status, expected, "{} s after the token", now - NOW);
        }
        with_token.insert(
            METADATA_TOKEN_HEADER,
            HeaderValue::from_static("AAAAAAAAAAA"),
        );
        let (status, _) = issuer.metadata(&Method::GET, &path, &with_token, at(NOW));
        assert_eq!(status, StatusCode::UNAUTHORIZED, "a forged token");
    }

    #[test]
    fn metadata_refuses_bad_token_requests_and_unknown_roles() {
        let issuer = issuer(900);
        for ttl in [None, Some("0"), Some("21601"), Some("soon")] {
            let mut headers = HeaderMap::new();
            if let Some(ttl) = ttl {
                headers.insert(METADATA_TOKEN_TTL_HEADER, HeaderValue::from_static(ttl));
            }
            let (status, _) = issuer.metadata(&Method::PUT, TOKEN_PATH, &headers, at(NOW));
            assert_eq!(status, StatusCode::BAD_REQUEST, "{ttl:?}");
        }
        let none = HeaderMap::new();
        for path in [
            format!("{CREDENTIALS_PATH}OtherRole"),
            format!("{CREDENTIALS_PATH}forwarderrole"),
            "/latest/meta-data/instance-id".into(),
        ] {
            let (status, _) = issuer.metadata(&Method::GET, &path, &none, at(NOW));
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        }
    }

    #[test]
    fn assume_role_with_oidc_issues_credentials_capped_by_the_ttl() {
        let issuer = issuer(120);
        let body = issuer
            .assume_role_with_oidc(&params(&oidc_params()), "REQ-1", at(NOW))
            .unwrap();
        assert_eq!(body["RequestId"], "REQ-1");
        assert_eq!(
            body["AssumedRoleUser"]["Arn"],
            "acs:ram::1234567890:role/forwarderrole/pod-1"
        );
        let credentials = &body["Credentials"];
        assert_eq!(credentials["Expiration"], format_time(NOW + 120), "capped");
        let id = credentials["AccessKeyId"].as_str().unwrap();
        assert_eq!(issuer.expiry_of(id), Some(NOW + 120));
        assert_eq!(credentials["SecurityToken"], issuer.token_of(id));

        let long = self::issuer(7200);
        let body = long
            .assume_role_with_oidc(&params(&oidc_params()), "REQ-2", at(NOW))
            .unwrap();
        assert_eq!(
            body["Credentials"]["Expiration"],
            format_time(NOW + 3600),
            "DurationSeconds when shorter than the ttl"
        );
    }

    /// The status and code of the refusal when parameter `name` is replaced by `value`
    /// (removed when `None`).
    fn refusal(issuer: &Issuer, name: &str, value: Option<&str>) -> (u16, String) {
        let mut pairs: Vec<(String, String)> = params(&oidc_params())
            .into_iter()
            .filter(|(key, _)| key != name)
            .collect();
        if let Some(value) = value {
            pairs.push((name.to_owned(), value.to_owned()));
        }
        let error = issuer
            .assume_role_with_oidc(&pairs, "REQ", at(NOW))
            .unwrap_err();
        (error.status.as_u16(), error.code)
    }

    #[test]
    fn assume_role_with_oidc_refuses_as_sts_does() {
        let issuer = issuer(120);
        let cases = [
            (
                "OIDCToken",
                None,
                401,
                "AuthenticationFail.OIDCToken.Invalid",
            ),
            (
                "OIDCToken",
                Some(""),
                401,
                "AuthenticationFail.OIDCToken.Invalid",
            ),
            ("RoleArn", None, 400, "MissingRoleArn"),
            ("OIDCProviderArn", None, 400, "MissingOIDCProviderArn"),
            (
                "RoleArn",
                Some("ForwarderRole"),
                400,
                "InvalidParameter.RoleArn",
            ),
            (
                "RoleArn",
                Some("acs:ram::1:role/other"),
                404,
                "EntityNotExist.Role",
            ),
            (
                "DurationSeconds",
                Some("899"),
                400,
                "InvalidParameter.DurationSeconds",
            ),
            (
                "DurationSeconds",
                Some("43201"),
                400,
                "InvalidParameter.DurationSeconds",
            ),
            (
                "DurationSeconds",
                Some("x"),
                400,
                "InvalidParameter.DurationSeconds",
            ),
            ("Action", Some("AssumeRole"), 404, "InvalidAction.NotFound"),
        ];
        for (name, value, status, code) in cases {
            assert_eq!(
                refusal(&issuer, name, value),
                (status, code.to_owned()),
                "{name} = {value:?}"
            );
        }
    }

    #[test]
    fn form_pairs_decode_plus_and_percent() {
        assert_eq!(
            form_pairs("Action=AssumeRoleWithOIDC&RoleSessionName=a+b%2Bc&Flag"),
            params(&[
                ("Action", "AssumeRoleWithOIDC"),
                ("RoleSessionName", "a b+c"),
                ("Flag", "")
            ])
        );
    }

    #[test]
    fn sts_and_metadata_requests_are_told_from_log_service_calls() {
        let request = |method: &str, uri: &str, headers: &[(&str, &str)]| {
            let mut builder = Request::builder().method(method).uri(uri);
            for (name, value) in headers {
                builder = builder.header(*name, *value);
            }
            builder.body(()).unwrap()
        };
        let form = ("content-type", "application/x-www-form-urlencoded");
        assert!(Issuer::serves(&request("PUT", TOKEN_PATH, &[])));
        assert!(Issuer::serves(&request(
            "GET",
            "/?Action=AssumeRoleWithOIDC",
            &[]
        )));
        assert!(Issuer::serves(&request("POST", "/", &[form])));
        assert!(!Issuer::serves(&request(
            "POST",
            "/",
            &[form, ("authorization", "LOG id:sig")]
        )));
        assert!(!Issuer::serves(&request(
            "POST",
            "/",
            &[("content-type", "application/json")]
        )));
        assert!(!Issuer::serves(&request("GET", "/logstores?Action=x", &[])));
    }
}

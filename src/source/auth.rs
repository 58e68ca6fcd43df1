//! Request signatures: v1 (`hmac-sha1`, here) and v4 (`SLS4-HMAC-SHA256`, in [`v4`]), used
//! both to sign client requests and to verify them in the local server, so both sides share
//! one canonicalisation.
//!
//! v1 string to sign:
//! `VERB\nCONTENT-MD5\nCONTENT-TYPE\nDATE\n` + one `name:value\n` line per
//! `x-log-*`/`x-acs-*` header (sorted, lowercase; `x-log-date` and `x-log-meta-*` excluded
//! because the Python SDK adds `x-log-date` after signing) + the path + `?k=v&...` with the
//! query pairs sorted by key and their values not URL-encoded.
//!
//! The official `aliyun-log-sdk-sign` crate (0.2) only signs, v1 only, with the date taken
//! from the clock and headers it sets itself; a server needs verification over received
//! headers, tests need a fixed date, and v4 is not in it, so the canonicalisation lives here.

pub mod v4;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use http::HeaderMap;
use md5::{Digest, Md5};
use sha1::Sha1;

/// Header carrying the STS security token.
pub const SECURITY_TOKEN_HEADER: &str = "x-acs-security-token";

/// The parts of a request that the signature covers.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// HTTP method, e.g. `GET`.
    pub method: &'a str,
    /// Path without the query, e.g. `/logstores/ls1/shards/0`.
    pub path: &'a str,
    /// Decoded query pairs, in any order.
    pub query: &'a [(String, String)],
    /// Request headers (names are case-insensitive in `HeaderMap`).
    pub headers: &'a HeaderMap,
}

/// Uppercase hex MD5 of a request body, as sent in `Content-MD5`.
pub fn content_md5(body: &[u8]) -> String {
    let digest = Md5::digest(body);
    let mut hex = String::with_capacity(32);
    for byte in digest {
        hex.push_str(&format!("{byte:02X}"));
    }
    hex
}

/// One header's value as text; empty when absent or not visible ASCII.
fn header<'h>(headers: &'h HeaderMap, name: &str) -> &'h str {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
}

/// The request's date as signed: `Date`, or `x-log-date` when `Date` is absent (some
/// proxies strip `Date`); empty when neither is present.
fn signed_date(headers: &HeaderMap) -> &str {
    match header(headers, "date") {
        "" => header(headers, "x-log-date"),
        date => date,
    }
}

/// Builds the v1 string to sign.
pub fn string_to_sign(request: &SignedRequest<'_>) -> String {
    let headers = request.headers;
    let date = signed_date(headers);
    let mut text = format!(
        "{}\n{}\n{}\n{}\n",
        request.method,
        header(headers, "content-md5"),
        header(headers, "content-type"),
        date
    );
    let mut canonical: Vec<(&str, &str)> = headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.to_str().unwrap_or("")))
        .filter(|(name, _)| {
            (name.starts_with("x-log-") || name.starts_with("x-acs-"))
                && *name != "x-log-date"
                && !name.starts_with("x-log-meta-")
        })
        .collect();
    canonical.sort_unstable();
    for (name, value) in canonical {
        text.push_str(name);
        text.push(':');
        text.push_str(value);
        text.push('\n');
    }
    text.push_str(request.path);
    if !request.query.is_empty() {
        let mut pairs: Vec<&(String, String)> = request.query.iter().collect();
        pairs.sort();
        text.push('?');
        for (index, (key, value)) in pairs.into_iter().enumerate() {
            if index > 0 {
                text.push('&');
            }
            text.push_str(key);
            text.push('=');
            text.push_str(value);
        }
    }
    text
}

/// The base64 HMAC-SHA1 of the string to sign.
pub fn signature(access_key_secret: &str, request: &SignedRequest<'_>) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(access_key_secret.as_bytes())
        .expect("hmac accepts keys of any length");
    mac.update(string_to_sign(request).as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The `Authorization` header value: `LOG {id}:{signature}`.
pub fn authorization(
    access_key_id: &str,
    access_key_secret: &str,
    request: &SignedRequest<'_>,
) -> String {
    format!(
        "LOG {access_key_id}:{}",
        signature(access_key_secret, request)
    )
}

/// The largest accepted distance between a request's `Date` and the server clock. The log
/// service rejects a request more than 15 minutes before or after its own clock with 400
/// `RequestTimeExpired`, and a `Date` that is not RFC 822 with 400 `InvalidRequestTime`
/// (Simple Log Service "Error codes", common error codes:
/// <https://help.aliyun.com/en/sls/developer-reference/error-codes>).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);

/// The v1 scheme: `LOG {id}:{signature}`.
const V1_SCHEME: &str = "LOG ";

/// A signature version, as configured (`source.signature_version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureVersion {
    /// `LOG id:signature`, HMAC-SHA1.
    V1,
    /// `SLS4-HMAC-SHA256`, scoped to a region.
    V4,
}

/// How a client signs its requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signing {
    /// Signature v1.
    V1,
    /// Signature v4 for a region.
    V4 {
        /// The region of the endpoint, e.g. `cn-hangzhou`.
        region: String,
    },
}

/// Why a signing configuration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    /// v4 without a region, and none can be derived from the endpoint.
    #[error("signature v4 needs a region, and `{0}` is not a standard endpoint it can be derived from (REGION[-intranet|-share|-vpc].log.aliyuncs.com): set it")]
    MissingRegion(String),
    /// The region is not a region id.
    #[error("`{0}` is not a region id: use lowercase letters, digits and `-`, e.g. `cn-hangzhou`")]
    InvalidRegion(String),
}

impl Signing {
    /// Picks the signature for an endpoint. The region is `region` or, when that is `None`,
    /// derived from a standard endpoint ([`v4::region_from_endpoint`]). The version is
    /// `version`; when that is `None`, v4 for regions that require it ([`v4::requires_v4`])
    /// and v1 otherwise.
    ///
    /// # Errors
    ///
    /// [`SigningError::InvalidRegion`] for a malformed `region`,
    /// [`SigningError::MissingRegion`] for v4 without a known region.
    pub fn resolve(
        version: Option<SignatureVersion>,
        region: Option<&str>,
        endpoint: &str,
    ) -> Result<Self, SigningError> {
        let region = match region {
            Some(region) if !v4::valid_region(region) => {
                return Err(SigningError::InvalidRegion(region.to_owned()))
            }
            Some(region) => Some(region.to_owned()),
            None => v4::region_from_endpoint(endpoint),
        };
        let version = version.unwrap_or(match &region {
            Some(region) if v4::requires_v4(region) => SignatureVersion::V4,
            _ => SignatureVersion::V1,
        });
        match (version, region) {
            (SignatureVersion::V1, _) => Ok(Self::V1),
            (SignatureVersion::V4, Some(region)) => Ok(Self::V4 { region }),
            (SignatureVersion::V4, None) => Err(SigningError::MissingRegion(endpoint.to_owned())),
        }
    }
}

/// Compares two secret-derived values in time independent of where they differ.
pub(crate) fn constant_time_eq(expected: impl AsRef<[u8]>, provided: impl AsRef<[u8]>) -> bool {
    let (expected, provided) = (expected.as_ref(), provided.as_ref());
    expected.len() == provided.len()
        && expected
            .iter()
            .zip(provided)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Why a request failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// No `Authorization` header.
    #[error("the request is not signed")]
    Unsigned,
    /// The header is not `LOG id:signature`, or a v4 header without a credential scoped to
    /// `…/sls/aliyun_v4_request` and a signature.
    #[error("malformed authorization header")]
    Malformed,
    /// Another signature scheme.
    #[error("unsupported authorization scheme `{0}`: only `LOG` (signature v1) and `SLS4-HMAC-SHA256` (signature v4) are accepted")]
    UnsupportedScheme(String),
    /// A v4 signature scoped to another region than the server's.
    #[error("the signature is scoped to region `{signed}`, but this endpoint is in `{expected}`")]
    WrongRegion {
        /// The region in the credential scope.
        signed: String,
        /// The server's region.
        expected: String,
    },
    /// A v4 request without `x-log-content-sha256`.
    #[error("a v4 signed request must carry x-log-content-sha256")]
    MissingContentSha256,
    /// Signed with another AccessKey id.
    #[error("unknown access key id `{0}`")]
    UnknownAccessKeyId(String),
    /// The signature does not match the request.
    #[error("signature does not match")]
    Mismatch,
    /// v1: neither `Date` nor `x-log-date` holds an RFC 822/1123 date; v4: `x-log-date` is
    /// not `YYYYMMDDTHHMMSSZ`.
    #[error("request time `{0}` is missing or malformed")]
    InvalidDate(String),
    /// The `Date` is more than [`MAX_CLOCK_SKEW`] away from the server clock, so the
    /// request may be a replay.
    #[error("request time `{date}` is more than {} minutes from the server time `{server}`", MAX_CLOCK_SKEW.as_secs() / 60)]
    Expired {
        /// The request's date.
        date: String,
        /// The server's clock, in the same format.
        server: String,
    },
}

/// Checks that the request's signed date (`Date`, else `x-log-date`) is within
/// [`MAX_CLOCK_SKEW`] of `now`, in either direction.
///
/// # Errors
///
/// [`VerifyError::InvalidDate`] when the date is missing or unparseable,
/// [`VerifyError::Expired`] when it is too old or too far in the future.
pub fn check_date(headers: &HeaderMap, now: SystemTime) -> Result<(), VerifyError> {
    let text = signed_date(headers);
    let date =
        httpdate::parse_http_date(text).map_err(|_| VerifyError::InvalidDate(text.to_owned()))?;
    check_skew(text, date, now, httpdate::fmt_http_date)
}

/// Refuses a request `date` (sent as `text`) more than [`MAX_CLOCK_SKEW`] from `now`, either
/// way; the error shows the server time written with `format`, as the request's date is.
fn check_skew(
    text: &str,
    date: SystemTime,
    now: SystemTime,
    format: fn(SystemTime) -> String,
) -> Result<(), VerifyError> {
    let skew = now
        .duration_since(date)
        .unwrap_or_else(|ahead| ahead.duration());
    if skew > MAX_CLOCK_SKEW {
        return Err(VerifyError::Expired {
            date: text.to_owned(),
            server: format(now),
        });
    }
    Ok(())
}

/// Verifies a v1- or v4-signed request against one AccessKey (and, for v4, the server's
/// `region`), with its date checked against `now`: v1 by [`check_date`], v4 by `x-log-date`
/// with the same skew. Every other scheme is refused. Returns the version that was verified,
/// so that the caller checks the body against the digest that version signs (`Content-MD5`
/// for v1, `x-log-content-sha256` for v4).
///
/// # Errors
///
/// Returns [`VerifyError`] when the request is unsigned, signed with another scheme, key or
/// region, altered, or dated too far from `now`.
pub fn verify(
    access_key_id: &str,
    access_key_secret: &str,
    region: &str,
    request: &SignedRequest<'_>,
    now: SystemTime,
) -> Result<SignatureVersion, VerifyError> {
    let value = header(request.headers, "authorization");
    if value.is_empty() {
        return Err(VerifyError::Unsigned);
    }
    if let Some(credentials) = value
        .strip_prefix(v4::SCHEME)
        .and_then(|rest| rest.strip_prefix(' '))
    {
        v4::verify(
            credentials,
            access_key_id,
            access_key_secret,
            region,
            request,
            now,
        )?;
        return Ok(SignatureVersion::V4);
    }
    let Some(credentials) = value.strip_prefix(V1_SCHEME) else {
        let scheme: String = value
            .split_whitespace()
            .next()
            .unwrap_or("")
            .chars()
            .take(32)
            .collect();
        return Err(VerifyError::UnsupportedScheme(scheme));
    };
    let (id, provided) = credentials.rsplit_once(':').ok_or(VerifyError::Malformed)?;
    if id != access_key_id {
        return Err(VerifyError::UnknownAccessKeyId(id.to_owned()));
    }
    check_date(request.headers, now)?;
    let expected = signature(access_key_secret, request);
    if constant_time_eq(&expected, provided) {
        Ok(SignatureVersion::V1)
    } else {
        Err(VerifyError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const DATE: &str = "Mon, 09 Nov 2015 06:11:16 GMT";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert("date", HeaderValue::from_static(DATE));
        map.insert("x-log-apiversion", HeaderValue::from_static("0.6.0"));
        map.insert(
            "x-log-signaturemethod",
            HeaderValue::from_static("hmac-sha1"),
        );
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sign(method: &str, path: &str, q: &[(&str, &str)], h: &HeaderMap) -> String {
        let query = query(q);
        authorization(
            "testid",
            "testsecret",
            &SignedRequest {
                method,
                path,
                query: &query,
                headers: h,
            },
        )
    }

    #[test]
    fn s1_heartbeat() {
        assert_eq!(content_md5(b"[0, 1]"), "264884439B70AB09A86BC848421C6DE6");
        let h = headers(&[
            ("content-md5", "264884439B70AB09A86BC848421C6DE6"),
            ("content-type", "application/json"),
            ("x-log-date", DATE),
        ]);
        let q = [("type", "heartbeat"), ("consumer", "consumer-1")];
        assert_eq!(
            sign("POST", "/logstores/ls1/consumergroups/cg1", &q, &h),
            "LOG testid:7wAGBpqUbF2RfheRqz6JCFF2Mu0="
        );
    }

    #[test]
    fn s2_pull_logs_with_decoded_cursor() {
        let h = headers(&[("x-log-bodyrawsize", "0"), ("accept-encoding", "lz4")]);
        let q = [
            ("type", "log"),
            ("cursor", "MTczNzY2OTAzNjAxNzIxODQ1NA=="),
            ("count", "1000"),
        ];
        assert_eq!(
            sign("GET", "/logstores/ls1/shards/0", &q, &h),
            "LOG testid:oSpJzueeesjgzLFpkvv4te7QOE4="
        );
    }

    #[test]
    fn s3_sts_token_is_signed() {
        let h = headers(&[
            ("x-log-bodyrawsize", "0"),
            (SECURITY_TOKEN_HEADER, "sts-token-abc"),
        ]);
        let query = query(&[("shard", "0")]);
        let request = SignedRequest {
            method: "GET",
            path: "/logstores/ls1/consumergroups/cg1",
            query: &query,
            headers: &h,
        };
        assert_eq!(
            string_to_sign(&request),
            "GET\n\n\nMon, 09 Nov 2015 06:11:16 GMT\nx-acs-security-token:sts-token-abc\n\
             x-log-apiversion:0.6.0\nx-log-bodyrawsize:0\nx-log-signaturemethod:hmac-sha1\n\
             /logstores/ls1/consumergroups/cg1?shard=0"
        );
        assert_eq!(
            authorization("testid", "testsecret", &request),
            "LOG testid:vjottdh88w7eD/SboBnTnlG+bp4="
        );
    }

    #[test]
    fn s4_update_checkpoint_python_and_java_booleans() {
        let body = br#"{"shard": 0, "checkpoint": "Mw=="}"#;
        assert_eq!(content_md5(body), "E163FD69813D9D3044779323136907D8");
        let h = headers(&[
            ("content-md5", "E163FD69813D9D3044779323136907D8"),
            ("content-type", "application/json"),
        ]);
        let path = "/logstores/ls1/consumergroups/cg1";
        let python = [
            ("type", "checkpoint"),
            ("consumer", "consumer-1"),
            ("forceSuccess", "True"),
        ];
        assert_eq!(
            sign("POST", path, &python, &h),
            "LOG testid:LC/hWrMTPeE7mHkx/qu5mbARza4="
        );
        let java = [
            ("type", "checkpoint"),
            ("consumer", "consumer-1"),
            ("forceSuccess", "true"),
        ];
        assert_eq!(
            sign("POST", path, &java, &h),
            "LOG testid:tCaUPw3eQKkk01cVKwe8Z8kAowQ="
        );
    }

    #[test]
    fn s5_official_crate_vectors() {
        let epoch = "Thu, 01 Jan 1970 00:00:00 GMT";
        let mut h = headers(&[]);
        h.insert("date", HeaderValue::from_static(epoch));
        let empty = SignedRequest {
            method: "GET",
            path: "/",
            query: &[],
            headers: &h,
        };
        assert_eq!(
            authorization("", "", &empty),
            "LOG :SApFTtfTFKHmzdEdaMe5TjNn+RQ="
        );

        let body = b"\n            {\"key\": \"value\"}\n        ";
        assert_eq!(content_md5(body), "CE688F8D1AC3ED309BA9BE0A5ABAFCE5");
        let mut h = headers(&[
            ("content-md5", "CE688F8D1AC3ED309BA9BE0A5ABAFCE5"),
            ("content-type", "application/json"),
        ]);
        h.insert("date", HeaderValue::from_static(epoch));
        let query = query(&[("type", "log"), ("offset", "0"), ("line", "100")]);
        let request = SignedRequest {
            method: "POST",
            path: "/logstores/test-logstore",
            query: &query,
            headers: &h,
        };
        assert_eq!(
            authorization("test-access-key-id", "test-access-key", &request),
            "LOG test-access-key-id:4pL2xZJERC3tPKtRiHh9+nMG3tI="
        );
    }

    #[test]
    fn verify_accepts_good_and_rejects_bad_signatures() {
        let mut h = headers(&[]);
        let q = query(&[("type", "log")]);
        let request = |h: &HeaderMap| {
            let request = SignedRequest {
                method: "GET",
                path: "/logstores/a",
                query: &q,
                headers: h,
            };
            verify("testid", "testsecret", "cn-hangzhou", &request, date(DATE)).map(|_| ())
        };
        assert_eq!(request(&h), Err(VerifyError::Unsigned));
        let auth = authorization(
            "testid",
            "testsecret",
            &SignedRequest {
                method: "GET",
                path: "/logstores/a",
                query: &q,
                headers: &h,
            },
        );
        h.insert("authorization", HeaderValue::from_str(&auth).unwrap());
        assert_eq!(request(&h), Ok(()));
        h.insert("x-log-apiversion", HeaderValue::from_static("0.7.0"));
        assert_eq!(request(&h), Err(VerifyError::Mismatch));
        h.insert("authorization", HeaderValue::from_static("LOG other:abc"));
        assert_eq!(
            request(&h),
            Err(VerifyError::UnknownAccessKeyId("other".into()))
        );
        h.insert("authorization", HeaderValue::from_static("LOG no-colon"));
        assert_eq!(request(&h), Err(VerifyError::Malformed));
        h.insert("authorization", HeaderValue::from_static("Basic abc"));
        assert_eq!(
            request(&h),
            Err(VerifyError::UnsupportedScheme("Basic".into()))
        );
    }

    fn date(text: &str) -> SystemTime {
        httpdate::parse_http_date(text).unwrap()
    }

    /// A request signed with the right key at `DATE`, and the headers it carries.
    fn signed_headers() -> HeaderMap {
        let mut h = headers(&[]);
        let auth = sign("GET", "/logstores/a", &[], &h);
        h.insert("authorization", HeaderValue::from_str(&auth).unwrap());
        h
    }

    fn verify_at(h: &HeaderMap, now: SystemTime) -> Result<(), VerifyError> {
        let request = SignedRequest {
            method: "GET",
            path: "/logstores/a",
            query: &[],
            headers: h,
        };
        verify("testid", "testsecret", "cn-hangzhou", &request, now).map(|version| {
            assert_eq!(version, SignatureVersion::V1);
        })
    }

    #[test]
    fn unknown_schemes_are_refused() {
        let mut h = headers(&[]);
        for (value, scheme) in [
            ("SLS4-HMAC-SHA256x Credential=a", "SLS4-HMAC-SHA256x"),
            ("Bearer token", "Bearer"),
            ("log testid:abc", "log"),
        ] {
            h.insert("authorization", HeaderValue::from_static(value));
            assert_eq!(
                verify_at(&h, date(DATE)),
                Err(VerifyError::UnsupportedScheme(scheme.into())),
                "{value}"
            );
        }
    }

    #[test]
    fn signing_is_resolved_from_version_region_and_endpoint() {
        let cloud = "https://cn-hangzhou.log.aliyuncs.com";
        assert_eq!(Signing::resolve(None, None, cloud), Ok(Signing::V1));
        let v4 = Some(SignatureVersion::V4);
        assert_eq!(
            Signing::resolve(v4, None, cloud),
            Ok(Signing::V4 {
                region: "cn-hangzhou".into()
            })
        );
        assert_eq!(
            Signing::resolve(v4, Some("cn-beijing"), cloud),
            Ok(Signing::V4 {
                region: "cn-beijing".into()
            })
        );
        assert_eq!(
            Signing::resolve(v4, None, "http://127.0.0.1:1"),
            Err(SigningError::MissingRegion("http://127.0.0.1:1".into()))
        );
        assert_eq!(
            Signing::resolve(v4, Some("CN/x"), cloud),
            Err(SigningError::InvalidRegion("CN/x".into()))
        );
        let dedicated = "https://cn-qingdao-acdr-ut-1.log.aliyuncs.com";
        assert_eq!(
            Signing::resolve(None, None, dedicated),
            Ok(Signing::V4 {
                region: "cn-qingdao-acdr-ut-1".into()
            })
        );
        assert_eq!(
            Signing::resolve(Some(SignatureVersion::V1), None, dedicated),
            Ok(Signing::V1)
        );
    }

    #[test]
    fn dates_further_than_the_skew_are_refused_both_ways() {
        let h = signed_headers();
        let signed_at = date(DATE);
        assert_eq!(verify_at(&h, signed_at), Ok(()));
        assert_eq!(verify_at(&h, signed_at + MAX_CLOCK_SKEW), Ok(()));
        assert_eq!(verify_at(&h, signed_at - MAX_CLOCK_SKEW), Ok(()));
        let late = signed_at + MAX_CLOCK_SKEW + Duration::from_secs(1);
        assert_eq!(
            verify_at(&h, late),
            Err(VerifyError::Expired {
                date: DATE.into(),
                server: "Mon, 09 Nov 2015 06:26:17 GMT".into()
            }),
            "a replay of an old request"
        );
        let early = signed_at - MAX_CLOCK_SKEW - Duration::from_secs(1);
        assert!(matches!(
            verify_at(&h, early),
            Err(VerifyError::Expired { .. })
        ));
    }

    #[test]
    fn missing_or_unparseable_dates_are_refused() {
        let mut h = signed_headers();
        h.remove("date");
        assert_eq!(
            verify_at(&h, date(DATE)),
            Err(VerifyError::InvalidDate(String::new()))
        );
        h.insert("date", HeaderValue::from_static("yesterday"));
        assert_eq!(
            verify_at(&h, date(DATE)),
            Err(VerifyError::InvalidDate("yesterday".into()))
        );
        // Without `Date`, `x-log-date` is the signed date (the Python SDK's proxy fallback).
        let mut h = headers(&[("x-log-date", DATE)]);
        h.remove("date");
        let auth = sign("GET", "/logstores/a", &[], &h);
        h.insert("authorization", HeaderValue::from_str(&auth).unwrap());
        assert_eq!(verify_at(&h, date(DATE)), Ok(()));
    }
}

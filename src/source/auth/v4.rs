//! Request signature v4 (`SLS4-HMAC-SHA256`), as the official Python and Go SDKs sign it,
//! used both to sign client requests and to verify them in the local server.
//!
//! The client adds `x-log-date` (`YYYYMMDDTHHMMSSZ`, UTC) and `x-log-content-sha256` (lowercase
//! hex SHA-256 of the body) before signing. Canonical request:
//! `VERB\nPATH\nQUERY\nHEADERS\nSIGNED-HEADERS\nCONTENT-SHA256`, where QUERY is the pairs sorted
//! by key, `key=value` with the value percent-encoded (RFC 3986 unreserved characters kept)
//! or just `key` for an empty value, joined by `&`; HEADERS is one `name:value\n` line per
//! signed header (`host`, `content-type`, `x-log-*` except `x-log-meta-*`, `x-acs-*`; sorted,
//! lowercase) and SIGNED-HEADERS their names joined by `;`. String to sign:
//! `SLS4-HMAC-SHA256\nDATETIME\nSCOPE\nhex(sha256(canonical request))` with the scope
//! `DATE/REGION/sls/aliyun_v4_request`; key chain `aliyun_v4`+secret → date → region → `sls` →
//! `aliyun_v4_request` (HMAC-SHA256 at each step). The header is
//! `SLS4-HMAC-SHA256 Credential=ID/SCOPE,Signature=HEX` (the signed headers are implied, not
//! listed).

use std::time::SystemTime;

use chrono::{DateTime, NaiveDateTime, Utc};
use http::HeaderMap;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use ring::{digest, hmac};

use super::{check_skew, constant_time_eq, header, SignedRequest, VerifyError};

/// The scheme word of a v4 `Authorization` header.
pub const SCHEME: &str = "SLS4-HMAC-SHA256";
/// Header carrying the request time.
pub const DATE_HEADER: &str = "x-log-date";
/// Header carrying the body's SHA-256.
pub const CONTENT_SHA256_HEADER: &str = "x-log-content-sha256";
/// The service name in the credential scope.
const SERVICE: &str = "sls";
/// The last element of the credential scope.
const TERMINATOR: &str = "aliyun_v4_request";
/// Prefix of the secret at the start of the key chain.
const SECRET_PREFIX: &str = "aliyun_v4";
/// Format of `x-log-date`.
const DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// What is percent-encoded in query and form values: everything but the RFC 3986 unreserved
/// characters (`A-Z a-z 0-9 - _ . ~`).
pub(crate) const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Lowercase hex SHA-256 of a request body, as sent in `x-log-content-sha256`.
pub fn content_sha256(body: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, body).as_ref())
}

/// `x-log-date` for a point in time: `YYYYMMDDTHHMMSSZ` in UTC.
pub fn format_date(time: SystemTime) -> String {
    DateTime::<Utc>::from(time).format(DATE_FORMAT).to_string()
}

fn parse_date(text: &str) -> Option<SystemTime> {
    NaiveDateTime::parse_from_str(text, DATE_FORMAT)
        .ok()
        .map(|naive| naive.and_utc().into())
}

fn hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

fn is_signed_header(name: &str) -> bool {
    name == "host"
        || name == "content-type"
        || name.starts_with("x-acs-")
        || (name.starts_with("x-log-") && !name.starts_with("x-log-meta-"))
}

/// Builds the canonical request from the request's headers (which must already carry
/// `x-log-content-sha256`).
pub fn canonical_request(request: &SignedRequest<'_>) -> String {
    let mut pairs: Vec<&(String, String)> = request.query.iter().collect();
    pairs.sort();
    let query: Vec<String> = pairs
        .into_iter()
        .map(|(key, value)| {
            if value.is_empty() {
                key.clone()
            } else {
                format!("{key}={}", utf8_percent_encode(value, UNRESERVED))
            }
        })
        .collect();
    let mut signed: Vec<(&str, &str)> = request
        .headers
        .keys()
        .map(|name| name.as_str())
        .filter(|name| is_signed_header(name))
        .map(|name| (name, header(request.headers, name).trim()))
        .collect();
    signed.sort_unstable();
    let mut canonical_headers = String::new();
    for (name, value) in &signed {
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(value);
        canonical_headers.push('\n');
    }
    let names: Vec<&str> = signed.iter().map(|(name, _)| *name).collect();
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        request.path,
        query.join("&"),
        canonical_headers,
        names.join(";"),
        header(request.headers, CONTENT_SHA256_HEADER)
    )
}

/// `DATE/REGION/sls/aliyun_v4_request` for an `x-log-date` value.
fn scope(date_time: &str, region: &str) -> String {
    let date = date_time.get(..8).unwrap_or(date_time);
    format!("{date}/{region}/{SERVICE}/{TERMINATOR}")
}

/// Builds the v4 string to sign, dated by the request's `x-log-date`.
pub fn string_to_sign(request: &SignedRequest<'_>, region: &str) -> String {
    let date_time = header(request.headers, DATE_HEADER);
    let canonical = digest::digest(&digest::SHA256, canonical_request(request).as_bytes());
    format!(
        "{SCHEME}\n{date_time}\n{}\n{}",
        scope(date_time, region),
        hex(canonical.as_ref())
    )
}

fn hmac_sha256(key: &[u8], message: &str) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), message.as_bytes())
}

/// The lowercase hex signature of the request.
pub fn signature(access_key_secret: &str, region: &str, request: &SignedRequest<'_>) -> String {
    let date_time = header(request.headers, DATE_HEADER);
    let date = date_time.get(..8).unwrap_or(date_time);
    let mut key = hmac_sha256(
        format!("{SECRET_PREFIX}{access_key_secret}").as_bytes(),
        date,
    );
    for step in [region, SERVICE, TERMINATOR] {
        key = hmac_sha256(key.as_ref(), step);
    }
    hex(hmac_sha256(key.as_ref(), &string_to_sign(request, region)).as_ref())
}

/// The `Authorization` header value:
/// `SLS4-HMAC-SHA256 Credential={id}/{scope},Signature={signature}`.
pub fn authorization(
    access_key_id: &str,
    access_key_secret: &str,
    region: &str,
    request: &SignedRequest<'_>,
) -> String {
    let date_time = header(request.headers, DATE_HEADER);
    format!(
        "{SCHEME} Credential={access_key_id}/{},Signature={}",
        scope(date_time, region),
        signature(access_key_secret, region, request)
    )
}

/// The fields of a v4 `Authorization` header.
struct Credential<'a> {
    id: &'a str,
    date: &'a str,
    region: &'a str,
    signature: &'a str,
}

fn parse(credentials: &str) -> Option<Credential<'_>> {
    let mut credential = None;
    let mut signature = None;
    for field in credentials.split(',') {
        match field.trim().split_once('=') {
            Some(("Credential", value)) => credential = Some(value),
            Some(("Signature", value)) => signature = Some(value),
            _ => {}
        }
    }
    let mut parts = credential?.rsplitn(5, '/');
    let (terminator, service, region, date, id) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    (terminator == TERMINATOR && service == SERVICE).then_some(Credential {
        id,
        date,
        region,
        signature: signature?,
    })
}

/// Checks that `x-log-date` is a v4 date within [`super::MAX_CLOCK_SKEW`] of `now`.
fn check_date(headers: &HeaderMap, now: SystemTime) -> Result<(), VerifyError> {
    let text = header(headers, DATE_HEADER);
    let date = parse_date(text).ok_or_else(|| VerifyError::InvalidDate(text.to_owned()))?;
    check_skew(text, date, now, format_date)
}

/// Verifies the credentials part of a v4 `Authorization` header (after the scheme word)
/// against one AccessKey and the server's region, with `x-log-date` checked against `now`.
///
/// The body itself is checked by the caller against `x-log-content-sha256` (see
/// [`content_sha256`]) once it is read; the signature covers that header.
///
/// # Errors
///
/// [`VerifyError`] when the header is malformed, names another key or region, the date is
/// missing, unparseable, off by more than the skew or not the scope's date, the body hash is
/// missing, or the signature does not match.
pub(super) fn verify(
    credentials: &str,
    access_key_id: &str,
    access_key_secret: &str,
    region: &str,
    request: &SignedRequest<'_>,
    now: SystemTime,
) -> Result<(), VerifyError> {
    let credential = parse(credentials).ok_or(VerifyError::Malformed)?;
    if credential.id != access_key_id {
        return Err(VerifyError::UnknownAccessKeyId(credential.id.to_owned()));
    }
    if credential.region != region {
        return Err(VerifyError::WrongRegion {
            signed: credential.region.chars().take(64).collect(),
            expected: region.to_owned(),
        });
    }
    check_date(request.headers, now)?;
    if !header(request.headers, DATE_HEADER).starts_with(credential.date)
        || credential.date.len() != 8
    {
        return Err(VerifyError::Mismatch);
    }
    if header(request.headers, CONTENT_SHA256_HEADER).is_empty() {
        return Err(VerifyError::MissingContentSha256);
    }
    let expected = signature(access_key_secret, region, request);
    if constant_time_eq(&expected, credential.signature) {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

/// The region of a standard endpoint, `REGION[-intranet|-share|-vpc].{log|sls}.aliyuncs.com`
/// (scheme and port allowed), as the official Go SDK parses it: `cn-hangzhou` for
/// `https://cn-hangzhou-intranet.log.aliyuncs.com`. `None` for any other host (an address, a
/// private domain, the local server).
pub fn region_from_endpoint(endpoint: &str) -> Option<String> {
    let rest = endpoint
        .trim()
        .split_once("://")
        .map_or(endpoint.trim(), |(_, rest)| rest);
    let host = rest.split(['/', ':']).next()?.to_ascii_lowercase();
    let label = host
        .strip_suffix(".log.aliyuncs.com")
        .or_else(|| host.strip_suffix(".sls.aliyuncs.com"))?;
    let region = ["-intranet", "-share", "-vpc"]
        .iter()
        .find_map(|suffix| label.strip_suffix(suffix))
        .unwrap_or(label);
    valid_region(region).then(|| region.to_owned())
}

/// A region id: lowercase letters, digits and `-`, 2 to 64 characters, no dots.
pub fn valid_region(region: &str) -> bool {
    (2..=64).contains(&region.len())
        && region
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
        && !region.starts_with('-')
        && !region.ends_with('-')
}

/// True for dedicated-cloud regions (`-acdr-ut-`), which only accept v4; the official Go and
/// Java SDKs switch to v4 for them automatically.
pub fn requires_v4(region: &str) -> bool {
    region.contains("-acdr-ut-")
}

#[cfg(test)]
mod tests {
    use super::super::{verify as verify_any, SignatureVersion, MAX_CLOCK_SKEW};
    use super::*;
    use http::HeaderValue;

    const DATE_TIME: &str = "20151109T061116Z";

    fn date(text: &str) -> SystemTime {
        parse_date(text).unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(DATE_HEADER, HeaderValue::from_static(DATE_TIME));
        map.insert("x-log-apiversion", HeaderValue::from_static("0.6.0"));
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

    /// Vector computed with the official Python SDK (aliyun-log-python-sdk 0.9.52,
    /// `AuthV4._do_sign_request`), a heartbeat with a JSON body.
    #[test]
    fn python_sdk_vector_heartbeat_with_body() {
        let body = b"[0, 1]";
        assert_eq!(
            content_sha256(body),
            "923682bea6d517dc178d480c88e129e485ed902f4fa024866666658cd4ea6836"
        );
        let h = headers(&[
            ("host", "proj.cn-hangzhou.log.aliyuncs.com"),
            ("content-type", "application/json"),
            ("x-log-bodyrawsize", "6"),
            (CONTENT_SHA256_HEADER, &content_sha256(body)),
        ]);
        let q = query(&[("type", "heartbeat"), ("consumer", "consumer-1")]);
        let request = SignedRequest {
            method: "POST",
            path: "/logstores/ls1/consumergroups/cg1",
            query: &q,
            headers: &h,
        };
        assert_eq!(
            authorization("testid", "testsecret", "cn-hangzhou", &request),
            "SLS4-HMAC-SHA256 Credential=testid/20151109/cn-hangzhou/sls/aliyun_v4_request,\
             Signature=3c054f3d1804a7935fb732c35998b20a89307540e92fc87bb9648cad97aae30f"
        );
    }

    /// Python SDK vector: no body, an STS token, query values that need encoding, an empty
    /// value, and headers that are not signed (`accept-encoding`, `x-log-meta-*`).
    #[test]
    fn python_sdk_vector_pull_with_token_and_encoded_query() {
        let h = headers(&[
            ("host", "proj.127.0.0.1"),
            ("x-log-bodyrawsize", "0"),
            ("accept-encoding", "lz4"),
            ("x-log-meta-x", "skip"),
            ("x-acs-security-token", "sts-token-abc"),
            (CONTENT_SHA256_HEADER, &content_sha256(b"")),
        ]);
        assert_eq!(
            header(&h, CONTENT_SHA256_HEADER),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let q = query(&[
            ("type", "log"),
            ("cursor", "MTczNzY2OTAzNjAxNzIxODQ1NA=="),
            ("count", "1000"),
            ("flag", ""),
            ("q", "a b~/*"),
        ]);
        let request = SignedRequest {
            method: "GET",
            path: "/logstores/ls1/shards/0",
            query: &q,
            headers: &h,
        };
        assert!(canonical_request(&request).starts_with(
            "GET\n/logstores/ls1/shards/0\n\
             count=1000&cursor=MTczNzY2OTAzNjAxNzIxODQ1NA%3D%3D&flag&q=a%20b~%2F%2A&type=log\n"
        ));
        assert_eq!(
            authorization("testid", "testsecret", "cn-hangzhou-acdr-ut-1", &request),
            "SLS4-HMAC-SHA256 Credential=testid/20151109/cn-hangzhou-acdr-ut-1/sls/aliyun_v4_request,\
             Signature=3ed36268b33f48e4a409b1ead2a778ac0bbbe002f29376a1155d5277a8d9c998"
        );
    }

    fn signed(region: &str) -> HeaderMap {
        let mut h = headers(&[
            ("host", "proj.127.0.0.1"),
            (CONTENT_SHA256_HEADER, &content_sha256(b"")),
        ]);
        let auth = authorization(
            "testid",
            "testsecret",
            region,
            &SignedRequest {
                method: "GET",
                path: "/logstores/a",
                query: &[],
                headers: &h,
            },
        );
        h.insert("authorization", HeaderValue::from_str(&auth).unwrap());
        h
    }

    fn check(h: &HeaderMap, now: SystemTime) -> Result<SignatureVersion, VerifyError> {
        let request = SignedRequest {
            method: "GET",
            path: "/logstores/a",
            query: &[],
            headers: h,
        };
        verify_any("testid", "testsecret", "cn-hangzhou", &request, now)
    }

    #[test]
    fn verify_accepts_v4_and_refuses_forgeries() {
        let now = date(DATE_TIME);
        let good = signed("cn-hangzhou");
        assert_eq!(check(&good, now), Ok(SignatureVersion::V4));

        let mut altered = good.clone();
        altered.insert("x-log-bodyrawsize", HeaderValue::from_static("1"));
        assert_eq!(check(&altered, now), Err(VerifyError::Mismatch));

        let mut other_host = good.clone();
        other_host.insert("host", HeaderValue::from_static("other.127.0.0.1"));
        assert_eq!(check(&other_host, now), Err(VerifyError::Mismatch));

        let mut forged = good.clone();
        let value = header(&good, "authorization").replace("Signature=", "Signature=0");
        let value = &value[..value.len() - 1];
        forged.insert("authorization", HeaderValue::from_str(value).unwrap());
        assert_eq!(check(&forged, now), Err(VerifyError::Mismatch));

        let mut no_hash = good.clone();
        no_hash.remove(CONTENT_SHA256_HEADER);
        assert_eq!(check(&no_hash, now), Err(VerifyError::MissingContentSha256));

        let mut other_key = good.clone();
        let value = header(&good, "authorization").replace("testid/", "other/");
        other_key.insert("authorization", HeaderValue::from_str(&value).unwrap());
        assert_eq!(
            check(&other_key, now),
            Err(VerifyError::UnknownAccessKeyId("other".into()))
        );

        for malformed in [
            "SLS4-HMAC-SHA256 ",
            "SLS4-HMAC-SHA256 Credential=testid/20151109/cn-hangzhou/sls/aliyun_v4_request",
            "SLS4-HMAC-SHA256 Credential=testid/20151109/cn-hangzhou/oss/aliyun_v4_request,Signature=00",
            "SLS4-HMAC-SHA256 Signature=00",
        ] {
            let mut h = good.clone();
            h.insert("authorization", HeaderValue::from_static(malformed));
            assert_eq!(check(&h, now), Err(VerifyError::Malformed), "{malformed}");
        }
    }

    #[test]
    fn verify_refuses_another_region() {
        assert_eq!(
            check(&signed("cn-shanghai"), date(DATE_TIME)),
            Err(VerifyError::WrongRegion {
                signed: "cn-shanghai".into(),
                expected: "cn-hangzhou".into()
            })
        );
    }

    #[test]
    fn verify_refuses_skewed_and_malformed_dates() {
        let good = signed("cn-hangzhou");
        let at = date(DATE_TIME);
        assert_eq!(check(&good, at + MAX_CLOCK_SKEW), Ok(SignatureVersion::V4));
        assert_eq!(check(&good, at - MAX_CLOCK_SKEW), Ok(SignatureVersion::V4));
        let late = at + MAX_CLOCK_SKEW + std::time::Duration::from_secs(1);
        assert_eq!(
            check(&good, late),
            Err(VerifyError::Expired {
                date: DATE_TIME.into(),
                server: "20151109T062617Z".into()
            })
        );
        let early = at - MAX_CLOCK_SKEW - std::time::Duration::from_secs(1);
        assert!(matches!(
            check(&good, early),
            Err(VerifyError::Expired { .. })
        ));
        let mut h = good.clone();
        h.insert(
            DATE_HEADER,
            HeaderValue::from_static("Mon, 09 Nov 2015 06:11:16 GMT"),
        );
        assert!(matches!(check(&h, at), Err(VerifyError::InvalidDate(_))));
        // A date that disagrees with the scope's date is not the signed one.
        let mut h = good;
        h.insert(DATE_HEADER, HeaderValue::from_static("20151108T235959Z"));
        assert_eq!(
            check(&h, date("20151108T235959Z")),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn regions_come_from_standard_endpoints() {
        for (endpoint, region) in [
            ("https://cn-hangzhou.log.aliyuncs.com", Some("cn-hangzhou")),
            ("cn-hangzhou-intranet.log.aliyuncs.com", Some("cn-hangzhou")),
            (
                "http://cn-hangzhou-share.log.aliyuncs.com:80",
                Some("cn-hangzhou"),
            ),
            (
                "cn-qingdao-acdr-ut-1-intranet.log.aliyuncs.com",
                Some("cn-qingdao-acdr-ut-1"),
            ),
            ("ap-southeast-1.log.aliyuncs.com", Some("ap-southeast-1")),
            (
                "cn-shanghai-corp-share.sls.aliyuncs.com",
                Some("cn-shanghai-corp"),
            ),
            ("cn-beijing-vpc.log.aliyuncs.com", Some("cn-beijing")),
            ("http://127.0.0.1:8080", None),
            ("sls.aliyuncs.com", None),
            ("https://logs.example.com", None),
        ] {
            assert_eq!(
                region_from_endpoint(endpoint).as_deref(),
                region,
                "{endpoint}"
            );
        }
        assert!(requires_v4("cn-qingdao-acdr-ut-1"));
        assert!(!requires_v4("cn-hangzhou"));
    }
}

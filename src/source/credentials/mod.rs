//! Credentials behind the request signer: a [`ProvideCredentials`] source (one file per
//! provider, as the official Alibaba Cloud credentials chain offers them) and the
//! [`CredentialsCache`] the client asks before every request, which refreshes them shortly
//! before they expire and at once when the log service rejects them.

mod cache;
pub mod config;
pub mod ecs_ram_role;
pub mod environment;
pub mod file;
mod http;
pub mod oidc_role_arn;

/// One value of [`Credentials`]: its configuration key, its name in messages and its longest
/// length.
pub(crate) struct Field {
    /// Key in a `[source]` or `[source.credentials]` table, e.g. `access_key_id`.
    pub key: &'static str,
    /// Name in messages, e.g. `the AccessKey id`.
    pub name: &'static str,
    /// Longest value accepted.
    pub max_len: usize,
}

const ACCESS_KEY_ID: Field = Field {
    key: "access_key_id",
    name: "the AccessKey id",
    max_len: MAX_ACCESS_KEY_ID,
};
const ACCESS_KEY_SECRET: Field = Field {
    key: "access_key_secret",
    name: "the AccessKey secret",
    max_len: MAX_ACCESS_KEY_SECRET,
};
const SECURITY_TOKEN: Field = Field {
    key: "security_token",
    name: "the security token",
    max_len: MAX_SECURITY_TOKEN,
};

#[cfg(test)]
mod retry;
pub mod static_keys;
#[cfg(test)]
mod test_server;

use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::common::Secret;

pub use cache::CredentialsCache;
pub use config::CredentialsConfig;

/// Longest AccessKey id, secret and STS token accepted (they travel in HTTP headers).
pub const MAX_ACCESS_KEY_ID: usize = 128;
/// Longest AccessKey secret accepted.
pub const MAX_ACCESS_KEY_SECRET: usize = 256;
/// Longest STS token accepted.
pub const MAX_SECURITY_TOKEN: usize = 8192;

/// One set of credentials: an AccessKey pair, with an STS token and its expiry when
/// temporary. `Debug` shows the id and the expiry, never the secret or the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// AccessKey id.
    pub access_key_id: String,
    /// AccessKey secret.
    pub access_key_secret: Secret,
    /// STS token of temporary credentials; `None` (never empty) for a permanent key.
    pub security_token: Option<Secret>,
    /// When temporary credentials stop working; `None` when they do not expire.
    pub expiration: Option<SystemTime>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("access_key_secret", &self.access_key_secret)
            .field("security_token", &self.security_token)
            .field("expiration", &self.expiration)
            .finish()
    }
}

impl Credentials {
    /// Permanent or temporary credentials without a known expiry; an empty token means none.
    pub fn new(
        access_key_id: impl Into<String>,
        access_key_secret: Secret,
        security_token: Option<Secret>,
    ) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            access_key_secret,
            security_token: security_token.filter(|token| !token.is_empty()),
            expiration: None,
        }
    }

    /// Checks that every value can be sent in an HTTP header: printable ASCII without
    /// spaces, within the length limits.
    ///
    /// # Errors
    ///
    /// The name of the first value that cannot be sent (`the AccessKey id`, ...) and why, never
    /// the value itself.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        self.check_each(|field| field.name)
    }

    /// Checks every value as [`Credentials::check`] does, naming the first bad one with
    /// `label` of its field.
    pub(crate) fn check_each<L>(&self, label: impl Fn(&Field) -> L) -> Result<(), (L, String)> {
        let token = self.security_token.as_ref().map_or("", Secret::expose);
        for (field, value) in [
            (&ACCESS_KEY_ID, self.access_key_id.as_str()),
            (&ACCESS_KEY_SECRET, self.access_key_secret.expose()),
            (&SECURITY_TOKEN, token),
        ] {
            check_header_text(value, field.max_len).map_err(|reason| (label(field), reason))?;
        }
        Ok(())
    }
}

/// Checks that `value` has at most `max` characters, all printable ASCII without spaces, so
/// that it can be sent in a header. Never includes the value in the reason.
///
/// # Errors
///
/// Why the value cannot be sent.
pub fn check_header_text(value: &str, max: usize) -> Result<(), String> {
    if value.len() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if let Some(position) = value.chars().position(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "must be printable ASCII without spaces or control characters (character {} is not; \
             check for a trailing newline)",
            position + 1
        ));
    }
    Ok(())
}

/// A source of credentials, asked whenever the cached ones are about to expire or were
/// rejected.
#[async_trait::async_trait]
pub trait ProvideCredentials: Send + Sync + std::fmt::Debug {
    /// The provider's name as configured (`ecs_ram_role`, ...), for errors and logs.
    fn name(&self) -> &'static str;

    /// Fetches current credentials (I/O: environment, files, HTTP).
    ///
    /// # Errors
    ///
    /// What failed and what to check, never a secret.
    async fn fetch(&self) -> Result<Credentials, CredentialsError>;
}

/// Why no credentials could be had.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// A value the provider needs is not set.
    #[error("{provider} credentials: {what} is not set ({hint})")]
    Missing {
        /// The provider.
        provider: &'static str,
        /// What is missing.
        what: String,
        /// Where to set it.
        hint: String,
    },
    /// A file could not be read.
    #[error("{provider} credentials: cannot read {path}: {source} (check that the file exists and is readable by this process)")]
    File {
        /// The provider.
        provider: &'static str,
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A credentials service could not be reached.
    #[error("{provider} credentials: cannot reach {url}: {source} ({hint})")]
    Network {
        /// The provider.
        provider: &'static str,
        /// Where, without any query.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
        /// What to check.
        hint: &'static str,
    },
    /// A credentials service answered with an error.
    #[error("{provider} credentials: {url} answered {status}{code}: {message}")]
    Refused {
        /// The provider.
        provider: &'static str,
        /// Where, without any query.
        url: String,
        /// HTTP status.
        status: u16,
        /// The service's error code, as ` CODE` (empty when none).
        code: String,
        /// The service's message or what to check.
        message: String,
    },
    /// An answer or a file does not hold usable credentials.
    #[error("{provider} credentials: {source_name} {reason}")]
    Malformed {
        /// The provider.
        provider: &'static str,
        /// Where they came from (a URL or a file).
        source_name: String,
        /// What is wrong, never a value.
        reason: String,
    },
}

/// Credentials as the ECS metadata service, STS (inside `Credentials`) and credential files
/// spell them.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SessionCredentials {
    access_key_id: Option<String>,
    access_key_secret: Option<Secret>,
    #[serde(default)]
    security_token: Option<Secret>,
    #[serde(default)]
    expiration: Option<String>,
}

impl SessionCredentials {
    /// Checks and converts them; `temporary` requires a token and an expiration.
    fn into_credentials(
        self,
        provider: &'static str,
        source_name: &str,
        temporary: bool,
    ) -> Result<Credentials, CredentialsError> {
        let malformed = |reason: String| CredentialsError::Malformed {
            provider,
            source_name: source_name.to_owned(),
            reason,
        };
        let id = self.access_key_id.filter(|id| !id.is_empty());
        let secret = self.access_key_secret.filter(|secret| !secret.is_empty());
        let (Some(id), Some(secret)) = (id, secret) else {
            return Err(malformed(
                "has no AccessKeyId and AccessKeySecret".to_owned(),
            ));
        };
        let mut credentials = Credentials::new(id, secret, self.security_token);
        if temporary && credentials.security_token.is_none() {
            return Err(malformed("has no SecurityToken".to_owned()));
        }
        credentials.expiration = match self.expiration.as_deref() {
            Some(text) => Some(parse_expiration(text).ok_or_else(|| {
                malformed(format!(
                    "has an Expiration `{text}` that is not a UTC time like 2026-01-02T03:04:05Z"
                ))
            })?),
            None if temporary => return Err(malformed("has no Expiration".to_owned())),
            None => None,
        };
        credentials
            .check()
            .map_err(|(name, reason)| malformed(format!("holds {name}, which {reason}")))?;
        Ok(credentials)
    }
}

/// Parses a JSON answer or file; the error tells what kind of JSON problem it was, never an
/// excerpt of the input (it may hold secrets).
fn parse_json<T: serde::de::DeserializeOwned>(
    provider: &'static str,
    source_name: &str,
    bytes: &[u8],
) -> Result<T, CredentialsError> {
    serde_json::from_slice(bytes).map_err(|error| {
        let kind = match error.classify() {
            serde_json::error::Category::Io => "unreadable",
            serde_json::error::Category::Syntax => "a syntax error",
            serde_json::error::Category::Data => "a value of the wrong type",
            serde_json::error::Category::Eof => "cut short",
        };
        CredentialsError::Malformed {
            provider,
            source_name: source_name.to_owned(),
            reason: format!(
                "is not credentials JSON ({kind} at line {} column {})",
                error.line(),
                error.column()
            ),
        }
    })
}

/// Parses an expiration as the credential services write it: RFC 3339, e.g.
/// `2026-01-02T03:04:05Z`.
fn parse_expiration(text: &str) -> Option<SystemTime> {
    let time = chrono::DateTime::parse_from_rfc3339(text.trim()).ok()?;
    let seconds = u64::try_from(time.timestamp()).ok()?;
    let nanos = time.timestamp_subsec_nanos();
    Some(SystemTime::UNIX_EPOCH + Duration::new(seconds, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_neither_secret_nor_token() {
        let credentials =
            Credentials::new("id", Secret::new("hunter2"), Some(Secret::new("token-abc")));
        let text = format!("{credentials:?}");
        assert!(text.contains("\"id\""), "{text}");
        assert!(
            !text.contains("hunter2") && !text.contains("token-abc"),
            "{text}"
        );
    }

    #[test]
    fn session_answers_need_a_token_and_an_expiry_when_temporary() {
        let parse = |json: &str, temporary| {
            serde_json::from_str::<SessionCredentials>(json)
                .unwrap()
                .into_credentials("file", "f.json", temporary)
        };
        let full = r#"{"AccessKeyId":"STS.a","AccessKeySecret":"s3cr3t","SecurityToken":"tok","Expiration":"2026-01-02T03:04:05Z"}"#;
        let credentials = parse(full, true).unwrap();
        assert_eq!(
            credentials.expiration,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_323_045))
        );
        let error = parse(r#"{"AccessKeyId":"a","AccessKeySecret":"s3cr3t"}"#, true)
            .unwrap_err()
            .to_string();
        assert!(error.contains("no SecurityToken"), "{error}");
        assert!(parse(r#"{"AccessKeyId":"a","AccessKeySecret":"s3cr3t"}"#, false).is_ok());
        let bad = r#"{"AccessKeyId":"a","AccessKeySecret":"s3 cr3t","Expiration":"soon"}"#;
        let error = parse(bad, false).unwrap_err().to_string();
        assert!(
            error.contains("`soon`") && !error.contains("s3 cr3t"),
            "{error}"
        );
        let spaced = r#"{"AccessKeyId":"a","AccessKeySecret":"s3 cr3t"}"#;
        let error = parse(spaced, false).unwrap_err().to_string();
        assert!(
            error.contains("AccessKey secret") && !error.contains("s3 cr3t"),
            "{error}"
        );
    }
}

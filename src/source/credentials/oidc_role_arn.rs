//! The `oidc_role_arn` provider (Kubernetes RRSA on ACK): the pod's service-account token,
//! re-read from its file at every refresh, is exchanged for temporary credentials of a RAM
//! role with STS `AssumeRoleWithOIDC` (an unsigned RPC call, as the official credentials
//! libraries make it: common parameters in the query, the rest as a form body).

use std::path::PathBuf;
use std::time::Duration;

use percent_encoding::utf8_percent_encode;

use super::http;
use super::{parse_json, Credentials, CredentialsError, ProvideCredentials, SessionCredentials};
use crate::source::auth::v4::UNRESERVED;

/// The variables ACK sets in a pod with RRSA: role, OIDC provider, token file.
pub const ROLE_ARN_VARIABLE: &str = "ALIBABA_CLOUD_ROLE_ARN";
/// The OIDC provider's ARN.
pub const OIDC_PROVIDER_ARN_VARIABLE: &str = "ALIBABA_CLOUD_OIDC_PROVIDER_ARN";
/// The file holding the service-account token.
pub const OIDC_TOKEN_FILE_VARIABLE: &str = "ALIBABA_CLOUD_OIDC_TOKEN_FILE";
/// The session name, when set.
pub const ROLE_SESSION_NAME_VARIABLE: &str = "ALIBABA_CLOUD_ROLE_SESSION_NAME";
/// The STS region, for a regional endpoint (`sts.REGION.aliyuncs.com`).
pub const STS_REGION_VARIABLE: &str = "ALIBABA_CLOUD_STS_REGION";
/// `true` for the VPC endpoint of that region (`sts-vpc.REGION.aliyuncs.com`).
pub const VPC_ENDPOINT_VARIABLE: &str = "ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED";
/// The global STS endpoint.
pub const DEFAULT_STS_ENDPOINT: &str = "https://sts.aliyuncs.com";
const NAME: &str = "oidc_role_arn";
const HINT: &str = "check source.credentials.sts_endpoint and the network path to STS";

/// The settings of an `AssumeRoleWithOIDC` call.
#[derive(Debug, Clone)]
pub struct OidcRoleArnProvider {
    /// The RAM role to assume, `acs:ram::ACCOUNT:role/NAME`.
    pub role_arn: String,
    /// The OIDC identity provider, `acs:ram::ACCOUNT:oidc-provider/NAME`.
    pub oidc_provider_arn: String,
    /// The file holding the OIDC token.
    pub oidc_token_file: PathBuf,
    /// The session name (shows in audit trails).
    pub role_session_name: String,
    /// Lifetime asked for, in seconds.
    pub duration_seconds: u32,
    /// The STS endpoint, `https://HOST[:PORT]`.
    pub sts_endpoint: String,
    http: reqwest::Client,
}

impl OidcRoleArnProvider {
    /// A provider with these settings (checked by the configuration).
    pub fn new(
        role_arn: String,
        oidc_provider_arn: String,
        oidc_token_file: PathBuf,
        role_session_name: String,
        duration_seconds: u32,
        sts_endpoint: &str,
    ) -> Self {
        Self {
            role_arn,
            oidc_provider_arn,
            oidc_token_file,
            role_session_name,
            duration_seconds,
            sts_endpoint: sts_endpoint.trim_end_matches('/').to_owned(),
            http: http::client(Duration::from_secs(5), Duration::from_secs(10)),
        }
    }

    async fn token(&self) -> Result<String, CredentialsError> {
        let path = self.oidc_token_file.display().to_string();
        let token = tokio::fs::read_to_string(&self.oidc_token_file)
            .await
            .map_err(|source| CredentialsError::File {
                provider: NAME,
                path: path.clone(),
                source,
            })?;
        let token = token.trim();
        if token.is_empty() {
            return Err(CredentialsError::Malformed {
                provider: NAME,
                source_name: path,
                reason: "is empty (check the service-account token projection)".to_owned(),
            });
        }
        Ok(token.to_owned())
    }
}

/// The STS answers: credentials, or an error with its code.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsAnswer {
    #[serde(default)]
    credentials: Option<SessionCredentials>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    request_id: Option<String>,
}

/// Encodes `pairs` as an `application/x-www-form-urlencoded` body.
fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(key, value)| format!("{key}={}", utf8_percent_encode(value, UNRESERVED)))
        .collect::<Vec<_>>()
        .join("&")
}

#[async_trait::async_trait]
impl ProvideCredentials for OidcRoleArnProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn fetch(&self) -> Result<Credentials, CredentialsError> {
        let token = self.token().await?;
        let url = format!("{}/", self.sts_endpoint);
        let timestamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let duration = self.duration_seconds.to_string();
        let request = self
            .http
            .post(&url)
            .query(&[
                ("Action", "AssumeRoleWithOIDC"),
                ("Format", "JSON"),
                ("Version", "2015-04-01"),
                ("Timestamp", timestamp.as_str()),
            ])
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("RoleArn", &self.role_arn),
                ("OIDCProviderArn", &self.oidc_provider_arn),
                ("OIDCToken", &token),
                ("RoleSessionName", &self.role_session_name),
                ("DurationSeconds", &duration),
            ]));
        let answer = http::send(NAME, &url, request, HINT).await?;
        let parsed: Option<StsAnswer> = parse_json(NAME, &url, &answer.body).ok();
        match parsed {
            Some(StsAnswer {
                credentials: Some(credentials),
                ..
            }) if answer.status.is_success() => credentials.into_credentials(NAME, &url, true),
            Some(StsAnswer {
                code: Some(code),
                message,
                request_id,
                ..
            }) => Err(CredentialsError::Refused {
                provider: NAME,
                url,
                status: answer.status.as_u16(),
                code: format!(" {code}"),
                message: format!(
                    "{} (request id {}; check source.credentials.role_arn, oidc_provider_arn and the token file)",
                    message.unwrap_or_default().chars().take(300).collect::<String>(),
                    request_id.unwrap_or_default()
                ),
            }),
            _ => Err(CredentialsError::Refused {
                provider: NAME,
                url,
                status: answer.status.as_u16(),
                code: String::new(),
                message: format!("no credentials and no error code; {HINT}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_server::{credentials_json, TestServer};
    use super::*;

    fn provider(endpoint: &str, token_file: PathBuf) -> OidcRoleArnProvider {
        OidcRoleArnProvider::new(
            "acs:ram::123:role/siem".into(),
            "acs:ram::123:oidc-provider/ack".into(),
            token_file,
            "siem-test".into(),
            900,
            endpoint,
        )
    }

    #[tokio::test]
    async fn the_token_file_is_read_at_every_call_and_sent_as_the_sdks_send_it() {
        let server = TestServer::start(|request| {
            let token = request.form.get("OIDCToken").cloned().unwrap_or_default();
            let json = credentials_json(&format!("STS.{token}"));
            (
                200,
                format!(r#"{{"RequestId":"r-1","Credentials":{json}}}"#),
            )
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "jwt-one\n").unwrap();
        let sts = provider(&server.url, file.clone());
        assert_eq!(sts.fetch().await.unwrap().access_key_id, "STS.jwt-one");
        std::fs::write(&file, "jwt-two").unwrap();
        assert_eq!(sts.fetch().await.unwrap().access_key_id, "STS.jwt-two");
        let request = &server.received()[0];
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            ("POST", "/")
        );
        for (key, value) in [
            ("Action", "AssumeRoleWithOIDC"),
            ("Format", "JSON"),
            ("Version", "2015-04-01"),
        ] {
            assert_eq!(
                request.query.get(key).map(String::as_str),
                Some(value),
                "{key}"
            );
        }
        assert!(request.query["Timestamp"].ends_with('Z'));
        for (key, value) in [
            ("RoleArn", "acs:ram::123:role/siem"),
            ("OIDCProviderArn", "acs:ram::123:oidc-provider/ack"),
            ("OIDCToken", "jwt-one"),
            ("RoleSessionName", "siem-test"),
            ("DurationSeconds", "900"),
        ] {
            assert_eq!(
                request.form.get(key).map(String::as_str),
                Some(value),
                "{key}"
            );
        }
    }

    #[tokio::test]
    async fn sts_errors_are_reported_with_their_code_and_never_the_token() {
        let server = TestServer::start(|_| {
            (
                400,
                r#"{"Code":"AuthenticationFail.OIDCToken.Expired","Message":"The OIDC token has expired.","RequestId":"r-2"}"#.into(),
            )
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "jwt-secret-value").unwrap();
        let error = provider(&server.url, file.clone())
            .fetch()
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("oidc_role_arn credentials:")
                && error.contains("400 AuthenticationFail.OIDCToken.Expired: The OIDC token has expired. (request id r-2")
                && !error.contains("jwt-secret-value"),
            "{error}"
        );
        std::fs::write(&file, "  \n").unwrap();
        let error = provider(&server.url, file)
            .fetch()
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("is empty"), "{error}");
    }
}

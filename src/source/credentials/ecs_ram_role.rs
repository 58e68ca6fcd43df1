//! The `ecs_ram_role` provider: temporary credentials of the RAM role attached to an ECS
//! instance (or an ACK node), from the instance metadata service in its hardened mode
//! (IMDSv2): a session token from `PUT /latest/api/token`, then
//! `GET /latest/meta-data/ram/security-credentials/ROLE` with that token. Without a
//! configured role name, the attached role is discovered from
//! `GET /latest/meta-data/ram/security-credentials/`.

use std::time::Duration;

use super::http::{self, Answer};
use super::{parse_json, Credentials, CredentialsError, ProvideCredentials, SessionCredentials};

/// The instance metadata service of every ECS instance.
pub const DEFAULT_METADATA_ENDPOINT: &str = "http://100.100.100.200";
/// The variable the official libraries read the role name from.
pub const ROLE_NAME_VARIABLE: &str = "ALIBABA_CLOUD_ECS_METADATA";
/// How long a metadata session token lives (six hours, as the official libraries ask).
const METADATA_TOKEN_TTL_SECONDS: &str = "21600";
const TOKEN_PATH: &str = "/latest/api/token";
const ROLES_PATH: &str = "/latest/meta-data/ram/security-credentials/";
const NAME: &str = "ecs_ram_role";
const HINT: &str = "check that this runs on an ECS instance with a RAM role attached, or set source.credentials.metadata_endpoint";

/// Credentials of an instance's RAM role.
#[derive(Debug)]
pub struct EcsRamRoleProvider {
    endpoint: String,
    role_name: Option<String>,
    http: reqwest::Client,
}

impl EcsRamRoleProvider {
    /// Asks the metadata service at `endpoint` (`http://HOST[:PORT]`) for the credentials
    /// of `role_name`, or of the attached role when `None`.
    pub fn new(endpoint: &str, role_name: Option<String>) -> Self {
        Self {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            role_name,
            http: http::client(Duration::from_secs(2), Duration::from_secs(5)),
        }
    }

    async fn get(&self, path: &str, token: &str) -> Result<(String, Answer), CredentialsError> {
        let url = format!("{}{path}", self.endpoint);
        let request = self
            .http
            .get(&url)
            .header("X-aliyun-ecs-metadata-token", token);
        let answer = http::send(NAME, &url, request, HINT).await?;
        Ok((url, answer))
    }

    async fn metadata_token(&self) -> Result<String, CredentialsError> {
        let url = format!("{}{TOKEN_PATH}", self.endpoint);
        let request = self.http.put(&url).header(
            "X-aliyun-ecs-metadata-token-ttl-seconds",
            METADATA_TOKEN_TTL_SECONDS,
        );
        let answer = http::send(NAME, &url, request, HINT).await?;
        let token = String::from_utf8_lossy(&answer.body).trim().to_owned();
        if !answer.status.is_success() || token.is_empty() {
            return Err(refused(&url, &answer, "no metadata token (IMDSv2)"));
        }
        Ok(token)
    }

    async fn attached_role(&self, token: &str) -> Result<String, CredentialsError> {
        let (url, answer) = self.get(ROLES_PATH, token).await?;
        let roles = String::from_utf8_lossy(&answer.body);
        let role = roles.lines().map(str::trim).find(|line| !line.is_empty());
        match role {
            Some(role) if answer.status.is_success() => Ok(role.to_owned()),
            _ if answer.status.is_success() || answer.status == 404 => {
                Err(CredentialsError::Missing {
                    provider: NAME,
                    what: "a RAM role attached to this instance".to_owned(),
                    hint: "attach one to the instance, or set source.credentials.role_name"
                        .to_owned(),
                })
            }
            _ => Err(refused(&url, &answer, "no role list")),
        }
    }
}

/// The error for an unexpected metadata answer; the body is not shown (it may hold secrets).
fn refused(url: &str, answer: &Answer, what: &str) -> CredentialsError {
    CredentialsError::Refused {
        provider: NAME,
        url: url.to_owned(),
        status: answer.status.as_u16(),
        code: String::new(),
        message: format!("{what}; {HINT}"),
    }
}

/// The metadata service's answer: the credentials and `Code`.
#[derive(serde::Deserialize)]
struct MetadataAnswer {
    #[serde(rename = "Code", default)]
    code: Option<String>,
    #[serde(flatten)]
    credentials: SessionCredentials,
}

#[async_trait::async_trait]
impl ProvideCredentials for EcsRamRoleProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn fetch(&self) -> Result<Credentials, CredentialsError> {
        let token = self.metadata_token().await?;
        let role = match &self.role_name {
            Some(role) => role.clone(),
            None => self.attached_role(&token).await?,
        };
        let (url, answer) = self.get(&format!("{ROLES_PATH}{role}"), &token).await?;
        if answer.status == 404 {
            return Err(refused(
                &url,
                &answer,
                &format!("no RAM role `{role}` is attached to this instance (check source.credentials.role_name)"),
            ));
        }
        if !answer.status.is_success() {
            return Err(refused(&url, &answer, "no credentials"));
        }
        let parsed: MetadataAnswer = parse_json(NAME, &url, &answer.body)?;
        match parsed.code.as_deref() {
            Some("Success") => parsed.credentials.into_credentials(NAME, &url, true),
            code => Err(CredentialsError::Refused {
                provider: NAME,
                url: url.clone(),
                status: answer.status.as_u16(),
                code: format!(" {}", code.unwrap_or("(no Code)")),
                message: "the metadata service did not hand out credentials".to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_server::{credentials_json, TestServer};
    use super::*;
    use crate::common::Secret;

    /// A metadata service with role `siem` that wants an IMDSv2 token.
    async fn metadata(code: &'static str) -> TestServer {
        TestServer::start(move |request| {
            let token = request
                .headers
                .get("x-aliyun-ecs-metadata-token")
                .and_then(|v| v.to_str().ok());
            match (request.method.as_str(), request.path.as_str()) {
                ("PUT", TOKEN_PATH) => {
                    let ttl = request
                        .headers
                        .get("x-aliyun-ecs-metadata-token-ttl-seconds");
                    match ttl {
                        Some(_) => (200, "imds-token".into()),
                        None => (400, String::new()),
                    }
                }
                _ if token != Some("imds-token") => (401, String::new()),
                ("GET", ROLES_PATH) => (200, "siem\n".into()),
                ("GET", "/latest/meta-data/ram/security-credentials/siem") => {
                    let json = credentials_json("STS.ecs");
                    (
                        200,
                        json.replacen('{', &format!(r#"{{"Code":"{code}","#), 1),
                    )
                }
                _ => (404, "not found".into()),
            }
        })
        .await
    }

    #[tokio::test]
    async fn the_attached_role_is_found_and_asked_with_an_imdsv2_token() {
        let server = metadata("Success").await;
        let credentials = EcsRamRoleProvider::new(&server.url, None)
            .fetch()
            .await
            .unwrap();
        assert_eq!(credentials.access_key_id, "STS.ecs");
        assert_eq!(credentials.access_key_secret.expose(), "secret-STS.ecs");
        assert_eq!(
            credentials.security_token.as_ref().map(Secret::expose),
            Some("token-STS.ecs")
        );
        assert!(credentials.expiration.is_some());
        let paths: Vec<_> = server.received().iter().map(|r| r.path.clone()).collect();
        assert_eq!(
            paths,
            [
                TOKEN_PATH,
                ROLES_PATH,
                "/latest/meta-data/ram/security-credentials/siem"
            ]
        );
        let named = EcsRamRoleProvider::new(&format!("{}/", server.url), Some("siem".into()));
        assert_eq!(named.fetch().await.unwrap().access_key_id, "STS.ecs");
    }

    #[tokio::test]
    async fn a_wrong_role_or_a_failed_answer_says_what_to_check() {
        let server = metadata("Success").await;
        let error = EcsRamRoleProvider::new(&server.url, Some("other".into()))
            .fetch()
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("ecs_ram_role credentials:")
                && error.contains("404")
                && error.contains("no RAM role `other`"),
            "{error}"
        );
        let failing = metadata("Failed").await;
        let error = EcsRamRoleProvider::new(&failing.url, None)
            .fetch()
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("200 Failed"), "{error}");
        assert!(
            !error.contains("secret-STS.ecs") && !error.contains("token-STS"),
            "{error}"
        );
        let error = EcsRamRoleProvider::new("http://127.0.0.1:1", None)
            .fetch()
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("cannot reach http://127.0.0.1:1/latest/api/token"),
            "{error}"
        );
    }
}

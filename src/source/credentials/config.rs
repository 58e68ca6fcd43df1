//! The `[source.credentials]` table: which provider, and its settings, checked at start-up.

use std::path::PathBuf;

use serde::Deserialize;

use crate::common::Secret;
use crate::encoding::field::InvalidSetting;

use super::ecs_ram_role::{self, EcsRamRoleProvider};
use super::environment::EnvironmentProvider;
use super::file::FileProvider;
use super::oidc_role_arn::{self as oidc, OidcRoleArnProvider};
use super::static_keys::StaticProvider;
use super::{Credentials, CredentialsCache};

/// Where the source's credentials come from: `provider = "..."` and that provider's keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "provider", rename_all = "snake_case")]
pub enum CredentialsConfig {
    /// An AccessKey pair (and STS token) written in the configuration.
    Static(StaticConfig),
    /// `ALIBABA_CLOUD_ACCESS_KEY_ID` / `_SECRET` / `ALIBABA_CLOUD_SECURITY_TOKEN`, else
    /// `SLS_AK_ID` / `SLS_AK_KEY`, read again at every refresh.
    Environment(EnvironmentConfig),
    /// The RAM role of the ECS instance, from the instance metadata service.
    EcsRamRole(EcsRamRoleConfig),
    /// A RAM role assumed with the pod's OIDC token (Kubernetes RRSA).
    OidcRoleArn(OidcRoleArnConfig),
    /// A JSON file kept up to date by another program.
    File(FileConfig),
}

/// `provider = "static"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// AccessKey id: printable ASCII without spaces, at most 128 characters.
    pub access_key_id: String,
    /// AccessKey secret (never logged): printable ASCII without spaces, at most 256 characters.
    pub access_key_secret: Secret,
    /// STS token (never logged), at most 8192 characters; empty means none. A static token
    /// stops working when it expires: prefer a provider that refreshes it.
    #[serde(default)]
    pub security_token: Option<Secret>,
}

/// `provider = "environment"`: no keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentConfig {}

/// `provider = "ecs_ram_role"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EcsRamRoleConfig {
    /// The RAM role's name. Default: `ALIBABA_CLOUD_ECS_METADATA`, else the role attached to
    /// the instance, asked from the metadata service.
    #[serde(default)]
    pub role_name: Option<String>,
    /// The metadata service, `http://HOST[:PORT]`. Default `http://100.100.100.200`.
    #[serde(default)]
    pub metadata_endpoint: Option<String>,
}

/// `provider = "oidc_role_arn"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcRoleArnConfig {
    /// The RAM role to assume (`acs:ram::ACCOUNT:role/NAME`). Default:
    /// `ALIBABA_CLOUD_ROLE_ARN`.
    #[serde(default)]
    pub role_arn: Option<String>,
    /// The OIDC provider (`acs:ram::ACCOUNT:oidc-provider/NAME`). Default:
    /// `ALIBABA_CLOUD_OIDC_PROVIDER_ARN`.
    #[serde(default)]
    pub oidc_provider_arn: Option<String>,
    /// The file holding the OIDC token, re-read at every refresh. Default:
    /// `ALIBABA_CLOUD_OIDC_TOKEN_FILE`.
    #[serde(default)]
    pub oidc_token_file: Option<PathBuf>,
    /// Session name, 2 to 64 letters, digits and `.@-_`. Default:
    /// `ALIBABA_CLOUD_ROLE_SESSION_NAME`, else `siem-forwarder-UNIXTIME`.
    #[serde(default)]
    pub role_session_name: Option<String>,
    /// Lifetime asked for, 900 to 43200 seconds. Default 3600.
    #[serde(default)]
    pub duration_seconds: Option<u32>,
    /// STS endpoint, `https://HOST[:PORT]`. Default: `sts[-vpc].REGION.aliyuncs.com` when a
    /// region is set (`sts_region` or `ALIBABA_CLOUD_STS_REGION`; `-vpc` with
    /// `vpc_endpoint = true` or `ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED=true`), else
    /// `https://sts.aliyuncs.com`.
    #[serde(default)]
    pub sts_endpoint: Option<String>,
    /// The region of the STS endpoint, e.g. `cn-hangzhou`.
    #[serde(default)]
    pub sts_region: Option<String>,
    /// Use the VPC endpoint of `sts_region`.
    #[serde(default)]
    pub vpc_endpoint: Option<bool>,
}

/// `provider = "file"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The JSON file: `{"AccessKeyId", "AccessKeySecret", "SecurityToken"?, "Expiration"?}`.
    pub path: PathBuf,
}

/// The source's credentials, resolved.
#[derive(Debug, Clone)]
pub enum SourceCredentials {
    /// Fixed keys (also what the embedded log service accepts).
    Static(Credentials),
    /// A provider asked at run time.
    Provider(CredentialsCache),
}

impl SourceCredentials {
    /// The cache the client asks before every request.
    pub fn cache(&self) -> CredentialsCache {
        match self {
            Self::Static(credentials) => {
                CredentialsCache::new(StaticProvider::new(credentials.clone()))
            }
            Self::Provider(cache) => cache.clone(),
        }
    }
}

/// Shortest and longest accepted `duration_seconds` (the STS limits).
const DURATION_SECONDS: (u32, u32) = (900, 43_200);
const DEFAULT_DURATION_SECONDS: u32 = 3600;

fn invalid(key: &str, reason: impl Into<String>) -> InvalidSetting {
    InvalidSetting::new(format!("source.credentials.{key}"), reason)
}

/// Checks static keys; `key_prefix` is where they are written (`source.` or
/// `source.credentials.`).
///
/// # Errors
///
/// The offending key and why, never the value.
pub fn check_static(credentials: &Credentials, key_prefix: &str) -> Result<(), InvalidSetting> {
    credentials
        .check_each(|field| field.key)
        .map_err(|(key, reason)| InvalidSetting::new(format!("{key_prefix}{key}"), reason))
}

impl CredentialsConfig {
    /// The provider's name as written in `provider = "..."`.
    pub fn provider(&self) -> &'static str {
        match self {
            Self::Static(_) => "static",
            Self::Environment(_) => "environment",
            Self::EcsRamRole(_) => "ecs_ram_role",
            Self::OidcRoleArn(_) => "oidc_role_arn",
            Self::File(_) => "file",
        }
    }

    /// Checks the settings, applies the environment fallbacks (`lookup` reads a variable)
    /// and builds the provider.
    ///
    /// # Errors
    ///
    /// The offending `source.credentials.*` key and why.
    pub fn resolve(
        &self,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<SourceCredentials, InvalidSetting> {
        let env = |name: &str| lookup(name).filter(|value| !value.is_empty());
        let provider = match self {
            Self::Static(keys) => {
                for (key, empty) in [
                    ("access_key_id", keys.access_key_id.is_empty()),
                    ("access_key_secret", keys.access_key_secret.is_empty()),
                ] {
                    if empty {
                        return Err(invalid(key, "must not be empty"));
                    }
                }
                let credentials = Credentials::new(
                    keys.access_key_id.clone(),
                    keys.access_key_secret.clone(),
                    keys.security_token.clone(),
                );
                check_static(&credentials, "source.credentials.")?;
                return Ok(SourceCredentials::Static(credentials));
            }
            Self::Environment(EnvironmentConfig {}) => {
                CredentialsCache::new(EnvironmentProvider::new())
            }
            Self::EcsRamRole(settings) => {
                let role_name = settings
                    .role_name
                    .clone()
                    .or_else(|| env(ecs_ram_role::ROLE_NAME_VARIABLE));
                if let Some(role) = &role_name {
                    check_role_name(role).map_err(|reason| invalid("role_name", reason))?;
                }
                let endpoint = endpoint(
                    settings.metadata_endpoint.as_deref(),
                    ecs_ram_role::DEFAULT_METADATA_ENDPOINT,
                    "http",
                )
                .map_err(|reason| invalid("metadata_endpoint", reason))?;
                CredentialsCache::new(EcsRamRoleProvider::new(&endpoint, role_name))
            }
            Self::OidcRoleArn(settings) => CredentialsCache::new(settings.provider(&env)?),
            Self::File(FileConfig { path }) => {
                if path.as_os_str().is_empty() {
                    return Err(invalid("path", "must not be empty"));
                }
                CredentialsCache::new(FileProvider::new(path.clone()))
            }
        };
        Ok(SourceCredentials::Provider(provider))
    }
}

impl OidcRoleArnConfig {
    fn provider(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<OidcRoleArnProvider, InvalidSetting> {
        let required = |value: &Option<String>, key: &str, variable: &str| {
            value
                .clone()
                .filter(|v| !v.is_empty())
                .or_else(|| env(variable))
                .ok_or_else(|| {
                    invalid(
                        key,
                        format!("is missing (set it, or the {variable} environment variable that RRSA sets in the pod)"),
                    )
                })
        };
        let role_arn = required(&self.role_arn, "role_arn", oidc::ROLE_ARN_VARIABLE)?;
        check_arn(&role_arn, ":role/").map_err(|reason| invalid("role_arn", reason))?;
        let provider_arn = required(
            &self.oidc_provider_arn,
            "oidc_provider_arn",
            oidc::OIDC_PROVIDER_ARN_VARIABLE,
        )?;
        check_arn(&provider_arn, ":oidc-provider/")
            .map_err(|reason| invalid("oidc_provider_arn", reason))?;
        let token_file = match &self.oidc_token_file {
            Some(path) if !path.as_os_str().is_empty() => path.clone(),
            _ => PathBuf::from(required(
                &None,
                "oidc_token_file",
                oidc::OIDC_TOKEN_FILE_VARIABLE,
            )?),
        };
        let session_name = self
            .role_session_name
            .clone()
            .or_else(|| env(oidc::ROLE_SESSION_NAME_VARIABLE))
            .unwrap_or_else(|| format!("siem-forwarder-{}", chrono::Utc::now().timestamp()));
        check_session_name(&session_name).map_err(|reason| invalid("role_session_name", reason))?;
        let duration = self.duration_seconds.unwrap_or(DEFAULT_DURATION_SECONDS);
        let (shortest, longest) = DURATION_SECONDS;
        if !(shortest..=longest).contains(&duration) {
            return Err(invalid(
                "duration_seconds",
                format!("must be between {shortest} and {longest} (STS limits), got {duration}"),
            ));
        }
        let region = self
            .sts_region
            .clone()
            .or_else(|| env(oidc::STS_REGION_VARIABLE));
        if let Some(region) = &region {
            if !crate::source::auth::v4::valid_region(region) {
                return Err(invalid(
                    "sts_region",
                    format!("`{region}` is not a region id, e.g. `cn-hangzhou`"),
                ));
            }
        }
        let vpc = self.vpc_endpoint.unwrap_or_else(|| {
            env(oidc::VPC_ENDPOINT_VARIABLE).is_some_and(|v| v.eq_ignore_ascii_case("true"))
        });
        let regional = region.map(|region| {
            let prefix = if vpc { "sts-vpc" } else { "sts" };
            format!("https://{prefix}.{region}.aliyuncs.com")
        });
        let sts_endpoint = endpoint(
            self.sts_endpoint.as_deref(),
            regional.as_deref().unwrap_or(oidc::DEFAULT_STS_ENDPOINT),
            "https",
        )
        .map_err(|reason| invalid("sts_endpoint", reason))?;
        Ok(OidcRoleArnProvider::new(
            role_arn,
            provider_arn,
            token_file,
            session_name,
            duration,
            &sts_endpoint,
        ))
    }
}

/// `value` (else `default`) as `scheme://HOST[:PORT]`, `scheme` added when none is written.
fn endpoint(value: Option<&str>, default: &str, scheme: &str) -> Result<String, String> {
    let value = value.map_or(default, str::trim);
    let with_scheme = if value.contains("://") {
        value.to_owned()
    } else {
        format!("{scheme}://{value}")
    };
    crate::source::config::check_endpoint(&with_scheme)?;
    Ok(with_scheme.trim_end_matches('/').to_owned())
}

/// RAM role names: 1 to 64 letters, digits, `.` and `-`.
fn check_role_name(role: &str) -> Result<(), String> {
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-';
    if role.is_empty() || role.len() > 64 || !role.chars().all(valid) {
        return Err(format!(
            "`{role}` is not a RAM role name: 1 to 64 letters, digits, `.` and `-`"
        ));
    }
    Ok(())
}

/// An ARN of the form `acs:ram::ACCOUNT{kind}NAME`.
fn check_arn(arn: &str, kind: &str) -> Result<(), String> {
    let printable = arn.chars().all(|c| c.is_ascii_graphic());
    if !arn.starts_with("acs:ram::") || !arn.contains(kind) || !printable || arn.len() > 512 {
        return Err(format!(
            "`{arn}` is not an ARN like acs:ram::ACCOUNT{kind}NAME"
        ));
    }
    Ok(())
}

/// STS session names: 2 to 64 letters, digits and `.@-_`.
fn check_session_name(name: &str) -> Result<(), String> {
    let valid = |c: char| c.is_ascii_alphanumeric() || ".@-_".contains(c);
    if !(2..=64).contains(&name.len()) || !name.chars().all(valid) {
        return Err(format!(
            "`{name}` is not a session name: 2 to 64 letters, digits and `.@-_`"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oidc(text: &str, env: &[(&str, &str)]) -> Result<OidcRoleArnProvider, InvalidSetting> {
        let config: OidcRoleArnConfig = toml::from_str(text).unwrap();
        let lookup = |name: &str| {
            env.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        };
        config.provider(&lookup)
    }

    const RRSA: &[(&str, &str)] = &[
        ("ALIBABA_CLOUD_ROLE_ARN", "acs:ram::1:role/siem"),
        (
            "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
            "acs:ram::1:oidc-provider/ack",
        ),
        ("ALIBABA_CLOUD_OIDC_TOKEN_FILE", "/var/run/secrets/token"),
    ];

    #[test]
    fn oidc_settings_come_from_the_rrsa_variables_unless_configured() {
        let provider = oidc("", RRSA).unwrap();
        assert_eq!(provider.role_arn, "acs:ram::1:role/siem");
        assert_eq!(provider.oidc_provider_arn, "acs:ram::1:oidc-provider/ack");
        assert_eq!(
            provider.oidc_token_file,
            PathBuf::from("/var/run/secrets/token")
        );
        assert_eq!(provider.duration_seconds, 3600);
        assert_eq!(provider.sts_endpoint, "https://sts.aliyuncs.com");
        assert!(provider.role_session_name.starts_with("siem-forwarder-"));
        let provider = oidc(
            "role_arn = \"acs:ram::2:role/other\"\noidc_token_file = \"/t\"\n\
             role_session_name = \"pod-1\"\nduration_seconds = 900",
            RRSA,
        )
        .unwrap();
        assert_eq!(provider.role_arn, "acs:ram::2:role/other");
        assert_eq!(provider.oidc_token_file, PathBuf::from("/t"));
        assert_eq!(provider.role_session_name, "pod-1");
        assert_eq!(provider.duration_seconds, 900);
    }

    #[test]
    fn the_sts_endpoint_follows_region_and_vpc_settings() {
        let endpoint = |text: &str, extra: &[(&'static str, &'static str)]| {
            let env: Vec<_> = RRSA.iter().chain(extra).copied().collect();
            oidc(text, &env).map(|provider| provider.sts_endpoint)
        };
        let region = [("ALIBABA_CLOUD_STS_REGION", "cn-shanghai")];
        assert_eq!(
            endpoint("", &region).unwrap(),
            "https://sts.cn-shanghai.aliyuncs.com"
        );
        let vpc = [
            ("ALIBABA_CLOUD_STS_REGION", "cn-shanghai"),
            ("ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED", "true"),
        ];
        assert_eq!(
            endpoint("", &vpc).unwrap(),
            "https://sts-vpc.cn-shanghai.aliyuncs.com"
        );
        assert_eq!(
            endpoint("sts_region = \"cn-beijing\"\nvpc_endpoint = false", &vpc).unwrap(),
            "https://sts.cn-beijing.aliyuncs.com"
        );
        assert_eq!(
            endpoint("sts_endpoint = \"http://127.0.0.1:9000/\"", &vpc).unwrap(),
            "http://127.0.0.1:9000"
        );
        assert_eq!(
            endpoint("sts_endpoint = \"sts.example.com\"", &[]).unwrap(),
            "https://sts.example.com"
        );
    }

    #[test]
    fn bad_oidc_settings_name_their_key() {
        for (text, env, key) in [
            ("", &[][..], "role_arn"),
            ("role_arn = \"arn:aws:iam::1:role/x\"", RRSA, "role_arn"),
            (
                "oidc_provider_arn = \"acs:ram::1:role/x\"",
                RRSA,
                "oidc_provider_arn",
            ),
            ("duration_seconds = 899", RRSA, "duration_seconds"),
            ("duration_seconds = 43201", RRSA, "duration_seconds"),
            ("role_session_name = \"a b\"", RRSA, "role_session_name"),
            ("sts_region = \"CN/x\"", RRSA, "sts_region"),
            ("sts_endpoint = \"https://sts/x\"", RRSA, "sts_endpoint"),
        ] {
            let error = oidc(text, env).unwrap_err();
            assert_eq!(error.key, format!("source.credentials.{key}"), "{text}");
        }
        let error = oidc("", &RRSA[..2]).unwrap_err();
        assert_eq!(error.key, "source.credentials.oidc_token_file");
        assert!(
            error.reason.contains("ALIBABA_CLOUD_OIDC_TOKEN_FILE"),
            "{error}"
        );
    }
}

//! The `[source]` section: which log service, project and logstores, and the credentials.
//! Missing values fall back to the environment variables the seed program used:
//! `SLS_ENDPOINT`, `SLS_PROJECT`, `SLS_LOGSTORE`, `SLS_AK_ID`, `SLS_AK_KEY`.

use std::path::PathBuf;

use serde::Deserialize;

use crate::common::units::check_within;
use crate::common::Secret;
use crate::encoding::field::InvalidSetting;
use crate::local_server::DEFAULT_REGION;
use crate::source::auth::{SignatureVersion, Signing};
use crate::source::client::DEFAULT_MAX_INFLIGHT_REQUESTS;
use crate::source::credentials::config::{check_static, SourceCredentials};
use crate::source::credentials::{Credentials, CredentialsConfig};

/// The endpoint value that starts the embedded log service in-process.
pub const LOCAL_ENDPOINT: &str = "local";

/// Where logs come from.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// `https://cn-hangzhou.log.aliyuncs.com`, `http://127.0.0.1:PORT`, or `local` to start the
    /// embedded log service: `[http[s]://]HOST[:PORT]` without a path, query or user.
    /// Env fallback `SLS_ENDPOINT`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Project: 3 to 63 lowercase letters, digits and `-`, starting and ending with a letter
    /// or digit. Env fallback `SLS_PROJECT`; default `siem-demo` with `endpoint = "local"`.
    #[serde(default)]
    pub project: Option<String>,
    /// Logstores to consume, all with the same consumer group: 1 to 200 distinct names of 3 to
    /// 63 lowercase letters, digits, `-` and `_`, starting and ending with a letter or digit.
    /// Env fallback `SLS_LOGSTORE` (one name).
    #[serde(default)]
    pub logstores: Vec<String>,
    /// AccessKey id: printable ASCII without spaces, at most 128 characters. Env fallback
    /// `SLS_AK_ID`. Not with `[source.credentials]`.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// AccessKey secret (never logged): printable ASCII without spaces, at most 256
    /// characters. Env fallback `SLS_AK_KEY`.
    #[serde(default)]
    pub access_key_secret: Option<Secret>,
    /// STS security token for temporary credentials (never logged): printable ASCII without
    /// spaces, at most 8192 characters. Empty means none (e.g. `"${SLS_STS_TOKEN:-}"`).
    #[serde(default)]
    pub security_token: Option<Secret>,
    /// Where credentials come from, refreshed while running (`[source.credentials]` with
    /// `provider = "static" | "environment" | "ecs_ram_role" | "oidc_role_arn" | "file"`).
    /// Without it, the three keys above (or `SLS_AK_ID` / `SLS_AK_KEY`) are used as they are.
    #[serde(default)]
    pub credentials: Option<CredentialsConfig>,
    /// Request signature: `"v1"` (HMAC-SHA1) or `"v4"` (`SLS4-HMAC-SHA256`, scoped to
    /// `region`). Default v1, except v4 for dedicated-cloud regions (`-acdr-ut-`), which
    /// accept only v4.
    #[serde(default)]
    pub signature_version: Option<SignatureVersion>,
    /// Region of the endpoint for signature v4, e.g. `cn-hangzhou`. Default: derived from a
    /// standard endpoint (`REGION[-intranet|-share|-vpc].log.aliyuncs.com`); required with v4 for
    /// any other endpoint. With `endpoint = "local"` the embedded service answers as this
    /// region (default `cn-hangzhou`).
    #[serde(default)]
    pub region: Option<String>,
    /// Requests this process sends to the log service at once, 1 to 1024; each holds a
    /// connection, so this bounds the connections however many shards the process holds.
    /// Further requests (pulls, cursors, checkpoint reads and commits) wait their turn;
    /// heartbeats never wait, and add one connection per logstore at most. Default 64.
    #[serde(default)]
    pub max_inflight_requests: Option<usize>,
    /// Settings of the embedded log service when `endpoint = "local"`.
    #[serde(default)]
    pub local: LocalSourceConfig,
}

/// The embedded log service used with `endpoint = "local"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSourceConfig {
    /// Where it stores shards and checkpoints; not empty. Default `./siem-forwarder-data`.
    #[serde(default = "default_local_dir")]
    pub data_dir: PathBuf,
    /// Shards of each logstore it creates, 1 to 256. Default 4.
    #[serde(default = "default_local_shards")]
    pub shards: u32,
    /// Generated audit logs written to each logstore that is empty at start, 0 to 1000000.
    /// Default 0.
    #[serde(default)]
    pub generate: usize,
}

fn default_local_dir() -> PathBuf {
    PathBuf::from("siem-forwarder-data")
}

fn default_local_shards() -> u32 {
    4
}

impl Default for LocalSourceConfig {
    fn default() -> Self {
        Self {
            data_dir: default_local_dir(),
            shards: default_local_shards(),
            generate: 0,
        }
    }
}

/// The source with every fallback applied.
#[derive(Debug, Clone)]
pub struct ResolvedSource {
    /// Endpoint (`local` for the embedded service).
    pub endpoint: String,
    /// Project.
    pub project: String,
    /// Logstores.
    pub logstores: Vec<String>,
    /// Where the credentials come from.
    pub credentials: SourceCredentials,
    /// How requests are signed.
    pub signing: Signing,
    /// The region the embedded log service answers as (with `endpoint = "local"`).
    pub local_region: String,
    /// Requests sent to the log service at once.
    pub max_inflight_requests: usize,
}

/// Most logstores one process consumes (a project holds at most 200).
const MAX_LOGSTORES: usize = 200;
/// Bounds of `[source.local]` values.
const MAX_LOCAL_SHARDS: u32 = 256;
const MAX_LOCAL_GENERATE: usize = 1_000_000;
/// Most requests in flight at once (each costs a connection and a file descriptor).
const MAX_INFLIGHT_REQUESTS: usize = 1024;

impl SourceConfig {
    /// Applies the environment fallbacks (`lookup` reads a variable) and checks every value:
    /// names follow the log service's naming rules, credentials can be sent in HTTP headers,
    /// the endpoint is a usable URL.
    ///
    /// # Errors
    ///
    /// The offending key (`source.project`, ...) and why; a missing value names its
    /// environment variable. Credential values are never part of the message.
    pub fn resolve(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<ResolvedSource, InvalidSetting> {
        let missing = |key: &str, variable: &str| {
            InvalidSetting::new(
                format!("source.{key}"),
                format!("is missing (set it, or the {variable} environment variable)"),
            )
        };
        let pick = |value: &Option<String>, key: &str, variable: &str| {
            value
                .clone()
                .filter(|v| !v.is_empty())
                .or_else(|| lookup(variable).filter(|v| !v.is_empty()))
                .ok_or_else(|| missing(key, variable))
        };
        let endpoint = pick(&self.endpoint, "endpoint", "SLS_ENDPOINT")?;
        let local = endpoint == LOCAL_ENDPOINT;
        if !local {
            check_endpoint(&endpoint)
                .map_err(|reason| InvalidSetting::new("source.endpoint", reason))?;
        }
        let local_region = self.region.as_deref().unwrap_or(DEFAULT_REGION);
        let signing = Signing::resolve(
            self.signature_version,
            if local {
                Some(local_region)
            } else {
                self.region.as_deref()
            },
            &endpoint,
        )
        .map_err(|error| InvalidSetting::new("source.region", error.to_string()))?;
        let project = if local {
            self.project
                .clone()
                .unwrap_or_else(|| "siem-demo".to_owned())
        } else {
            pick(&self.project, "project", "SLS_PROJECT")?
        };
        check_name(&project, false).map_err(|reason| {
            InvalidSetting::new("source.project", format!("`{project}` {reason}"))
        })?;
        let logstores = if self.logstores.is_empty() {
            vec![pick(&None, "logstores", "SLS_LOGSTORE")?]
        } else {
            self.logstores.clone()
        };
        check_logstores(&logstores)
            .map_err(|reason| InvalidSetting::new("source.logstores", reason))?;
        if local {
            self.local.check()?;
        }
        let max_inflight_requests = self
            .max_inflight_requests
            .unwrap_or(DEFAULT_MAX_INFLIGHT_REQUESTS);
        check_within(max_inflight_requests, 1, MAX_INFLIGHT_REQUESTS)
            .map_err(|reason| InvalidSetting::new("source.max_inflight_requests", reason))?;
        let credentials = match &self.credentials {
            Some(table) => self.credentials_table(table, local, &lookup)?,
            None => SourceCredentials::Static(self.top_level_keys(local, &lookup)?),
        };
        Ok(ResolvedSource {
            endpoint,
            project,
            logstores,
            credentials,
            signing,
            local_region: local_region.to_owned(),
            max_inflight_requests,
        })
    }

    /// The `[source.credentials]` table, refused next to the top-level keys, and with the
    /// embedded service (which accepts only static keys) unless static.
    fn credentials_table(
        &self,
        table: &CredentialsConfig,
        local: bool,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<SourceCredentials, InvalidSetting> {
        let set = |value: Option<&str>| value.is_some_and(|v| !v.is_empty());
        let top_level: Vec<&str> = [
            ("access_key_id", set(self.access_key_id.as_deref())),
            (
                "access_key_secret",
                set(self.access_key_secret.as_ref().map(Secret::expose)),
            ),
            (
                "security_token",
                set(self.security_token.as_ref().map(Secret::expose)),
            ),
        ]
        .into_iter()
        .filter_map(|(key, set)| set.then_some(key))
        .collect();
        if !top_level.is_empty() {
            return Err(InvalidSetting::new(
                "source.credentials",
                format!(
                    "cannot be combined with source.{}: move the keys into [source.credentials] \
                     with provider = \"static\", or remove the table",
                    top_level.join(", source.")
                ),
            ));
        }
        if local && !matches!(table, CredentialsConfig::Static(_)) {
            return Err(InvalidSetting::new(
                "source.credentials.provider",
                format!(
                    "`{}` cannot be used with endpoint = \"local\": the embedded log service \
                     accepts only static keys",
                    table.provider()
                ),
            ));
        }
        table.resolve(lookup)
    }

    /// Today's top-level keys with their environment fallbacks (`SLS_AK_ID`, `SLS_AK_KEY`);
    /// fixed `local` keys for the embedded service.
    fn top_level_keys(
        &self,
        local: bool,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Credentials, InvalidSetting> {
        let fallback = |value: Option<&str>, key: &str, variable: &str| {
            value
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .or_else(|| lookup(variable).filter(|v| !v.is_empty()))
                .ok_or_else(|| {
                    InvalidSetting::new(
                        format!("source.{key}"),
                        format!("is missing (set it, or the {variable} environment variable)"),
                    )
                })
        };
        let (id, secret) = if local {
            (
                self.access_key_id
                    .clone()
                    .unwrap_or_else(|| "local".to_owned()),
                self.access_key_secret
                    .clone()
                    .unwrap_or_else(|| Secret::new("local-secret")),
            )
        } else {
            let secret = fallback(
                self.access_key_secret.as_ref().map(Secret::expose),
                "access_key_secret",
                "SLS_AK_KEY",
            )?;
            let id = fallback(self.access_key_id.as_deref(), "access_key_id", "SLS_AK_ID")?;
            (id, Secret::new(secret))
        };
        let credentials = Credentials::new(id, secret, self.security_token.clone());
        check_static(&credentials, "source.")?;
        Ok(credentials)
    }
}

impl LocalSourceConfig {
    fn check(&self) -> Result<(), InvalidSetting> {
        check_within(self.shards, 1, MAX_LOCAL_SHARDS)
            .map_err(|reason| InvalidSetting::new("source.local.shards", reason))?;
        check_within(self.generate, 0, MAX_LOCAL_GENERATE)
            .map_err(|reason| InvalidSetting::new("source.local.generate", reason))?;
        if self.data_dir.as_os_str().is_empty() {
            return Err(InvalidSetting::new(
                "source.local.data_dir",
                "must not be empty",
            ));
        }
        Ok(())
    }
}

/// Checks a project name (`logstore = false`) or a logstore name against the log service's
/// rules: 3 to 63 characters, lowercase letters, digits and `-` (and `_` for logstores),
/// starting and ending with a letter or digit.
///
/// # Errors
///
/// Which rule the name breaks.
pub fn check_name(name: &str, logstore: bool) -> Result<(), String> {
    let allowed = if logstore {
        "lowercase letters, digits, `-` and `_`"
    } else {
        "lowercase letters, digits and `-`"
    };
    let valid_char = |c: char| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (logstore && c == '_')
    };
    let alphanumeric =
        |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !(3..=63).contains(&name.len()) {
        return Err("must be 3 to 63 characters long".into());
    }
    if !name.chars().all(valid_char) {
        return Err(format!("may only contain {allowed}"));
    }
    if !alphanumeric(name.chars().next()) || !alphanumeric(name.chars().last()) {
        return Err("must start and end with a lowercase letter or a digit".into());
    }
    Ok(())
}

fn check_logstores(logstores: &[String]) -> Result<(), String> {
    check_within(logstores.len(), 1, MAX_LOGSTORES)
        .map_err(|reason| format!("the number of logstores {reason}"))?;
    let mut seen = std::collections::BTreeSet::new();
    for name in logstores {
        check_name(name, true).map_err(|reason| format!("`{name}` {reason}"))?;
        if !seen.insert(name) {
            return Err(format!(
                "`{name}` is listed twice (each logstore is consumed once per process)"
            ));
        }
    }
    Ok(())
}

/// Checks that an http(s) endpoint can be used: `[http[s]://]HOST[:PORT]`, nothing else.
///
/// # Errors
///
/// Why not, with the expected form; never a user name or password.
pub(crate) fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let expected = "expected http(s)://HOST[:PORT], e.g. https://cn-hangzhou.log.aliyuncs.com";
    let trimmed = endpoint.trim();
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_owned()
    } else {
        format!("http://{trimmed}")
    };
    let url = reqwest::Url::parse(&with_scheme)
        .map_err(|error| format!("`{endpoint}` is not a URL ({error}): {expected}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "`{endpoint}` has an unsupported scheme: {expected}"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Not echoed: it would print the password.
        return Err(format!(
            "must not contain a user name or password: {expected}"
        ));
    }
    let has_extra = url.path() != "/" || url.query().is_some() || url.fragment().is_some();
    if url.host_str().is_none_or(str::is_empty) || has_extra {
        return Err(format!("`{endpoint}`: {expected}"));
    }
    // The client parses it again with `http`, which is stricter about some characters.
    with_scheme
        .parse::<http::Uri>()
        .map_err(|_| format!("`{endpoint}`: {expected}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_fills_missing_values() {
        let config: SourceConfig = toml::from_str("project = \"my-project\"").unwrap();
        let env = |name: &str| match name {
            "SLS_ENDPOINT" => Some("https://cn-hangzhou.log.aliyuncs.com".to_owned()),
            "SLS_LOGSTORE" => Some("audit".to_owned()),
            "SLS_AK_ID" => Some("id".to_owned()),
            "SLS_AK_KEY" => Some("key".to_owned()),
            _ => None,
        };
        let resolved = config.resolve(env).unwrap();
        assert_eq!(resolved.logstores, ["audit"]);
        assert_eq!(static_keys(&resolved).access_key_secret.expose(), "key");
        let error = config.resolve(|_| None).unwrap_err().to_string();
        assert!(
            error.contains("source.endpoint") && error.contains("SLS_ENDPOINT"),
            "{error}"
        );
    }

    fn static_keys(source: &ResolvedSource) -> &Credentials {
        match &source.credentials {
            SourceCredentials::Static(keys) => keys,
            SourceCredentials::Provider(cache) => panic!("{cache:?} is not static"),
        }
    }

    /// The key `resolve` rejects `extra` (a line added to a valid cloud source) with.
    fn rejected_key(extra: &str) -> String {
        let base = [
            (
                "endpoint",
                "endpoint = \"https://cn-hangzhou.log.aliyuncs.com\"",
            ),
            ("project", "project = \"my-project\""),
            ("logstores", "logstores = [\"audit\"]"),
            ("access_key_id", "access_key_id = \"id\""),
            ("access_key_secret", "access_key_secret = \"secret\""),
        ];
        let overridden = extra.split(' ').next().unwrap();
        let mut text: Vec<&str> = base
            .iter()
            .filter(|(key, _)| *key != overridden)
            .map(|(_, line)| *line)
            .collect();
        text.push(extra);
        let config: SourceConfig = toml::from_str(&text.join("\n")).unwrap();
        config.resolve(|_| None).unwrap_err().key
    }

    #[test]
    fn names_follow_the_log_service_rules() {
        for bad in ["\"p\"", "\"Upper\"", "\"proj_x\"", "\"-abc\"", "\"projé\""] {
            assert_eq!(
                rejected_key(&format!("project = {bad}")),
                "source.project",
                "{bad}"
            );
        }
        let long = format!("[\"{}\"]", "a".repeat(64));
        for bad in [
            "[\"ab\"]",
            "[\"a/b\"]",
            "[\"audit_\"]",
            "[\"a b c\"]",
            long.as_str(),
        ] {
            assert_eq!(
                rejected_key(&format!("logstores = {bad}")),
                "source.logstores",
                "{bad}"
            );
        }
        for good in ["[\"audit_log-2\"]", "[\"abc\", \"def\"]"] {
            let text = format!(
                "endpoint = \"http://127.0.0.1:1\"\nproject = \"p-1\"\naccess_key_id = \"i\"\n\
                 access_key_secret = \"s\"\nlogstores = {good}"
            );
            let config: SourceConfig = toml::from_str(&text).unwrap();
            assert!(config.resolve(|_| None).is_ok(), "{good}");
        }
    }

    fn resolved(text: &str) -> Result<ResolvedSource, InvalidSetting> {
        let config: SourceConfig = toml::from_str(text).unwrap();
        config.resolve(|_| None)
    }

    #[test]
    fn signature_version_and_region_pick_the_signing() {
        let cloud = "project = \"p-1\"\nlogstores = [\"audit\"]\naccess_key_id = \"i\"\n\
                     access_key_secret = \"s\"\n";
        let with = |extra: &str| resolved(&format!("{cloud}{extra}"));
        let hangzhou = Signing::V4 {
            region: "cn-hangzhou".into(),
        };
        let standard = "endpoint = \"https://cn-hangzhou-intranet.log.aliyuncs.com\"\n";
        assert_eq!(
            with(standard).unwrap().signing,
            Signing::V1,
            "v1 by default"
        );
        assert_eq!(
            with(&format!("{standard}signature_version = \"v4\""))
                .unwrap()
                .signing,
            hangzhou,
            "the region of a standard endpoint"
        );
        assert_eq!(
            with("endpoint = \"cn-qingdao-acdr-ut-1.log.aliyuncs.com\"")
                .unwrap()
                .signing,
            Signing::V4 {
                region: "cn-qingdao-acdr-ut-1".into()
            },
            "v4 by default for dedicated-cloud regions"
        );
        let private = "endpoint = \"https://sls.example.com\"\nsignature_version = \"v4\"\n";
        let error = with(private).unwrap_err();
        assert_eq!(error.key, "source.region", "{error}");
        assert!(error.reason.contains("needs a region"), "{error}");
        assert_eq!(
            with(&format!("{private}region = \"cn-hangzhou\""))
                .unwrap()
                .signing,
            hangzhou
        );
        let error = with(&format!("{private}region = \"CN hangzhou\"")).unwrap_err();
        assert_eq!(error.key, "source.region", "{error}");
        let unknown = toml::from_str::<SourceConfig>("signature_version = \"v5\"").unwrap_err();
        assert!(unknown.to_string().contains("v5"), "{unknown}");
    }

    #[test]
    fn the_embedded_service_answers_as_the_configured_region() {
        let local = "endpoint = \"local\"\nlogstores = [\"audit\"]\nsignature_version = \"v4\"\n";
        let source = resolved(local).unwrap();
        assert_eq!(source.local_region, DEFAULT_REGION);
        assert_eq!(
            source.signing,
            Signing::V4 {
                region: DEFAULT_REGION.into()
            }
        );
        let source = resolved(&format!("{local}region = \"cn-beijing\"")).unwrap();
        assert_eq!(source.local_region, "cn-beijing");
        assert_eq!(
            source.signing,
            Signing::V4 {
                region: "cn-beijing".into()
            }
        );
    }

    #[test]
    fn requests_in_flight_are_bounded() {
        let local = "endpoint = \"local\"\nlogstores = [\"audit\"]\n";
        assert_eq!(
            resolved(local).unwrap().max_inflight_requests,
            DEFAULT_MAX_INFLIGHT_REQUESTS
        );
        let set = |value: &str| resolved(&format!("{local}max_inflight_requests = {value}"));
        assert_eq!(set("1").unwrap().max_inflight_requests, 1);
        assert_eq!(set("1024").unwrap().max_inflight_requests, 1024);
        for bad in ["0", "1025"] {
            let error = set(bad).unwrap_err();
            assert_eq!(error.key, "source.max_inflight_requests", "{bad}");
            assert!(error.reason.contains("between 1 and 1024"), "{error}");
        }
    }

    #[test]
    fn duplicate_logstores_are_rejected() {
        let config: SourceConfig =
            toml::from_str("endpoint = \"local\"\nlogstores = [\"audit\", \"other\", \"audit\"]")
                .unwrap();
        let error = config.resolve(|_| None).unwrap_err();
        assert_eq!(error.key, "source.logstores");
        assert!(error.reason.contains("`audit` is listed twice"), "{error}");
    }

    #[test]
    fn credentials_must_fit_in_a_header_and_are_not_echoed() {
        for (extra, key) in [
            ("security_token = \"tok\\nen\"", "source.security_token"),
            ("security_token = \"tøken\"", "source.security_token"),
            (
                "access_key_secret = \"se cret\"",
                "source.access_key_secret",
            ),
            ("access_key_id = \"id\\u0000\"", "source.access_key_id"),
        ] {
            let config: SourceConfig = toml::from_str(&format!(
                "endpoint = \"local\"\nlogstores = [\"audit\"]\n{extra}"
            ))
            .unwrap();
            let error = config.resolve(|_| None).unwrap_err();
            assert_eq!(error.key, key, "{extra}");
            for secret_part in ["tok", "tøken", "se cret"] {
                assert!(!error.reason.contains(secret_part), "{error}");
            }
        }
    }

    #[test]
    fn an_empty_security_token_means_none() {
        let config: SourceConfig =
            toml::from_str("endpoint = \"local\"\nlogstores = [\"abc\"]\nsecurity_token = \"\"")
                .unwrap();
        let resolved = config.resolve(|_| None).unwrap();
        assert!(static_keys(&resolved).security_token.is_none());
    }

    #[test]
    fn endpoints_must_be_usable_urls() {
        for bad in [
            "ftp://host",
            "https://",
            "https://host/path",
            "https://user:hunter2@host",
            "https://host?x=1",
            "https://ho st",
            "http://host:99999",
        ] {
            assert_eq!(
                rejected_key(&format!("endpoint = \"{bad}\"")),
                "source.endpoint",
                "{bad}"
            );
        }
        let config: SourceConfig = toml::from_str(
            "endpoint = \"https://user:hunter2@host\"\nproject = \"p-1\"\nlogstores = [\"abc\"]",
        )
        .unwrap();
        let error = config.resolve(|_| None).unwrap_err().to_string();
        assert!(!error.contains("hunter2"), "{error}");
    }

    const CLOUD: &str = "endpoint = \"https://cn-hangzhou.log.aliyuncs.com\"\nproject = \"p-1\"\n\
                         logstores = [\"audit\"]\n";

    #[test]
    fn a_credentials_table_selects_the_provider() {
        let provider = |table: &str| {
            let source = resolved(&format!("{CLOUD}[credentials]\n{table}")).unwrap();
            match source.credentials {
                SourceCredentials::Static(keys) => format!("static {}", keys.access_key_id),
                SourceCredentials::Provider(cache) => cache.provider_name().to_owned(),
            }
        };
        assert_eq!(
            provider("provider = \"static\"\naccess_key_id = \"id\"\naccess_key_secret = \"s\""),
            "static id"
        );
        assert_eq!(provider("provider = \"environment\""), "environment");
        assert_eq!(provider("provider = \"ecs_ram_role\""), "ecs_ram_role");
        assert_eq!(
            provider("provider = \"file\"\npath = \"/run/secrets/sls.json\""),
            "file"
        );
        assert_eq!(
            provider(
                "provider = \"oidc_role_arn\"\nrole_arn = \"acs:ram::1:role/r\"\n\
                 oidc_provider_arn = \"acs:ram::1:oidc-provider/p\"\noidc_token_file = \"/t\""
            ),
            "oidc_role_arn"
        );
        // Without a table, today's keys keep working, from the environment too.
        let env = |name: &str| match name {
            "SLS_AK_ID" => Some("env-id".to_owned()),
            "SLS_AK_KEY" => Some("env-key".to_owned()),
            _ => None,
        };
        let config: SourceConfig = toml::from_str(CLOUD).unwrap();
        assert_eq!(
            static_keys(&config.resolve(env).unwrap()).access_key_id,
            "env-id"
        );
        for bad in [
            "provider = \"vault\"",
            "provider = \"file\"\npath = \"/x\"\nrole_name = \"r\"",
        ] {
            let text = format!("{CLOUD}[credentials]\n{bad}");
            assert!(toml::from_str::<SourceConfig>(&text).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_credentials_table_next_to_top_level_keys_is_refused() {
        let table = "[credentials]\nprovider = \"environment\"";
        for keys in [
            "access_key_id = \"id\"\n",
            "access_key_secret = \"hunter2\"\n",
            "security_token = \"tok\"\n",
        ] {
            let error = resolved(&format!("{CLOUD}{keys}{table}")).unwrap_err();
            assert_eq!(error.key, "source.credentials", "{keys}");
            let key = keys.split(' ').next().unwrap();
            assert!(
                error
                    .reason
                    .contains(&format!("cannot be combined with source.{key}"))
                    && error.reason.contains("provider = \"static\""),
                "{error}"
            );
            assert!(!error.reason.contains("hunter2"), "{error}");
        }
        // An empty value (`"${SLS_STS_TOKEN:-}"`) is no value.
        assert!(resolved(&format!("{CLOUD}security_token = \"\"\n{table}")).is_ok());
    }

    #[test]
    fn the_embedded_service_takes_only_static_keys_from_the_table() {
        let local = "endpoint = \"local\"\nlogstores = [\"audit\"]\n[credentials]\n";
        let error = resolved(&format!("{local}provider = \"ecs_ram_role\"")).unwrap_err();
        assert_eq!(error.key, "source.credentials.provider");
        assert!(
            error.reason.contains("`ecs_ram_role` cannot be used"),
            "{error}"
        );
        let source = resolved(&format!(
            "{local}provider = \"static\"\naccess_key_id = \"k\"\naccess_key_secret = \"s\""
        ))
        .unwrap();
        assert_eq!(static_keys(&source).access_key_id, "k");
    }

    #[test]
    fn credentials_table_values_are_checked_by_key() {
        for (table, key) in [
            (
                "provider = \"static\"\naccess_key_id = \"\"\naccess_key_secret = \"s\"",
                "access_key_id",
            ),
            (
                "provider = \"static\"\naccess_key_id = \"i\"\naccess_key_secret = \"s\"\n\
                 security_token = \"to ken\"",
                "security_token",
            ),
            (
                "provider = \"ecs_ram_role\"\nrole_name = \"../admin\"",
                "role_name",
            ),
            (
                "provider = \"ecs_ram_role\"\nmetadata_endpoint = \"ftp://x\"",
                "metadata_endpoint",
            ),
            ("provider = \"file\"\npath = \"\"", "path"),
            ("provider = \"oidc_role_arn\"", "role_arn"),
        ] {
            let error = resolved(&format!("{CLOUD}[credentials]\n{table}")).unwrap_err();
            assert_eq!(error.key, format!("source.credentials.{key}"), "{table}");
            assert!(!error.reason.contains("to ken"), "{error}");
        }
    }

    #[test]
    fn resolved_sources_do_not_show_secrets() {
        let source = resolved(&format!(
            "{CLOUD}access_key_id = \"id\"\naccess_key_secret = \"hunter2\"\nsecurity_token = \"tok-xyz\""
        ))
        .unwrap();
        let text = format!("{source:?}");
        assert!(
            !text.contains("hunter2") && !text.contains("tok-xyz"),
            "{text}"
        );
    }
}

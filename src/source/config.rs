//! The `[source]` section: which log service, project and logstores, and the credentials.
//! Missing values fall back to the environment variables the seed program used:
//! `SLS_ENDPOINT`, `SLS_PROJECT`, `SLS_LOGSTORE`, `SLS_AK_ID`, `SLS_AK_KEY`.

use std::path::PathBuf;

use serde::Deserialize;

use crate::common::Secret;

/// The endpoint value that starts the embedded log service in-process.
pub const LOCAL_ENDPOINT: &str = "local";

/// Where logs come from.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// `https://cn-hangzhou.log.aliyuncs.com`, `http://127.0.0.1:PORT`, or `local` to start the
    /// embedded log service. Env fallback `SLS_ENDPOINT`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Project. Env fallback `SLS_PROJECT`.
    #[serde(default)]
    pub project: Option<String>,
    /// Logstores to consume, all with the same consumer group. Env fallback `SLS_LOGSTORE`
    /// (one name).
    #[serde(default)]
    pub logstores: Vec<String>,
    /// AccessKey id. Env fallback `SLS_AK_ID`.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// AccessKey secret (never logged). Env fallback `SLS_AK_KEY`.
    #[serde(default)]
    pub access_key_secret: Option<Secret>,
    /// STS security token for temporary credentials (never logged).
    #[serde(default)]
    pub security_token: Option<Secret>,
    /// Settings of the embedded log service when `endpoint = "local"`.
    #[serde(default)]
    pub local: LocalSourceConfig,
}

/// The embedded log service used with `endpoint = "local"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSourceConfig {
    /// Where it stores shards and checkpoints. Default `./siem-forwarder-data`.
    #[serde(default = "default_local_dir")]
    pub data_dir: PathBuf,
    /// Shards of each logstore it creates. Default 4.
    #[serde(default = "default_local_shards")]
    pub shards: u32,
    /// Generated audit logs written to each logstore that is empty at start. Default 0.
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
    /// AccessKey id.
    pub access_key_id: String,
    /// AccessKey secret.
    pub access_key_secret: Secret,
    /// STS token.
    pub security_token: Option<Secret>,
}

impl SourceConfig {
    /// Applies the environment fallbacks (`lookup` reads a variable) and checks that
    /// everything needed is present.
    ///
    /// # Errors
    ///
    /// A message naming the missing key and its environment variable.
    pub fn resolve(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<ResolvedSource, String> {
        let pick = |value: &Option<String>, key: &str, variable: &str| {
            value
                .clone()
                .filter(|v| !v.is_empty())
                .or_else(|| lookup(variable).filter(|v| !v.is_empty()))
                .ok_or_else(|| {
                    format!(
                        "source.{key} is missing (set it, or the {variable} environment variable)"
                    )
                })
        };
        let endpoint = pick(&self.endpoint, "endpoint", "SLS_ENDPOINT")?;
        let local = endpoint == LOCAL_ENDPOINT;
        let project = if local {
            self.project
                .clone()
                .unwrap_or_else(|| "siem-demo".to_owned())
        } else {
            pick(&self.project, "project", "SLS_PROJECT")?
        };
        let logstores = if self.logstores.is_empty() {
            vec![pick(&None, "logstores", "SLS_LOGSTORE")?]
        } else {
            self.logstores.clone()
        };
        if let Some(bad) = logstores.iter().find(|name| name.is_empty()) {
            return Err(format!("source.logstores contains an empty name `{bad}`"));
        }
        if local && self.local.shards == 0 {
            return Err("source.local.shards must be at least 1".into());
        }
        let (access_key_id, access_key_secret) = if local {
            (
                self.access_key_id
                    .clone()
                    .unwrap_or_else(|| "local".to_owned()),
                self.access_key_secret
                    .clone()
                    .unwrap_or_else(|| Secret::new("local-secret")),
            )
        } else {
            let secret = self
                .access_key_secret
                .clone()
                .filter(|s| !s.is_empty())
                .or_else(|| lookup("SLS_AK_KEY").filter(|v| !v.is_empty()).map(Secret::new))
                .ok_or("source.access_key_secret is missing (set it, or the SLS_AK_KEY environment variable)")?;
            (
                pick(&self.access_key_id, "access_key_id", "SLS_AK_ID")?,
                secret,
            )
        };
        Ok(ResolvedSource {
            endpoint,
            project,
            logstores,
            access_key_id,
            access_key_secret,
            security_token: self.security_token.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_fills_missing_values() {
        let config: SourceConfig = toml::from_str("project = \"p\"").unwrap();
        let env = |name: &str| match name {
            "SLS_ENDPOINT" => Some("https://cn-hangzhou.log.aliyuncs.com".to_owned()),
            "SLS_LOGSTORE" => Some("audit".to_owned()),
            "SLS_AK_ID" => Some("id".to_owned()),
            "SLS_AK_KEY" => Some("key".to_owned()),
            _ => None,
        };
        let resolved = config.resolve(env).unwrap();
        assert_eq!(resolved.logstores, ["audit"]);
        assert_eq!(resolved.access_key_secret.expose(), "key");
        let error = config.resolve(|_| None).unwrap_err();
        assert!(
            error.contains("source.endpoint") && error.contains("SLS_ENDPOINT"),
            "{error}"
        );
    }
}

//! The `environment` provider: `ALIBABA_CLOUD_ACCESS_KEY_ID`,
//! `ALIBABA_CLOUD_ACCESS_KEY_SECRET` and `ALIBABA_CLOUD_SECURITY_TOKEN` (the names of the
//! official credentials libraries), else `SLS_AK_ID` and `SLS_AK_KEY`; read again at every
//! refresh, so that a process manager that rewrites them is followed.

use std::sync::Arc;

use crate::common::Secret;

use super::{Credentials, CredentialsError, ProvideCredentials};

/// The official variables: id, secret, token.
pub const ALIBABA_CLOUD_VARIABLES: [&str; 3] = [
    "ALIBABA_CLOUD_ACCESS_KEY_ID",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    "ALIBABA_CLOUD_SECURITY_TOKEN",
];
/// The variables this program read first: id, secret.
pub const SLS_VARIABLES: [&str; 2] = ["SLS_AK_ID", "SLS_AK_KEY"];

/// Reads an environment variable.
pub type Lookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Credentials from environment variables.
pub struct EnvironmentProvider {
    lookup: Lookup,
}

impl std::fmt::Debug for EnvironmentProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EnvironmentProvider")
    }
}

impl EnvironmentProvider {
    /// Reads this process's environment.
    pub fn new() -> Self {
        Self::with_lookup(Arc::new(|name| std::env::var(name).ok()))
    }

    /// Reads variables through `lookup`.
    pub fn with_lookup(lookup: Lookup) -> Self {
        Self { lookup }
    }

    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|value| !value.is_empty())
    }
}

impl Default for EnvironmentProvider {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait::async_trait]
impl ProvideCredentials for EnvironmentProvider {
    fn name(&self) -> &'static str {
        "environment"
    }

    async fn fetch(&self) -> Result<Credentials, CredentialsError> {
        let [official_id, official_secret, token] = ALIBABA_CLOUD_VARIABLES;
        let [sls_id, sls_secret] = SLS_VARIABLES;
        // A pair comes from one family, never an id from one and a secret from the other.
        let (id, secret_variable) = match self.get(official_id) {
            Some(id) => (id, official_secret),
            None => match self.get(sls_id) {
                Some(id) => (id, sls_secret),
                None => {
                    return Err(CredentialsError::Missing {
                        provider: self.name(),
                        what: format!("{official_id} (or {sls_id})"),
                        hint: "set it in the environment of the process".to_owned(),
                    })
                }
            },
        };
        let secret = self
            .get(secret_variable)
            .ok_or_else(|| CredentialsError::Missing {
                provider: self.name(),
                what: secret_variable.to_owned(),
                hint: "it goes with the AccessKey id that is set".to_owned(),
            })?;
        let credentials =
            Credentials::new(id, Secret::new(secret), self.get(token).map(Secret::new));
        credentials
            .check()
            .map_err(|(name, reason)| CredentialsError::Malformed {
                provider: self.name(),
                source_name: "the environment".to_owned(),
                reason: format!("holds {name}, which {reason}"),
            })?;
        Ok(credentials)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    fn provider(
        variables: &Arc<Mutex<HashMap<&'static str, &'static str>>>,
    ) -> EnvironmentProvider {
        let variables = Arc::clone(variables);
        EnvironmentProvider::with_lookup(Arc::new(move |name| {
            variables.lock().unwrap().get(name).map(|v| (*v).to_owned())
        }))
    }

    #[tokio::test]
    async fn official_variables_win_and_are_read_at_every_refresh() {
        let variables = Arc::new(Mutex::new(HashMap::from([
            ("SLS_AK_ID", "sls-id"),
            ("SLS_AK_KEY", "sls-key"),
        ])));
        let env = provider(&variables);
        let first = env.fetch().await.unwrap();
        assert_eq!(first.access_key_id, "sls-id");
        assert_eq!(first.access_key_secret.expose(), "sls-key");
        assert_eq!(first.security_token, None);
        variables.lock().unwrap().extend([
            ("ALIBABA_CLOUD_ACCESS_KEY_ID", "STS.new"),
            ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "new-secret"),
            ("ALIBABA_CLOUD_SECURITY_TOKEN", "new-token"),
        ]);
        let second = env.fetch().await.unwrap();
        assert_eq!(second.access_key_id, "STS.new");
        assert_eq!(second.access_key_secret.expose(), "new-secret");
        assert_eq!(
            second.security_token.as_ref().map(Secret::expose),
            Some("new-token")
        );
    }

    #[tokio::test]
    async fn missing_or_unsendable_values_are_named_not_shown() {
        let variables = Arc::new(Mutex::new(HashMap::new()));
        let env = provider(&variables);
        let error = env.fetch().await.unwrap_err().to_string();
        assert!(
            error.contains(
                "environment credentials: ALIBABA_CLOUD_ACCESS_KEY_ID (or SLS_AK_ID) is not set"
            ),
            "{error}"
        );
        variables
            .lock()
            .unwrap()
            .extend([("ALIBABA_CLOUD_ACCESS_KEY_ID", "id"), ("SLS_AK_KEY", "k")]);
        let error = env.fetch().await.unwrap_err().to_string();
        assert!(
            error.contains("ALIBABA_CLOUD_ACCESS_KEY_SECRET is not set"),
            "{error}"
        );
        variables
            .lock()
            .unwrap()
            .extend([("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "s3cr3t\n")]);
        let error = env.fetch().await.unwrap_err().to_string();
        assert!(
            error.contains("the AccessKey secret") && !error.contains("s3cr3t"),
            "{error}"
        );
    }
}

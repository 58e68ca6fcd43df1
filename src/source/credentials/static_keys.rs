//! The `static` provider: an AccessKey pair, with an optional STS token, from the
//! configuration. Refreshing hands out the same keys.

use super::{Credentials, CredentialsError, ProvideCredentials};

/// Fixed credentials.
#[derive(Debug, Clone)]
pub struct StaticProvider {
    credentials: Credentials,
}

impl StaticProvider {
    /// A provider that always answers `credentials`.
    pub fn new(credentials: Credentials) -> Self {
        Self { credentials }
    }
}

#[async_trait::async_trait]
impl ProvideCredentials for StaticProvider {
    fn name(&self) -> &'static str {
        "static"
    }

    async fn fetch(&self) -> Result<Credentials, CredentialsError> {
        Ok(self.credentials.clone())
    }
}

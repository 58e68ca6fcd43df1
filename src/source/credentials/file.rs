//! The `file` provider: credentials in a JSON file written by someone else (a Vault agent, a
//! mounted Kubernetes secret, a cron job), with the field names of the ECS metadata answer:
//! `AccessKeyId`, `AccessKeySecret`, optional `SecurityToken` and `Expiration`. The file is
//! parsed again whenever its modification time or size changed since the last refresh.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use super::{parse_json, Credentials, CredentialsError, ProvideCredentials, SessionCredentials};

const NAME: &str = "file";

/// Credentials from a JSON file.
#[derive(Debug)]
pub struct FileProvider {
    path: PathBuf,
    /// The last version read: its stamp and what it held.
    last: Mutex<Option<(Stamp, Credentials)>>,
}

/// What tells a rewritten file from the one read before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

impl FileProvider {
    /// Reads credentials from `path`.
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            last: Mutex::new(None),
        }
    }

    fn unreadable(&self, source: std::io::Error) -> CredentialsError {
        CredentialsError::File {
            provider: NAME,
            path: self.path.display().to_string(),
            source,
        }
    }

    fn last(&self) -> std::sync::MutexGuard<'_, Option<(Stamp, Credentials)>> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl ProvideCredentials for FileProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn fetch(&self) -> Result<Credentials, CredentialsError> {
        let metadata = tokio::fs::metadata(&self.path)
            .await
            .map_err(|error| self.unreadable(error))?;
        let stamp = Stamp {
            modified: metadata.modified().ok(),
            len: metadata.len(),
        };
        if let Some((seen, credentials)) = self.last().as_ref() {
            if *seen == stamp {
                return Ok(credentials.clone());
            }
        }
        let bytes = tokio::fs::read(&self.path)
            .await
            .map_err(|error| self.unreadable(error))?;
        let source_name = self.path.display().to_string();
        let parsed: SessionCredentials = parse_json(NAME, &source_name, &bytes)?;
        let credentials = parsed.into_credentials(NAME, &source_name, false)?;
        *self.last() = Some((stamp, credentials.clone()));
        Ok(credentials)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::Secret;

    fn write(path: &std::path::Path, id: &str, extra: &str) {
        let text = format!(r#"{{"AccessKeyId":"{id}","AccessKeySecret":"secret-of-{id}"{extra}}}"#);
        std::fs::write(path, text).unwrap();
    }

    #[tokio::test]
    async fn a_rewritten_file_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.json");
        let provider = FileProvider::new(path.clone());
        let error = provider.fetch().await.unwrap_err().to_string();
        assert!(
            error.starts_with("file credentials: cannot read")
                && error.contains("credentials.json"),
            "{error}"
        );
        write(
            &path,
            "first",
            r#","SecurityToken":"tok","Expiration":"2030-01-01T00:00:00Z""#,
        );
        let first = provider.fetch().await.unwrap();
        assert_eq!(first.access_key_id, "first");
        assert_eq!(
            first.security_token.as_ref().map(Secret::expose),
            Some("tok")
        );
        assert!(first.expiration.is_some());
        write(&path, "second-key", "");
        let second = provider.fetch().await.unwrap();
        assert_eq!(second.access_key_id, "second-key");
        assert_eq!(second.security_token, None);
        assert_eq!(second.expiration, None);
        std::fs::write(
            &path,
            r#"{"AccessKeyId": "x", "AccessKeySecret": 12345678}"#,
        )
        .unwrap();
        let error = provider.fetch().await.unwrap_err().to_string();
        assert!(
            error.contains("is not credentials JSON") && !error.contains("12345678"),
            "{error}"
        );
    }
}

//! rustls client configuration shared by every TLS client in the crate (syslog over TLS,
//! Splunk HEC, the log-service client): trust roots, client certificates, SNI override and the
//! explicit opt-out of verification.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::Deserialize;

/// TLS settings of a client connection.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the CA certificates to trust. Default: the system's trust store.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain, for mutual TLS. Requires `key_file`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Name to send as SNI and to verify the certificate against, when it differs from the
    /// host in the address (e.g. connecting by IP to a certificate issued for a name).
    #[serde(default)]
    pub server_name: Option<String>,
    /// Verify the server certificate. Default `true`; turning it off is logged as a warning.
    #[serde(default = "default_verify")]
    pub verify: bool,
}

fn default_verify() -> bool {
    true
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            ca_file: None,
            cert_file: None,
            key_file: None,
            server_name: None,
            verify: true,
        }
    }
}

/// Why a TLS client configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read.
    #[error("tls.{key}: cannot read {what} `{path}`: {source}")]
    Read {
        key: &'static str,
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A PEM file held nothing usable.
    #[error("tls.{key}: {what} `{path}` contains no {expected}")]
    Empty {
        key: &'static str,
        what: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
    /// Only one of `cert_file` and `key_file` was given.
    #[error("tls.cert_file and tls.key_file must be given together")]
    HalfClientIdentity,
    /// rustls refused the material.
    #[error("invalid tls configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// `server_name` is not a valid DNS name or IP address.
    #[error("invalid tls server name `{0}`")]
    ServerName(String),
}

impl TlsConfig {
    /// Checks the files and builds the rustls configuration. Call at start-up so that a bad
    /// path fails the config check rather than the first connection.
    ///
    /// # Errors
    ///
    /// Returns [`TlsError`] when a file is unreadable or holds no usable PEM item.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = if self.verify {
            builder.with_root_certificates(self.root_store()?)
        } else {
            tracing::warn!("tls certificate verification is turned off by configuration");
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        };
        let config = match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => builder.with_client_auth_cert(
                read_certificates_for("cert_file", cert)?,
                read_private_key_for("key_file", key)?,
            )?,
            (None, None) => builder.with_no_client_auth(),
            _ => return Err(TlsError::HalfClientIdentity),
        };
        Ok(Arc::new(config))
    }

    /// The name to verify the server against: `server_name` when set, otherwise `host`.
    ///
    /// # Errors
    ///
    /// Returns [`TlsError::ServerName`] when the name is neither a DNS name nor an IP address.
    pub fn server_name_for(&self, host: &str) -> Result<ServerName<'static>, TlsError> {
        let name = self.server_name.as_deref().unwrap_or(host);
        let name = name.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(name.to_owned()).map_err(|_| TlsError::ServerName(name.to_owned()))
    }

    fn root_store(&self) -> Result<RootCertStore, TlsError> {
        let mut roots = RootCertStore::empty();
        match &self.ca_file {
            Some(path) => {
                for certificate in read_certificates_for("ca_file", path)? {
                    roots.add(certificate)?;
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                for error in &native.errors {
                    tracing::warn!(%error, "skipping an unreadable system CA certificate");
                }
                let (added, ignored) = roots.add_parsable_certificates(native.certs);
                tracing::debug!(added, ignored, "loaded system CA certificates");
            }
        }
        Ok(roots)
    }
}

fn read_file(key: &'static str, what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        key,
        what,
        path: path.to_owned(),
        source,
    })
}

/// Reads every certificate of a PEM file.
///
/// # Errors
///
/// Fails when the file is unreadable or holds no certificate.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    read_certificates_for("cert_file", path)
}

fn read_certificates_for(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_file(key, "certificate file", path)?;
    let certificates: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::Read {
            key,
            what: "certificate file",
            path: path.to_owned(),
            source,
        })?;
    if certificates.is_empty() {
        return Err(TlsError::Empty {
            key,
            what: "certificate file",
            path: path.to_owned(),
            expected: "PEM certificate",
        });
    }
    Ok(certificates)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) of a PEM file.
///
/// # Errors
///
/// Fails when the file is unreadable or holds no key.
pub fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    read_private_key_for("key_file", path)
}

fn read_private_key_for(
    key: &'static str,
    path: &Path,
) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_file(key, "key file", path)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|source| TlsError::Read {
            key,
            what: "key file",
            path: path.to_owned(),
            source,
        })?
        .ok_or_else(|| TlsError::Empty {
            key,
            what: "key file",
            path: path.to_owned(),
            expected: "PEM private key",
        })
}

/// Verifier used only when the user set `verify = false`.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_ca_file_names_the_path() {
        let config = TlsConfig {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..TlsConfig::default()
        };
        let error = config.client_config().unwrap_err().to_string();
        assert!(
            error.contains("/nonexistent/ca.pem") && error.contains("tls.ca_file"),
            "{error}"
        );
    }

    #[test]
    fn half_client_identity_is_rejected() {
        let config = TlsConfig {
            cert_file: Some("client.pem".into()),
            ..TlsConfig::default()
        };
        assert!(matches!(
            config.client_config(),
            Err(TlsError::HalfClientIdentity)
        ));
    }
}

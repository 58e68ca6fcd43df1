//! The HTTP client the bucket's requests go through: the project's rustls configuration (`tls`:
//! a private CA, a client certificate, verification), the upload timeout, no redirects, no
//! transparent decompression (sizes are compared with `Content-Length`), and `resolve`
//! (host names answered with fixed addresses, like `curl --resolve`).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use object_store::client::{HttpClient, HttpConnector};
use object_store::ClientOptions;

use crate::common::tls::{TlsConfig, TlsError};

/// Hands object_store the sink's own client instead of one it builds.
#[derive(Debug)]
pub struct Connector(reqwest::Client);

impl HttpConnector for Connector {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(self.0.clone()))
    }
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TLS settings could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// reqwest refused the settings.
    #[error("http client: {0}")]
    Build(#[from] reqwest::Error),
}

/// Builds the client: `tls`, `timeout` per request, https only when `https_only`, and each
/// host of `resolve` answered with its address.
///
/// # Errors
///
/// When a TLS file cannot be read or the client cannot be built.
pub fn connector(
    tls: &TlsConfig,
    resolve: &BTreeMap<String, IpAddr>,
    timeout: Duration,
    https_only: bool,
) -> Result<Connector, ClientError> {
    let rustls = tls.client_config()?;
    let mut builder = reqwest::Client::builder()
        .use_preconfigured_tls((*rustls).clone())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(30)))
        .redirect(reqwest::redirect::Policy::none())
        .no_gzip()
        .no_brotli()
        .no_zstd()
        .no_deflate()
        .https_only(https_only);
    for (host, address) in resolve {
        // Port 0: the port of the URL.
        builder = builder.resolve(host, SocketAddr::new(*address, 0));
    }
    Ok(Connector(builder.build()?))
}

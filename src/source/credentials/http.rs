//! The HTTP side shared by the providers that ask a service (instance metadata, STS).

use std::time::Duration;

use super::CredentialsError;

/// The largest answer read from a credentials service.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// A client with the given timeouts, on the project's rustls stack.
pub(super) fn client(connect: Duration, total: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .connect_timeout(connect)
        .timeout(total)
        .build()
        .unwrap_or_default()
}

/// An answer: its status and its body (at most [`MAX_ANSWER_BYTES`]).
pub(super) struct Answer {
    pub status: reqwest::StatusCode,
    pub body: Vec<u8>,
}

/// Sends `request` to `url` (named in errors without its query) and reads the answer.
///
/// # Errors
///
/// [`CredentialsError::Network`] when the service cannot be reached or the answer is cut.
pub(super) async fn send(
    provider: &'static str,
    url: &str,
    request: reqwest::RequestBuilder,
    hint: &'static str,
) -> Result<Answer, CredentialsError> {
    let network = |source| CredentialsError::Network {
        provider,
        url: url.to_owned(),
        source,
        hint,
    };
    let mut response = request.send().await.map_err(network)?;
    let status = response.status();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(network)? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(CredentialsError::Malformed {
                provider,
                source_name: url.to_owned(),
                reason: format!("answered more than {MAX_ANSWER_BYTES} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer { status, body })
}

//! Process-wide shutdown: one [`CancellationToken`] cancelled on SIGTERM or SIGINT.

pub use tokio_util::sync::CancellationToken;

/// Waits for SIGTERM or SIGINT (Ctrl-C), whichever comes first.
///
/// # Errors
///
/// Fails when the signal handlers cannot be installed.
pub async fn termination_signal() -> std::io::Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => Ok("SIGTERM"),
            _ = int.recv() => Ok("SIGINT"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await?;
        Ok("Ctrl-C")
    }
}

/// Returns a token that is cancelled when the process receives SIGTERM or SIGINT.
pub fn token_cancelled_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let child = token.clone();
    tokio::spawn(async move {
        match termination_signal().await {
            Ok(name) => tracing::info!(signal = name, "shutdown requested"),
            Err(error) => tracing::error!(%error, "cannot listen for termination signals"),
        }
        child.cancel();
    });
    token
}

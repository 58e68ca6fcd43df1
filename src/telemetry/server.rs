//! The telemetry HTTP endpoint: `/metrics` (Prometheus text), `/healthz` (the process is up),
//! `/readyz` (every sink and consumer healthy), `/status` (JSON of shards and components).

use std::future::Future;
use std::net::SocketAddr;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;

use super::health::health;
use super::metrics::metrics;
use super::progress::progress;
use super::status::status_board;

/// The `[telemetry]` section.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Address of the HTTP endpoint, e.g. `127.0.0.1:9300` (`0.0.0.0:9300` in containers).
    /// Default: no endpoint.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
}

async fn metrics_text() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics().render(),
    )
}

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

async fn readyz() -> impl IntoResponse {
    let components = health().snapshot();
    let status = if health().ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "ready": status == StatusCode::OK, "components": components })),
    )
}

async fn status() -> impl IntoResponse {
    let now = tokio::time::Instant::now();
    Json(json!({
        "ready": health().ready(),
        "components": health().snapshot(),
        "shards": status_board().snapshot(),
        "catch_up": {
            "summary": progress().summary(now),
            "shards": progress().snapshot(now),
        },
    }))
}

/// The endpoint's routes.
pub fn router() -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
}

/// Serves the endpoint on `listener` until `shutdown`.
///
/// # Errors
///
/// When serving fails.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router())
        .with_graceful_shutdown(shutdown)
        .await
}

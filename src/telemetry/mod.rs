//! Logs, metrics and health: tracing setup, the Prometheus registry, component health, and
//! the HTTP endpoint that serves `/metrics`, `/healthz`, `/readyz` and `/status`.

pub mod health;
pub mod logging;
pub mod metrics;
pub mod progress;
pub mod server;
pub mod status;

pub use health::{health, HealthState};
pub use metrics::metrics;

//! The sink's entry in the process health registry (`sink:NAME`, shown by `/readyz`), and the
//! paused state: a token or configuration error makes the sink unhealthy with one loud error
//! log per pause; the next accepted request makes it healthy again.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::telemetry::{health, HealthState};

/// Reports one sink's health.
#[derive(Debug)]
pub(crate) struct HealthReporter {
    component: String,
    healthy: AtomicBool,
    paused: AtomicBool,
}

impl HealthReporter {
    /// A reporter for the sink called `sink`; registers it as starting unless it is known.
    pub fn new(sink: &str) -> Self {
        let component = format!("sink:{sink}");
        if health().get(&component).is_none() {
            health().set(&component, HealthState::Starting);
        }
        Self {
            component,
            healthy: AtomicBool::new(false),
            paused: AtomicBool::new(false),
        }
    }

    /// The collector accepted a request or answered the health check.
    pub fn working(&self) {
        let was_paused = self.paused.swap(false, Ordering::AcqRel);
        if !self.healthy.swap(true, Ordering::AcqRel) || was_paused {
            if was_paused {
                tracing::info!(sink = %self.component, "collector accepts requests again; sink resumed");
            }
            health().set(&self.component, HealthState::Healthy);
        }
    }

    /// The collector cannot be used as configured (bad token, index, channel); the sink holds
    /// its data and retries slowly.
    pub fn paused(&self, reason: &str) {
        self.healthy.store(false, Ordering::Release);
        if !self.paused.swap(true, Ordering::AcqRel) {
            tracing::error!(
                sink = %self.component,
                %reason,
                "collector refuses this sink's token or configuration; sink paused, nothing is dropped, retrying slowly until an operator fixes it"
            );
        }
        health().set(
            &self.component,
            HealthState::Unhealthy(format!("paused: {reason}")),
        );
    }

    /// The health check failed.
    pub fn unhealthy(&self, reason: String) {
        self.healthy.store(false, Ordering::Release);
        health().set(&self.component, HealthState::Unhealthy(reason));
    }
}

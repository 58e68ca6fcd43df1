//! The sink's entry in the process health registry (`sink:NAME`, shown by `/readyz`).
//!
//! Two conditions make the sink unhealthy while it keeps every event:
//! - paused: the collector refuses requests (bad token, index or channel, or a 4xx from a proxy
//!   in between); one loud error log per pause, and the next accepted request resumes it;
//! - acknowledgement queries failing: batches awaiting an indexer acknowledgement stay
//!   unconfirmed; the next answered query clears it.

use std::sync::Mutex;

use crate::telemetry::{health, HealthState};

/// Reports one sink's health.
#[derive(Debug)]
pub(crate) struct HealthReporter {
    component: String,
    conditions: Mutex<Conditions>,
}

/// What the sink's health is made of.
#[derive(Debug, Default)]
struct Conditions {
    /// The collector accepted a request or answered the health check.
    working: bool,
    /// Why requests are paused.
    paused: Option<String>,
    /// Why acknowledgement queries fail.
    acks_failing: Option<String>,
    /// The state last written to the registry.
    published: Option<HealthState>,
}

impl Conditions {
    fn state(&self) -> Option<HealthState> {
        if let Some(reason) = &self.paused {
            Some(HealthState::Unhealthy(format!("paused: {reason}")))
        } else if let Some(reason) = &self.acks_failing {
            Some(HealthState::Unhealthy(format!(
                "indexer acknowledgement queries failing: {reason}"
            )))
        } else if self.working {
            Some(HealthState::Healthy)
        } else {
            None
        }
    }
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
            conditions: Mutex::new(Conditions::default()),
        }
    }

    /// Changes the conditions, then writes the resulting state to the registry if it changed.
    fn update(&self, change: impl FnOnce(&mut Conditions)) {
        let Ok(mut conditions) = self.conditions.lock() else {
            return;
        };
        change(&mut conditions);
        let state = conditions.state();
        if state.is_some() && state != conditions.published {
            conditions.published.clone_from(&state);
            if let Some(state) = state {
                health().set(&self.component, state);
            }
        }
    }

    /// The collector accepted a request or answered the health check.
    pub fn working(&self) {
        self.update(|conditions| {
            conditions.working = true;
            if conditions.paused.take().is_some() {
                tracing::info!(sink = %self.component, "collector accepts requests again; sink resumed");
            }
        });
    }

    /// The collector refuses requests as configured (token, index, channel, or a proxy in
    /// between); the sink holds its data and retries slowly.
    pub fn paused(&self, reason: &str) {
        self.update(|conditions| {
            if conditions.paused.is_none() {
                tracing::error!(
                    sink = %self.component,
                    %reason,
                    "collector refuses this sink's requests (token, configuration, or a proxy in between); sink paused, nothing is dropped, retrying slowly until an operator fixes it"
                );
            }
            conditions.paused = Some(reason.to_owned());
        });
    }

    /// An acknowledgement query failed; pending batches stay unconfirmed until one succeeds.
    pub fn acks_failing(&self, reason: &str) {
        self.update(|conditions| {
            conditions.acks_failing = Some(reason.to_owned());
        });
    }

    /// An acknowledgement query was answered.
    pub fn acks_answered(&self) {
        self.update(|conditions| {
            if conditions.acks_failing.take().is_some() {
                tracing::info!(sink = %self.component, "collector answers acknowledgement queries again");
            }
        });
    }

    /// The health check failed.
    pub fn unhealthy(&self, reason: String) {
        let Ok(mut conditions) = self.conditions.lock() else {
            return;
        };
        conditions.working = false;
        let state = HealthState::Unhealthy(reason);
        health().set(&self.component, state.clone());
        conditions.published = Some(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_acknowledgement_queries_keep_the_sink_unhealthy_while_data_flows() {
        let reporter = HealthReporter::new("health-unit-acks");
        let state = || health().get("sink:health-unit-acks");
        reporter.working();
        assert_eq!(state(), Some(HealthState::Healthy));
        reporter.acks_failing("http 404");
        reporter.working();
        assert!(
            matches!(state(), Some(HealthState::Unhealthy(reason)) if reason.contains("acknowledgement") && reason.contains("404"))
        );
        reporter.paused("http 400");
        assert!(
            matches!(state(), Some(HealthState::Unhealthy(reason)) if reason.starts_with("paused"))
        );
        reporter.working();
        assert!(
            matches!(state(), Some(HealthState::Unhealthy(reason)) if reason.contains("acknowledgement"))
        );
        reporter.acks_answered();
        assert_eq!(state(), Some(HealthState::Healthy));
    }
}

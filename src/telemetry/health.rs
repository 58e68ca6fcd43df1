//! Component health: each component (a sink, a logstore's consumer) reports whether it can do
//! its job; `/readyz` is ready only when every registered component is healthy.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use serde::Serialize;

use super::metrics::{metrics, ComponentLabels};

/// The health of one component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "snake_case")]
pub enum HealthState {
    /// Not yet known (e.g. before the first connection).
    Starting,
    /// Working.
    Healthy,
    /// Cannot do its job; the reason is shown to operators.
    Unhealthy(String),
}

/// Health of every registered component.
#[derive(Debug, Default)]
pub struct HealthRegistry {
    components: Mutex<BTreeMap<String, HealthState>>,
}

impl HealthRegistry {
    /// Sets a component's state, logging transitions.
    pub fn set(&self, component: &str, state: HealthState) {
        let mut components = self.components.lock().expect("health lock");
        let previous = components.insert(component.to_owned(), state.clone());
        metrics()
            .component_unhealthy
            .get_or_create(&ComponentLabels {
                component: component.to_owned(),
            })
            .set(i64::from(matches!(state, HealthState::Unhealthy(_))));
        if previous.as_ref() != Some(&state) {
            match &state {
                HealthState::Unhealthy(reason) => {
                    tracing::error!(component, reason = %reason, "component unhealthy")
                }
                HealthState::Healthy if previous.is_some() => {
                    tracing::info!(component, "component healthy")
                }
                _ => {}
            }
        }
    }

    /// Removes a component (when it stops).
    pub fn remove(&self, component: &str) {
        self.components
            .lock()
            .expect("health lock")
            .remove(component);
        metrics().component_unhealthy.remove(&ComponentLabels {
            component: component.to_owned(),
        });
    }

    /// The state of one component.
    pub fn get(&self, component: &str) -> Option<HealthState> {
        self.components
            .lock()
            .expect("health lock")
            .get(component)
            .cloned()
    }

    /// A copy of every component's state.
    pub fn snapshot(&self) -> BTreeMap<String, HealthState> {
        self.components.lock().expect("health lock").clone()
    }

    /// True when every component is healthy.
    pub fn ready(&self) -> bool {
        self.components
            .lock()
            .expect("health lock")
            .values()
            .all(|state| *state == HealthState::Healthy)
    }
}

/// The process-wide health registry.
pub fn health() -> &'static HealthRegistry {
    static REGISTRY: OnceLock<HealthRegistry> = OnceLock::new();
    REGISTRY.get_or_init(HealthRegistry::default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_all_healthy() {
        let registry = HealthRegistry::default();
        assert!(registry.ready());
        registry.set("sink:a", HealthState::Starting);
        assert!(!registry.ready());
        registry.set("sink:a", HealthState::Healthy);
        registry.set("sink:b", HealthState::Unhealthy("token rejected".into()));
        assert!(!registry.ready());
        registry.remove("sink:b");
        assert!(registry.ready());
    }
}

//! Denying API actions as a RAM policy would (`local-server --deny-action`), so that tests can
//! run the forwarder with least-privilege credentials. A denied call gets what the real
//! service answers: 401 `Unauthorized`, "denied by sts or ram, action: log:ACTION, resource:
//! acs:log:REGION:ACCOUNT:project/PROJECT/logstore/LOGSTORE/consumergroup/GROUP".

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::RwLock;

use super::state::Failure;
use crate::source::ApiErrorCode;

/// An action that can be denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DeniedAction {
    /// `log:ListConsumerGroup`.
    ListConsumerGroup,
    /// `log:CreateConsumerGroup`.
    CreateConsumerGroup,
    /// `log:UpdateConsumerGroup`.
    UpdateConsumerGroup,
}

impl DeniedAction {
    const ALL: [Self; 3] = [
        Self::ListConsumerGroup,
        Self::CreateConsumerGroup,
        Self::UpdateConsumerGroup,
    ];
}

impl fmt::Display for DeniedAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ListConsumerGroup => "ListConsumerGroup",
            Self::CreateConsumerGroup => "CreateConsumerGroup",
            Self::UpdateConsumerGroup => "UpdateConsumerGroup",
        })
    }
}

/// An action name that is not one of [`DeniedAction`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown action `{0}`: expected ListConsumerGroup, CreateConsumerGroup or UpdateConsumerGroup"
)]
pub struct UnknownAction(String);

impl FromStr for DeniedAction {
    type Err = UnknownAction;

    /// Parses `ListConsumerGroup` or `log:ListConsumerGroup` (as a RAM policy names it).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let name = text.trim().strip_prefix("log:").unwrap_or(text.trim());
        Self::ALL
            .into_iter()
            .find(|action| action.to_string() == name)
            .ok_or_else(|| UnknownAction(text.to_owned()))
    }
}

/// The denied actions of a running server.
#[derive(Debug, Default)]
pub struct Denials(RwLock<BTreeSet<DeniedAction>>);

impl Denials {
    /// Denies exactly `actions` from now on.
    pub fn set(&self, actions: &[DeniedAction]) {
        *self.0.write().expect("denials lock") = actions.iter().copied().collect();
    }

    /// Refuses `action` on the consumer groups of `project`/`logstore` (`group`, or `*` for
    /// the list) when it is denied.
    pub fn check(
        &self,
        action: DeniedAction,
        region: &str,
        project: &str,
        logstore: &str,
        group: &str,
    ) -> Result<(), Failure> {
        if !self.0.read().expect("denials lock").contains(&action) {
            return Ok(());
        }
        Err(Failure::new(
            ApiErrorCode::Unauthorized,
            format!(
                "denied by sts or ram, action: log:{action}, resource: acs:log:{region}:local:project/{project}/logstore/{logstore}/consumergroup/{group}"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_denied_actions_are_refused_as_a_ram_policy_refuses_them() {
        let denials = Denials::default();
        let list = DeniedAction::ListConsumerGroup;
        assert!(denials.check(list, "r", "p", "l", "*").is_ok());
        denials.set(&[list, "log:UpdateConsumerGroup".parse().unwrap()]);
        let refused = denials.check(list, "r", "p", "l", "*").unwrap_err();
        assert_eq!(refused.code, ApiErrorCode::Unauthorized);
        assert_eq!(refused.code.http_status(), 401);
        assert_eq!(
            refused.message,
            "denied by sts or ram, action: log:ListConsumerGroup, resource: acs:log:r:local:project/p/logstore/l/consumergroup/*"
        );
        let create = DeniedAction::CreateConsumerGroup;
        assert!(denials.check(create, "r", "p", "l", "g").is_ok());
        assert!("DeleteProject".parse::<DeniedAction>().is_err());
    }
}

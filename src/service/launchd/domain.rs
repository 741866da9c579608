//! launchd domains and service targets (`gui/501`, `gui/501/ai.openclaw.gateway`).
//!
//! A LaunchAgent lives in the per-login `gui/<uid>` domain (it exists only while the user has a
//! GUI login session; over SSH it is missing and launchctl answers 112/125). `user/<uid>` exists
//! without a login; `system` holds LaunchDaemons and is only queried by us (to refuse installing
//! an agent that a same-label daemon would shadow).
use std::fmt;

/// A launchd domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// `gui/<uid>`: the logged-in user's Aqua session (where LaunchAgents belong).
    Gui(u32),
    /// `user/<uid>`: the user's background domain (exists without a GUI login).
    User(u32),
    /// `system`: LaunchDaemons.
    System,
}

impl Domain {
    /// The domain target (`gui/501`).
    pub fn target(&self) -> String {
        self.to_string()
    }

    /// The service target for `label` in this domain (`gui/501/<label>`).
    pub fn service(&self, label: &str) -> String {
        format!("{self}/{label}")
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Domain::Gui(uid) => write!(f, "gui/{uid}"),
            Domain::User(uid) => write!(f, "user/{uid}"),
            Domain::System => f.write_str("system"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(Domain::Gui(501).target(), "gui/501");
        assert_eq!(
            Domain::Gui(501).service("ai.openclaw.gateway"),
            "gui/501/ai.openclaw.gateway"
        );
        assert_eq!(Domain::User(7).service("x"), "user/7/x");
        assert_eq!(Domain::System.service("x"), "system/x");
    }
}

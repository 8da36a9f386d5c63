//! The permission model: scopes by resource, scope groups, and the check `X:all` grants `X:*`.

use serde::Serialize;

/// A resource and the actions a key can be granted on it.
#[derive(Debug, Serialize)]
pub struct Resource {
    pub id: &'static str,
    pub name: &'static str,
    pub actions: &'static [Action],
}

#[derive(Debug, Serialize)]
pub struct Action {
    pub scope: &'static str,
    pub label: &'static str,
}

/// A predefined bundle of scopes, as the admin UI offers them.
#[derive(Debug, Serialize)]
pub struct ScopeGroup {
    pub id: &'static str,
    pub name: &'static str,
    pub scopes: &'static [&'static str],
    pub included: &'static str,
    pub best_for: &'static str,
}

macro_rules! act {
    ($scope:literal, $label:literal) => {
        Action {
            scope: $scope,
            label: $label,
        }
    };
}

pub const RESOURCES: &[Resource] = &[
    Resource {
        id: "broadcast",
        name: "Broadcast",
        actions: &[
            act!("broadcast:create", "Create"),
            act!("broadcast:read", "Read"),
            act!("broadcast:send", "Send"),
            act!("broadcast:delete", "Delete"),
            act!("broadcast:all", "All"),
        ],
    },
    Resource {
        id: "contacts",
        name: "Contacts",
        actions: &[
            act!("contacts:create", "Create"),
            act!("contacts:read", "Read"),
            act!("contacts:read_all", "Read All"),
            act!("contacts:update", "Update"),
            act!("contacts:delete", "Delete"),
            act!("contacts:all", "All"),
        ],
    },
    Resource {
        id: "leads",
        name: "Leads",
        actions: &[
            act!("leads:create", "Create"),
            act!("leads:read", "Read"),
            act!("leads:read_all", "Read All"),
            act!("leads:update", "Update"),
            act!("leads:assign", "Assign"),
            act!("leads:delete", "Delete"),
            act!("leads:all", "All"),
        ],
    },
    Resource {
        id: "template",
        name: "Template",
        actions: &[
            act!("template:read", "Read"),
            act!("template:create", "Create"),
            act!("template:update", "Update"),
            act!("template:delete", "Delete"),
            act!("template:all", "All"),
        ],
    },
    Resource {
        id: "chatbot_flows",
        name: "Chatbot Flows",
        actions: &[act!("chatbot_flows:webhook", "Webhook")],
    },
    Resource {
        id: "webhooks",
        name: "Webhooks",
        actions: &[act!("webhooks:manage", "Manage")],
    },
];

pub const FULL_ACCESS: &[&str] = &[
    "broadcast:all",
    "broadcast:create",
    "broadcast:delete",
    "broadcast:read",
    "broadcast:send",
    "chatbot_flows:webhook",
    "contacts:all",
    "contacts:create",
    "contacts:delete",
    "contacts:read",
    "contacts:read_all",
    "contacts:update",
    "leads:all",
    "leads:assign",
    "leads:create",
    "leads:delete",
    "leads:read",
    "leads:read_all",
    "leads:update",
    "template:all",
    "template:create",
    "template:delete",
    "template:read",
    "template:update",
    "webhooks:manage",
];

pub const GROUPS: &[ScopeGroup] = &[
    ScopeGroup {
        id: "broadcast_manager",
        name: "Broadcast Manager",
        scopes: &["broadcast:send", "contacts:read", "template:read"],
        included: "Send broadcasts, read templates, read contacts",
        best_for: "Sending bulk messages from external tools",
    },
    ScopeGroup {
        id: "contact_manager",
        name: "Contact Manager",
        scopes: &["contacts:all", "leads:read"],
        included: "Full contact access, read leads",
        best_for: "CRM integrations that sync contacts",
    },
    ScopeGroup {
        id: "lead_manager",
        name: "Lead Manager",
        scopes: &["contacts:read", "leads:all"],
        included: "Full lead access, read contacts",
        best_for: "Lead management integrations",
    },
    ScopeGroup {
        id: "message_sender",
        name: "Message Sender",
        scopes: &["broadcast:send", "template:read"],
        included: "Send broadcasts, read templates",
        best_for: "Simple message-sending integrations",
    },
    ScopeGroup {
        id: "read_only",
        name: "Read Only",
        scopes: &[
            "broadcast:read",
            "contacts:read",
            "contacts:read_all",
            "leads:read",
            "leads:read_all",
            "template:read",
        ],
        included: "Read broadcasts, contacts, leads, templates",
        best_for: "Reporting and analytics tools",
    },
    ScopeGroup {
        id: "full_access",
        name: "Full Access",
        scopes: FULL_ACCESS,
        included: "All permissions for all resources",
        best_for: "Complete system integrations",
    },
    ScopeGroup {
        id: "webhook_automation",
        name: "Webhook Automation",
        scopes: &["chatbot_flows:webhook", "contacts:read"],
        included: "Chatbot flow webhooks, read contacts",
        best_for: "Triggering chatbot flows from external systems",
    },
];

/// Every scope string a key may hold.
pub fn is_known(scope: &str) -> bool {
    FULL_ACCESS.contains(&scope)
}

pub fn group(id: &str) -> Option<&'static ScopeGroup> {
    GROUPS.iter().find(|g| g.id == id)
}

/// Whether `granted` allows `required`: held exactly, or through `resource:all`.
pub fn allows<S: AsRef<str>>(granted: &[S], required: &str) -> bool {
    let resource = required.split(':').next().unwrap_or(required);
    granted.iter().any(|s| {
        let s = s.as_ref();
        s == required
            || (s.len() == resource.len() + 4 && s.starts_with(resource) && s.ends_with(":all"))
    })
}

/// Sorted, de-duplicated scope list.
pub fn normalise(mut scopes: Vec<String>) -> Vec<String> {
    scopes.sort();
    scopes.dedup();
    scopes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_access_is_sorted_and_complete() {
        let mut all: Vec<&str> = RESOURCES
            .iter()
            .flat_map(|r| r.actions.iter().map(|a| a.scope))
            .collect();
        all.sort();
        assert_eq!(all, FULL_ACCESS);
    }

    #[test]
    fn groups_hold_known_sorted_scopes() {
        assert_eq!(GROUPS.len(), 7);
        for g in GROUPS {
            assert!(g.scopes.iter().all(|s| is_known(s)), "{}", g.id);
            assert!(g.scopes.windows(2).all(|w| w[0] < w[1]), "{}", g.id);
        }
    }

    #[test]
    fn all_grants_every_action_of_its_resource_only() {
        assert!(allows(&["contacts:all"], "contacts:delete"));
        assert!(!allows(&["contacts:all"], "leads:read"));
        assert!(!allows(&["contacts:read"], "contacts:read_all"));
        assert!(allows(&["leads:assign"], "leads:assign"));
        assert!(!allows(&["lead:all"], "leads:read"));
    }
}

//! Typed identifiers. A tenant id cannot be passed where an application id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! guid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn new_random() -> Self {
                Self(Uuid::new_v4())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // Lower-case hyphenated, as Azure prints GUIDs.
                write!(f, "{}", self.0.hyphenated())
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s.trim()).map(Self)
            }
        }
    };
}

guid_id!(
    /// A directory (Azure AD tenant).
    TenantId
);
guid_id!(
    /// A directory object: a user or a service principal (`oid` in tokens).
    ObjectId
);
guid_id!(
    /// An application's client id (`appid`/`azp` in tokens).
    AppId
);
guid_id!(
    /// A subscription, the top of the ARM scope tree.
    SubscriptionId
);
guid_id!(
    /// One client secret of a service principal (`keyId` in Graph).
    SecretId
);
guid_id!(
    /// A family of refresh tokens descending from one sign-in.
    GrantFamilyId
);

/// A signing key's `kid`: its RFC 7638 JWK thumbprint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(pub String);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_print_lower_case_and_parse_any_case() {
        let id: TenantId = "6F1A2B3C-0000-4000-8000-00000000000A"
            .parse()
            .unwrap_or_else(|_| TenantId(Uuid::nil()));
        assert_eq!(id.to_string(), "6f1a2b3c-0000-4000-8000-00000000000a");
        assert!("not-a-guid".parse::<AppId>().is_err());
    }
}

guid_id!(
    /// A role definition (built-in ones have Azure's well-known GUIDs).
    RoleDefinitionId
);
guid_id!(
    /// A role assignment.
    RoleAssignmentId
);
guid_id!(
    /// A workspace's immutable `workspaceId`.
    WorkspaceId
);

/// The key a name is stored and compared under. ARM and the directory compare names (domains,
/// user principal names, resource groups, workspaces, models, services, endpoints, code
/// assets, role names, scopes) without regard to ASCII case and keep the first spelling for
/// display; every store keys them by this one form.
pub fn name_key(name: &str) -> String {
    name.to_ascii_lowercase()
}

//! Permissions (SPEC §2) and the built-in roles.

use serde::{Deserialize, Serialize};

/// One permission a role can grant. Self-service needs none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Permission {
    #[serde(rename = "users:read")]
    UsersRead,
    #[serde(rename = "users:create")]
    UsersCreate,
    #[serde(rename = "users:update")]
    UsersUpdate,
    #[serde(rename = "users:delete")]
    UsersDelete,
    #[serde(rename = "roles:read")]
    RolesRead,
    #[serde(rename = "roles:manage")]
    RolesManage,
    /// Exporting accounts with their password hashes (SPEC §10); held only by `admin` of the
    /// built-in roles.
    #[serde(rename = "users:export_secrets")]
    UsersExportSecrets,
}

impl Permission {
    /// Every permission, in a stable order.
    pub const ALL: [Permission; 7] = [
        Self::UsersRead,
        Self::UsersCreate,
        Self::UsersUpdate,
        Self::UsersDelete,
        Self::RolesRead,
        Self::RolesManage,
        Self::UsersExportSecrets,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::UsersRead => "users:read",
            Self::UsersCreate => "users:create",
            Self::UsersUpdate => "users:update",
            Self::UsersDelete => "users:delete",
            Self::RolesRead => "roles:read",
            Self::RolesManage => "roles:manage",
            Self::UsersExportSecrets => "users:export_secrets",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == raw)
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The built-in role that holds every permission.
pub const ADMIN_ROLE: &str = "admin";
/// The built-in role every self-registered account gets.
pub const USER_ROLE: &str = "user";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_round_trip_through_their_names() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(p));
            assert_eq!(
                serde_json::to_value(p).unwrap(),
                serde_json::json!(p.as_str())
            );
        }
        assert_eq!(Permission::parse("users:write"), None);
    }
}

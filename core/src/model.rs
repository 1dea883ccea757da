//! The JSON views of the resources (SPEC §2) and of issued tokens.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::perms::Permission;

/// A user as clients see it: never a password hash or a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserView {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    /// Whether the owner of `email` proved it by following a verification link (SPEC §6).
    pub email_verified: bool,
    /// The address a change waits to move to, until both addresses confirm it (SPEC §6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_email: Option<String>,
    /// Which addresses confirmed the pending change (present with `pending_email` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_email_confirmations: Option<PendingConfirmations>,
    pub display_name: Option<String>,
    pub roles: Vec<String>,
    pub is_active: bool,
    /// Whether the account has a confirmed second factor (SPEC §8).
    #[serde(default)]
    pub mfa_enabled: bool,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// Row version: bumped on every change; the `ETag` is derived from it.
    pub version: i64,
}

/// Which addresses confirmed a pending e-mail change: the current one (needed only when it is
/// verified; `true` from the start otherwise) and the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PendingConfirmations {
    pub current: bool,
    pub new: bool,
}

impl UserView {
    /// The strong entity tag of this representation.
    pub fn etag(&self) -> String {
        etag(self.id, self.version)
    }
}

/// The entity tag of version `version` of user `id`.
pub fn etag(id: Uuid, version: i64) -> String {
    format!("\"{}-{version}\"", id.simple())
}

/// A role as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoleView {
    pub name: String,
    pub description: String,
    pub permissions: Vec<Permission>,
    pub builtin: bool,
}

/// The body of a successful login or refresh (RFC 6749 §5.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: i64,
    pub refresh_token: String,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

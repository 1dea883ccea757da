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
    pub display_name: Option<String>,
    pub roles: Vec<String>,
    pub is_active: bool,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// Row version: bumped on every change; the `ETag` is derived from it.
    pub version: i64,
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

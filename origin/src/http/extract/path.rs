//! Typed path parameters: [`UserId`] is the `{id}` segment as a UUID, [`SessionIdPath`] the
//! `{sid}` segment as one, [`FactorIdPath`] a factor's `{id}`, [`RoleNamePath`] the `{name}` segment as a role name. A segment that cannot be one names nothing (`404`), so no
//! hostile segment reaches a query.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use users_core::fields::RoleName;
use uuid::Uuid;

use crate::http::error::ApiError;
use crate::state::AppState;

/// The `{id}` path segment of a `/users/{id}` route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserId(pub Uuid);

impl FromRequestParts<AppState> for UserId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let raw = segment(parts, state, "id").await?;
        Uuid::parse_str(&raw)
            .map(Self)
            .map_err(|_| ApiError::NotFound)
    }
}

/// The `{sid}` path segment of a `/users/{id}/sessions/{sid}` route: a session id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionIdPath(pub Uuid);

impl FromRequestParts<AppState> for SessionIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let raw = segment(parts, state, "sid").await?;
        Uuid::parse_str(&raw)
            .map(Self)
            .map_err(|_| ApiError::NotFound)
    }
}

/// The `{id}` path segment of a `/users/me/mfa/totp/{id}/confirm` route: a factor id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FactorIdPath(pub Uuid);

impl FromRequestParts<AppState> for FactorIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        UserId::from_request_parts(parts, state)
            .await
            .map(|UserId(id)| Self(id))
    }
}

/// The `{name}` path segment of a `/roles/{name}` or `/users/{id}/roles/{name}` route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleNamePath(pub RoleName);

impl FromRequestParts<AppState> for RoleNamePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let raw = segment(parts, state, "name").await?;
        RoleName::parse(&raw)
            .map(Self)
            .map_err(|_| ApiError::NotFound)
    }
}

/// The percent-decoded path segment `name` (`400` when it is not UTF-8, `404` when absent).
async fn segment(parts: &mut Parts, state: &AppState, name: &str) -> Result<String, ApiError> {
    let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
        .await
        .map_err(|_| ApiError::Malformed("The request path could not be read.".into()))?;
    params
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, raw)| raw)
        .ok_or(ApiError::NotFound)
}

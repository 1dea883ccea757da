//! Typed path parameters: [`UserId`] is the `{id}` segment as a UUID; anything that is not a
//! UUID names no user (`404`).

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use uuid::Uuid;

use crate::http::error::ApiError;
use crate::state::AppState;

/// The `{id}` path segment of a `/users/{id}` route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserId(pub Uuid);

impl FromRequestParts<AppState> for UserId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::Malformed("The request could not be read.".into()))?;
        params
            .iter()
            .find(|(name, _)| name == "id")
            .and_then(|(_, raw)| Uuid::parse_str(raw).ok())
            .map(Self)
            .ok_or(ApiError::NotFound)
    }
}

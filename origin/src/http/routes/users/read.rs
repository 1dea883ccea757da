//! `GET /users/me` and `GET /users/{id}`: reads through the user-view cache, with `ETag` and
//! `If-None-Match`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use users_core::model::UserView;
use users_core::perms::Permission;

use crate::accounts::cached_view;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Auth, UserId};
use crate::http::respond::read_response;
use crate::state::AppState;

/// `GET /users/me`.
#[utoipa::path(get, path = "/users/me", tag = "users", security(("bearer" = [])), params(("If-None-Match" = Option<String>, Header)), responses((status = 200, description = "Your account", body = UserView, headers(("ETag" = String))), (status = 304, description = "Not modified")))]
pub async fn get_me(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let view = cached_view(&state, auth.user_id)
        .await?
        .ok_or(ApiError::InvalidToken)?;
    Ok(read_response(&view, &headers))
}

/// `GET /users/{id}`: self or `users:read`; anyone else gets `404`.
#[utoipa::path(get, path = "/users/{id}", tag = "users", security(("bearer" = [])), params(("id" = String, Path, description = "User id (UUID)"), ("If-None-Match" = Option<String>, Header)), responses((status = 200, description = "The account", body = UserView, headers(("ETag" = String))), (status = 304, description = "Not modified")))]
pub async fn get_user(
    State(state): State<AppState>,
    auth: Auth,
    UserId(id): UserId,
    headers: HeaderMap,
) -> ApiResult<Response> {
    auth.require_on(Some(id), Permission::UsersRead)?;
    let view = cached_view(&state, id).await?.ok_or(ApiError::NotFound)?;
    Ok(read_response(&view, &headers))
}

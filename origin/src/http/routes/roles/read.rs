//! `GET /roles` and `GET /roles/{name}` (`roles:read`).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use users_core::model::RoleView;
use users_core::perms::Permission;

use crate::db;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Auth, RoleNamePath};
use crate::state::AppState;

/// Every role.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct RoleList {
    items: Vec<RoleView>,
}

#[utoipa::path(get, path = "/roles", tag = "roles", security(("bearer" = [])), responses((status = 200, description = "Every role", body = RoleList)))]
pub async fn list_roles(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Value>> {
    auth.require(Permission::RolesRead)?;
    let client = state.db.get().await?;
    Ok(Json(json!({"items": db::roles::list(&client).await?})))
}

#[utoipa::path(get, path = "/roles/{name}", tag = "roles", security(("bearer" = [])), params(("name" = String, Path)), responses((status = 200, description = "The role", body = RoleView)))]
pub async fn get_role(
    State(state): State<AppState>,
    auth: Auth,
    RoleNamePath(name): RoleNamePath,
) -> ApiResult<Json<RoleView>> {
    auth.require(Permission::RolesRead)?;
    let client = state.db.get().await?;
    Ok(Json(
        db::roles::get(&client, name.as_str())
            .await?
            .ok_or(ApiError::NotFound)?,
    ))
}

//! `PUT` and `DELETE /users/{id}/roles/{name}` (`users:update`): one role granted or revoked;
//! either revokes the user's sessions.

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;
use users_core::fields::RoleName;
use users_core::perms::{ADMIN_ROLE, Permission};
use uuid::Uuid;

use crate::accounts::{check_grantable, guard_last_admin, revoke_sessions};
use crate::db::{self, audit::Event};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Auth, RoleNamePath, UserId};
use crate::state::AppState;
use crate::write::Write;
async fn role_change(
    state: AppState,
    auth: Auth,
    id: Uuid,
    name: RoleName,
    grant: bool,
) -> ApiResult<StatusCode> {
    auth.require_on(None, Permission::UsersUpdate)?;
    let mut client = state.db.get().await?;
    let role = db::roles::get(&client, name.as_str())
        .await?
        .ok_or(ApiError::NotFound)?;
    if grant {
        check_grantable(&client, &auth.perms, std::slice::from_ref(&role.name)).await?;
    }
    let mut write = Write::begin(&mut client, &state.cache).await?;
    let tx = &write.tx;
    let user = db::users::get_for_update(tx, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let holds = user.roles.contains(&role.name);
    if grant != holds {
        let mut roles = user.roles.clone();
        if grant {
            roles.push(role.name.clone());
        } else {
            if role.name == ADMIN_ROLE {
                guard_last_admin(tx, &user).await?;
            }
            roles.retain(|r| r != &role.name);
        }
        db::users::set_roles(tx, id, &roles).await?;
        db::users::touch(tx, id).await?;
        revoke_sessions(tx, id).await?;
        let action = if grant {
            "role.granted"
        } else {
            "role.revoked"
        };
        db::audit::record(
            tx,
            &auth.ctx,
            Event::new(action, Some(auth.user_id), Some(id)).with(json!({"role": role.name})),
        )
        .await?;
        write.invalidate(id, user.version + 1);
    }
    write.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /users/{id}/roles/{name}` (`users:update`).
#[utoipa::path(put, path = "/users/{id}/roles/{name}", tag = "users", security(("bearer" = [])), params(("id" = String, Path), ("name" = String, Path)), responses((status = 204, description = "The user holds the role")))]
pub async fn grant_role(
    State(state): State<AppState>,
    auth: Auth,
    UserId(id): UserId,
    RoleNamePath(name): RoleNamePath,
) -> ApiResult<StatusCode> {
    role_change(state, auth, id, name, true).await
}

/// `DELETE /users/{id}/roles/{name}` (`users:update`).
#[utoipa::path(delete, path = "/users/{id}/roles/{name}", tag = "users", security(("bearer" = [])), params(("id" = String, Path), ("name" = String, Path)), responses((status = 204, description = "The user no longer holds the role")))]
pub async fn revoke_role(
    State(state): State<AppState>,
    auth: Auth,
    UserId(id): UserId,
    RoleNamePath(name): RoleNamePath,
) -> ApiResult<StatusCode> {
    role_change(state, auth, id, name, false).await
}

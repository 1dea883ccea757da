//! `DELETE /users/{id}` (self or `users:delete`): removes the account and its personal data.

use axum::extract::State;
use axum::http::StatusCode;
use users_core::perms::Permission;

use crate::accounts::guard_last_admin;
use crate::db::{self, audit::Event};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Auth, UserId};
use crate::state::AppState;
use crate::write::Write;

/// `DELETE /users/{id}` (self or `users:delete`): removes the account and its personal data.
#[utoipa::path(delete, path = "/users/{id}", tag = "users", security(("bearer" = [])), params(("id" = String, Path)), responses((status = 204, description = "Deleted")))]
pub async fn delete_user(
    State(state): State<AppState>,
    auth: Auth,
    UserId(id): UserId,
) -> ApiResult<StatusCode> {
    auth.require_on(Some(id), Permission::UsersDelete)?;
    let mut client = state.db.get().await?;
    let mut write = Write::begin(&mut client, &state.cache).await?;
    let user = db::users::get_for_update(&write.tx, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    guard_last_admin(&write.tx, &user).await?;
    db::users::delete(&write.tx, &user).await?;
    db::audit::record(
        &write.tx,
        &auth.ctx,
        Event::new("user.deleted", Some(auth.user_id), Some(id)),
    )
    .await?;
    write.deleted(id);
    write.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

//! `POST /users` (`users:create`): an administrator creates an account with chosen roles. Its
//! address counts as verified only when the administrator says so (`email_verified: true`);
//! otherwise the account gets a verification mail.

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use users_core::model::UserView;
use users_core::perms::{Permission, USER_ROLE};

use crate::accounts::{check_grantable, validate_new};
use crate::db::{self, audit::Event};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::Auth;
use crate::http::idempotency::{self, IdempotentJson};
use crate::http::respond::created;
use crate::idempotency::{Caller, Key};
use crate::state::AppState;
use crate::verification;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    #[schema(pattern = "^[A-Za-z0-9_.-]{3,32}$")]
    username: Option<String>,
    #[schema(format = Email, max_length = 254)]
    email: Option<String>,
    #[schema(min_length = 15, max_length = 128)]
    password: Option<String>,
    #[schema(max_length = 100)]
    display_name: Option<String>,
    roles: Option<Vec<String>>,
    is_active: Option<bool>,
    /// `true`: the address is known to be the owner's (no verification mail). Default `false`.
    email_verified: Option<bool>,
}

/// `POST /users` (`users:create`).
#[utoipa::path(post, path = "/users", tag = "users", security(("bearer" = [])), request_body = CreateBody, responses((status = 201, description = "Account created", body = UserView, headers(("Location" = String), ("ETag" = String)))))]
pub async fn create_user(
    State(state): State<AppState>,
    auth: Auth,
    IdempotentJson { body, key }: IdempotentJson<CreateBody>,
) -> ApiResult<Response> {
    let key = key.map(|k| k.of(Caller::User(auth.user_id)));
    let work = create_once(&state, &auth, body, key.as_ref());
    idempotency::answer(&state, key.as_ref(), work).await
}

async fn create_once(
    state: &AppState,
    auth: &Auth,
    body: Result<CreateBody, ApiError>,
    key: Option<&Key>,
) -> ApiResult<Response> {
    let body = body?;
    auth.require(Permission::UsersCreate)?;
    let new = validate_new(
        body.username.as_deref(),
        body.email.as_deref(),
        body.password.as_deref(),
        body.display_name.as_deref(),
    )?;
    let mut roles = body.roles.unwrap_or_else(|| vec![USER_ROLE.to_owned()]);
    roles.sort();
    roles.dedup();
    let roles = check_grantable(&state.db.get().await?, &auth.perms, &roles).await?;
    let hash = state.hasher.hash(new.password.clone()).await?;
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    if let Some(replay) = idempotency::claim(state, &tx, key).await? {
        return Ok(replay);
    }
    let id = new
        .insert(&tx, &hash, body.is_active.unwrap_or(true), &roles)
        .await?;
    db::audit::record(
        &tx,
        &auth.ctx,
        Event::new("user.created", Some(auth.user_id), Some(id)).with(json!({"roles": roles})),
    )
    .await?;
    if body.email_verified == Some(true) {
        db::email::set_verified(&tx, id, true).await?;
    } else {
        let (config, name) = (&state.config, new.username.as_str());
        verification::queue_verification(&tx, config, id, name, new.email.as_str()).await?;
    }
    let user = db::users::get(&tx, id).await?.ok_or(ApiError::NotFound)?;
    let res = idempotency::record(state, &tx, key, created(&user.view())).await?;
    tx.commit().await?;
    state.mail_ready.notify_one();
    Ok(res)
}

//! `POST /auth/register`: self-registration with the `user` role.

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use users_core::model::UserView;
use users_core::perms::USER_ROLE;

use crate::accounts::validate_new;
use crate::db::{self, audit::Ctx, audit::Event};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::JsonBody;
use crate::http::respond::created;
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    #[schema(pattern = "^[A-Za-z0-9_.-]{3,32}$")]
    username: Option<String>,
    #[schema(format = Email, max_length = 254)]
    email: Option<String>,
    #[schema(min_length = 15, max_length = 128)]
    password: Option<String>,
    #[schema(max_length = 100)]
    display_name: Option<String>,
}

/// `POST /auth/register`: self-registration with the `user` role.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterBody, responses((status = 201, description = "Account created", body = UserView, headers(("Location" = String), ("ETag" = String)))))]
pub async fn register(
    State(state): State<AppState>,
    ctx: Ctx,
    JsonBody(body): JsonBody<RegisterBody>,
) -> ApiResult<Response> {
    if !state.config.allow_registration {
        return Err(ApiError::RegistrationDisabled);
    }
    let new = validate_new(
        body.username.as_deref(),
        body.email.as_deref(),
        body.password.as_deref(),
        body.display_name.as_deref(),
    )?;
    state.hasher.admit()?;
    let hash = state.hasher.hash(new.password.clone()).await?;
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let id = new
        .insert(&tx, &hash, true, &[USER_ROLE.to_owned()])
        .await?;
    db::audit::record(&tx, &ctx, Event::own("user.registered", id)).await?;
    let user = db::users::get(&tx, id).await?.ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    Ok(created(&user.view()))
}

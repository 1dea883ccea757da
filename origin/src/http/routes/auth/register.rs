//! `POST /auth/register`: self-registration with the `user` role. The new account gets a
//! verification mail; a registration on an address that has an account answers `409` and
//! tells that account's owner (after the answer, so the `409` takes no longer).

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use users_core::fields::Email;
use users_core::model::UserView;
use users_core::perms::USER_ROLE;

use crate::accounts::validate_new;
use crate::db::{self, audit::Ctx, audit::Event};
use crate::http::error::{ApiError, ApiResult};
use crate::http::idempotency::{self, IdempotentJson};
use crate::http::respond::created;
use crate::idempotency::{Caller, Key};
use crate::state::AppState;
use crate::verification;

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
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterBody, responses((status = 201, description = "Account created; a verification link is mailed to its address", body = UserView, headers(("Location" = String), ("ETag" = String))), (status = 409, description = "Username or address taken; the address's owner is mailed a notice", body = users_core::problem::Problem, content_type = "application/problem+json")))]
pub async fn register(
    State(state): State<AppState>,
    ctx: Ctx,
    IdempotentJson { body, key }: IdempotentJson<RegisterBody>,
) -> ApiResult<Response> {
    let key = key.map(|k| k.of(Caller::Anonymous));
    let work = register_once(&state, &ctx, body, key.as_ref());
    idempotency::answer(&state, key.as_ref(), work).await
}

async fn register_once(
    state: &AppState,
    ctx: &Ctx,
    body: Result<RegisterBody, ApiError>,
    key: Option<&Key>,
) -> ApiResult<Response> {
    let body = body?;
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
    if let Some(replay) = idempotency::claim(state, &tx, key).await? {
        return Ok(replay);
    }
    let id = match new.insert(&tx, &hash, true, &[USER_ROLE.to_owned()]).await {
        Ok(id) => id,
        Err(e) => {
            if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
                notify_owner(state, new.email.clone());
            }
            return Err(e.into());
        }
    };
    db::audit::record(&tx, ctx, Event::own("user.registered", id)).await?;
    let user = db::users::get(&tx, id).await?.ok_or(ApiError::NotFound)?;
    let config = &state.config;
    verification::queue_verification(&tx, config, id, &user.username, &user.email).await?;
    let res = idempotency::record(state, &tx, key, created(&user.view())).await?;
    tx.commit().await?;
    state.mail_ready.notify_one();
    Ok(res)
}

/// Mails the owner of `email`, if it has one, that someone tried to register with it; in the
/// background, so the `409` comes as fast as any other.
fn notify_owner(state: &AppState, email: Email) {
    let state = state.clone();
    tokio::spawn(async move {
        if let Err(e) = verification::notify_registration_attempt(&state, &email).await {
            tracing::warn!(error = %e, "registration-attempt notice failed");
        }
    });
}

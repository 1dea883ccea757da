//! Password reset: `POST /auth/password/reset` mails a link (the answer is the same whatever
//! the address), `PUT /auth/password/reset/{token}` sets the new password and revokes every
//! session. Completing a reset also verifies the address the link went to.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use users_core::fields::Email;
use users_core::password::{self, Identity};

use crate::accounts::revoke_sessions;
use crate::db::{self, audit::Ctx, audit::Event};
use crate::fields::Check;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::JsonBody;
use crate::http::idempotency::{self, IdempotentJson};
use crate::http::respond::{accepted, spawn_after};
use crate::idempotency::{Caller, Key};
use crate::state::AppState;
use crate::tokens;
use crate::write::Write;

/// The answer to a reset request: the same whatever the address.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct Accepted {
    detail: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequestBody {
    email: Option<String>,
}

/// `POST /auth/password/reset`: always `202` with the same body. The look-up and the mail
/// happen after the response, so timing says nothing about whether the address is known.
#[utoipa::path(post, path = "/auth/password/reset", tag = "auth", request_body = ResetRequestBody, responses((status = 202, description = "Accepted, whether or not the address is known", body = Accepted)))]
pub async fn request_reset(
    State(state): State<AppState>,
    ctx: Ctx,
    IdempotentJson { body, key }: IdempotentJson<ResetRequestBody>,
) -> ApiResult<Response> {
    let key = key.map(|k| k.of(Caller::Anonymous));
    let work = request_once(&state, ctx, body, key.as_ref());
    idempotency::answer(&state, key.as_ref(), work).await
}

/// With a key, the answer is stored before the look-up and the mail start: a repeat is
/// answered without a second mail.
async fn request_once(
    state: &AppState,
    ctx: Ctx,
    body: Result<ResetRequestBody, ApiError>,
    key: Option<&Key>,
) -> ApiResult<Response> {
    let body = body?;
    let mut check = Check::default();
    let email = check
        .required("email", body.email.as_deref())
        .and_then(|e| check.field("email", Email::parse(e)));
    check.finish()?;
    let mut res =
        accepted("If an account with that email address exists, a reset link has been sent to it.");
    if key.is_some() {
        let mut client = state.db.get().await?;
        let tx = client.transaction().await?;
        if let Some(replay) = idempotency::claim(state, &tx, key).await? {
            return Ok(replay);
        }
        res = idempotency::record(state, &tx, key, res).await?;
        tx.commit().await?;
    }
    if let Some(email) = email {
        let state = state.clone();
        let work = async move { send_reset(&state, &ctx, &email).await };
        spawn_after("a password reset request", work);
    }
    Ok(res)
}

async fn send_reset(state: &AppState, ctx: &Ctx, email: &Email) -> ApiResult<()> {
    let mut client = state.db.get().await?;
    let Some(user) = db::users::get_by_email(&client, email.as_str())
        .await?
        .filter(|u| u.is_active)
    else {
        return Ok(());
    };
    let (token, digest) = tokens::generate();
    let ttl = state.config.password_reset_ttl;
    let link = format!("{}/auth/password/reset/{token}", state.config.public_url);
    let body = format!(
        "Hello {},\n\nSomeone asked to reset the password of your account. If it was you, set a new \
         password within {} minutes by sending it to this address (HTTP PUT with {{\"password\": \"...\"}}):\n\n\
         {link}\n\nReset token: {token}\n\nIf it was not you, ignore this message: your password stays as it is.\n",
        user.username,
        (ttl + 59) / 60
    );
    let tx = client.transaction().await?;
    db::tokens::insert_reset(&tx, user.id, &user.email, &digest, ttl).await?;
    db::outbox::enqueue(&tx, &user.email, "Reset your password", &body).await?;
    db::audit::record(
        &tx,
        ctx,
        Event::new("password.reset_requested", None, Some(user.id)),
    )
    .await?;
    tx.commit().await?;
    state.mail_ready.notify_one();
    Ok(())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetConfirmBody {
    password: Option<String>,
}

/// `PUT /auth/password/reset/{token}`: sets a new password, spends the token and revokes every
/// session and access token of the user.
#[utoipa::path(put, path = "/auth/password/reset/{token}", tag = "auth", params(("token" = String, Path, description = "The token from the reset mail")), request_body = ResetConfirmBody, responses((status = 204, description = "Password set; every session revoked")))]
pub async fn confirm_reset(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(token): Path<String>,
    JsonBody(body): JsonBody<ResetConfirmBody>,
) -> ApiResult<StatusCode> {
    if token.len() > 128 {
        return Err(ApiError::InvalidResetToken);
    }
    let digest = tokens::digest(&token);
    let (user_id, user) = {
        let client = state.db.get().await?;
        let user_id = db::tokens::find_reset(&client, &digest)
            .await?
            .ok_or(ApiError::InvalidResetToken)?;
        let user = db::users::get(&client, user_id)
            .await?
            .ok_or(ApiError::InvalidResetToken)?;
        (user_id, user)
    };
    let mut check = Check::default();
    let password = check.required("password", body.password.as_deref());
    if let Some(p) = password {
        let identity = Identity {
            username: &user.username,
            email: &user.email,
            display_name: user.display_name.as_deref(),
        };
        check.field("password", password::check(p, identity));
    }
    check.finish()?;
    let hash = state
        .hasher
        .hash(password.unwrap_or_default().to_owned())
        .await?;
    let mut client = state.db.get().await?;
    let mut write = Write::begin(&mut client, &state.cache).await?;
    let tx = &write.tx;
    let recipient = db::tokens::reset_recipient(tx, &digest).await?;
    if !db::tokens::spend_reset(tx, &digest, user_id).await? {
        return Err(ApiError::InvalidResetToken);
    }
    let current = db::users::get_for_update(tx, user_id)
        .await?
        .ok_or(ApiError::InvalidResetToken)?;
    db::users::set_password(tx, user_id, &hash).await?;
    // Following a link mailed to the account's current address proves that address; one
    // mailed to an address the account has left since proves nothing about the new one.
    let proves = recipient.is_some_and(|r| r.eq_ignore_ascii_case(&current.email));
    if proves {
        db::email::set_verified(tx, user_id, true).await?;
    }
    revoke_sessions(tx, user_id).await?;
    db::audit::record(tx, &ctx, Event::own("password.reset", user_id)).await?;
    if proves && !current.email_verified {
        let event = Event::own("email.verified", user_id)
            .with(json!({"email": current.email, "via": "password_reset"}));
        db::audit::record(tx, &ctx, event).await?;
    }
    if let Some(after) = db::users::get(tx, user_id).await? {
        write.store(after.view());
    }
    write.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

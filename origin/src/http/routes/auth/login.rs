//! `POST /auth/login`: JSON `{login, password}` or the OAuth2 password form. Every failure is
//! the same `401`, in the same time, whether or not the account exists; failures are throttled
//! per identifier. A login PostgreSQL could not compare (NUL) is looked up as no account: the
//! same `401`, after the same dummy verification.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::{Request, State};
use serde::Deserialize;
use serde_json::json;
use users_core::model::TokenResponse;
use users_core::password;
use users_core::text;
use uuid::Uuid;

use crate::config::UnverifiedPolicy;
use crate::db::{self, audit::Ctx, audit::Event, sessions::NewLogin};
use crate::fields::Check;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{login_origin, media_type, parse_json_uniform, read_body};
use crate::state::AppState;
use crate::tokens::token_pair;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct LoginJson {
    login: Option<String>,
    password: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct LoginForm {
    username: Option<String>,
    password: Option<String>,
    grant_type: Option<String>,
}

/// `POST /auth/login`: JSON `{login, password}` or the OAuth2 password form.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body(content((LoginJson = "application/json"), (LoginForm = "application/x-www-form-urlencoded"))), responses((status = 200, description = "Tokens", body = TokenResponse)))]
pub async fn login(
    State(state): State<AppState>,
    ctx: Ctx,
    req: Request,
) -> ApiResult<Json<TokenResponse>> {
    let media = media_type(req.headers());
    let (parts, body) = req.into_parts();
    let origin = login_origin(&parts);
    let req = Request::from_parts(parts, body);
    let bytes = read_body(req, &state).await?;
    let (login, password) = match media.as_deref() {
        Some("application/json") => {
            let b: LoginJson = parse_json_uniform(&bytes)?;
            (b.login, b.password)
        }
        Some("application/x-www-form-urlencoded") => {
            let f: LoginForm = serde_urlencoded::from_bytes(&bytes)
                .map_err(|_| ApiError::Malformed("The form body could not be read.".into()))?;
            if f.grant_type.as_deref().is_some_and(|g| g != "password") {
                return Err(ApiError::validation("grant_type", "must be \"password\""));
            }
            (f.username, f.password)
        }
        _ => {
            return Err(ApiError::UnsupportedMediaType(
                "Send application/json or application/x-www-form-urlencoded.".into(),
            ));
        }
    };
    let mut check = Check::default();
    let login = check
        .required("login", login.as_deref().filter(|l| !l.is_empty()))
        .map(str::to_owned);
    let password = check
        .required("password", password.as_deref())
        .map(str::to_owned);
    check.finish()?;
    let (login, password) = (login.unwrap_or_default(), password.unwrap_or_default());
    if login.len() > 320 || password.chars().count() > password::PASSWORD_MAX * 4 {
        return Err(ApiError::InvalidCredentials);
    }

    // Failures are throttled per identifier, whether or not such an account exists.
    let identifier = login.trim().to_lowercase();
    let record = state.limiter.login_attempt(&identifier).await?;
    // Refused before any database work when the hashing queue is already full.
    state.hasher.admit()?;
    // No pooled connection is held while hashing: a busy hashing queue must not starve the pool.
    let found = match text::storable(&login) {
        Ok(login) => db::users::get_by_login(&state.db.get().await?, login).await?,
        Err(_) => None,
    };
    let (user, hash, perms) = match found {
        Some(c) => (Some(c.user), Some(c.password_hash), c.perms),
        None => (None, None, BTreeSet::new()),
    };
    let verification = state.hasher.verify(password, hash).await?;
    let client = state.db.get().await?;
    let Some(user) = user.clone().filter(|u| verification.ok && u.is_active) else {
        // A known account is named by id; only an unknown identifier is kept as typed.
        let (target, details) = match &user {
            Some(u) => (Some(u.id), json!({})),
            None => (None, json!({"login": login})),
        };
        db::audit::record(
            &client,
            &ctx,
            Event::new("login.failed", None, target).with(details),
        )
        .await?;
        state.limiter.login_failed(&identifier).await;
        return Err(ApiError::InvalidCredentials);
    };
    state.limiter.login_succeeded(&identifier, &record).await;
    if let Some(rehash) = verification.rehash {
        db::users::set_password(&client, user.id, &rehash).await?;
    }
    // Only the right password of an unverified account learns that it is unverified.
    if state.config.email.unverified_policy == UnverifiedPolicy::Block && !user.email_verified {
        let event = Event::own("login.blocked_unverified", user.id);
        db::audit::record(&client, &ctx, event).await?;
        return Err(ApiError::EmailUnverified);
    }
    let session_id = Uuid::now_v7();
    let (tokens, digest) = token_pair(&state, &user, perms, session_id);
    let audit = Event::own("login.succeeded", user.id).with(json!({"session_id": session_id}));
    let login = NewLogin {
        session_id,
        user_id: user.id,
        refresh_digest: &digest,
        refresh_ttl: state.config.tokens.refresh_ttl,
        access_ttl: state.config.tokens.access_ttl,
        origin: &origin,
        mfa: false,
    };
    if !db::sessions::open(&client, &login, &ctx, audit).await? {
        // Deleted or deactivated while its password was being checked.
        return Err(ApiError::InvalidCredentials);
    }
    Ok(Json(tokens))
}

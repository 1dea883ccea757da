//! `POST /auth/login`: JSON `{login, password}` or the OAuth2 password form. Every failure is
//! the same `401`, in the same time, whether or not the account exists; failures are throttled
//! per identifier. A login PostgreSQL could not compare (NUL) is looked up as no account: the
//! same `401`, after the same dummy verification.
//!
//! The right password of an account with a second factor gets no tokens: a `401`
//! `/problems/mfa-required` with a single-use `mfa_token` for `POST /auth/mfa/verify` (the
//! OAuth2 form path: the RFC 6749 error `{"error": "mfa_required", "mfa_token": …}`). A wrong
//! password looks the same whether or not the account has one.

use axum::Json;
use axum::extract::{Request, State};
use serde::Deserialize;
use serde_json::json;
use users_core::model::TokenResponse;
use users_core::password;
use users_core::problem::Problem;
use users_core::text;
use users_core::token::AMR_PASSWORD;

use crate::config::UnverifiedPolicy;
use crate::db::{self, audit::Ctx, audit::Event, grants::Grants};
use crate::fields::Check;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{login_origin, media_type, parse_json_uniform, read_body};
use crate::mfa;
use crate::state::AppState;
use crate::tokens;

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
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body(content((LoginJson = "application/json"), (LoginForm = "application/x-www-form-urlencoded"))), responses((status = 200, description = "Tokens", body = TokenResponse), (status = 401, description = "Invalid credentials, or the password was right and the second factor is next (`/problems/mfa-required` with `mfa_token`)", body = Problem, content_type = "application/problem+json")))]
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
    let form = media.as_deref() == Some("application/x-www-form-urlencoded");
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
        Ok(login) => {
            let roles = &state.config.mfa.required_roles;
            db::users::get_by_login(&state.db.get().await?, login, roles).await?
        }
        Err(_) => None,
    };
    let (user, hash, grants) = match found {
        Some(c) => (Some(c.user), Some(c.password_hash), c.grants),
        None => (None, None, Grants::default()),
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
    // The right password of an account with a second factor: no tokens yet, a challenge.
    if user.mfa_enabled {
        let mfa_token = mfa::challenge(&client, &ctx, user.id).await?;
        return Err(ApiError::MfaRequired {
            mfa_token,
            oauth: form,
        });
    }
    let amr = [AMR_PASSWORD];
    let opened = tokens::open_session(
        &state,
        &client,
        &ctx,
        &user,
        &grants,
        &amr,
        &origin,
        json!({}),
    )
    .await?;
    // None: deleted or deactivated while its password was being checked.
    opened.map(Json).ok_or(ApiError::InvalidCredentials)
}

//! `POST /auth/login`: JSON `{login, password}`, or the OAuth2 token endpoint (RFC 6749): form
//! posts of `grant_type=password` or `grant_type=refresh_token` (the rotation of
//! `/auth/refresh`), whose errors carry the RFC 6749 §5.2 members in the problem. Every failure is
//! the same `401`, in the same time, whether or not the account exists; failures are throttled
//! per identifier. A login PostgreSQL could not compare (NUL) is looked up as no account: the
//! same `401`, after the same dummy verification.
//!
//! The right password of an account with a second factor gets no tokens: a `401`
//! `/problems/mfa-required` with a single-use `mfa_token` for `POST /auth/mfa/verify` (the
//! OAuth2 form path: with `"error": "mfa_required"`). A wrong
//! password looks the same whether or not the account has one.

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use users_core::model::TokenResponse;
use users_core::password;
use users_core::problem::Problem;
use users_core::text;
use users_core::token::AMR_PASSWORD;

use crate::config::UnverifiedPolicy;
use crate::db::sessions::Origin;
use crate::db::{self, audit::Ctx, audit::Event, grants::Grants};
use crate::fields::Check;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{login_origin, media_type, parse_json_uniform, read_body};
use crate::http::middleware::settle::NothingToSettle;
use crate::http::respond::TokenAnswer;
use crate::http::routes::auth::session;
use crate::mfa;
use crate::state::AppState;
use crate::tokens;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct LoginJson {
    login: Option<String>,
    password: Option<String>,
}

/// The token endpoint's form (RFC 6749 §4.3.2 and §6).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct LoginForm {
    /// `password` (the default) or `refresh_token`.
    grant_type: Option<String>,
    /// `grant_type=password`: the username or e-mail address.
    username: Option<String>,
    /// `grant_type=password`.
    password: Option<String>,
    /// `grant_type=refresh_token`.
    refresh_token: Option<String>,
    /// Ignored: every client of this server is public.
    #[serde(rename = "client_id")]
    _client_id: Option<String>,
    /// Ignored: a token carries the permissions of its user.
    #[serde(rename = "scope")]
    _scope: Option<String>,
}

const FORM: &str = "application/x-www-form-urlencoded";

/// `POST /auth/login`: JSON `{login, password}`, or the OAuth2 token endpoint's form.
#[utoipa::path(post, path = "/auth/login", tag = "auth",
    request_body(content((LoginJson = "application/json"), (LoginForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Tokens", body = TokenResponse, headers(("Cache-Control" = String, description = "`no-store`"), ("Pragma" = String, description = "`no-cache`"))),
        (status = 400, description = "The form path: a malformed request (`error: invalid_request`) or an unknown grant (`error: unsupported_grant_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Invalid credentials or refresh token (on the form path `error: invalid_grant`), or the password was right and the second factor is next (`/problems/mfa-required` with `mfa_token`; `error: mfa_required`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn login(State(state): State<AppState>, ctx: Ctx, req: Request) -> Response {
    let media = media_type(req.headers());
    let (parts, body) = req.into_parts();
    let origin = login_origin(&parts);
    let bytes = read_body(Request::from_parts(parts, body), &state).await;
    match media.as_deref() {
        Some("application/json") => {
            let answer = async {
                let b: LoginJson = parse_json_uniform(&bytes?)?;
                password_grant(&state, &ctx, &origin, ("login", b.login), b.password).await
            };
            (NothingToSettle, answer.await).into_response()
        }
        Some(FORM) => token_endpoint(&state, &ctx, &origin, bytes).await,
        _ => ApiError::UnsupportedMediaType(
            "Send application/json or application/x-www-form-urlencoded.".into(),
        )
        .into_response(),
    }
}

/// The form path: the password grant or the refresh grant. A missing `grant_type` is the
/// password grant. Only the refresh grant's writes can revoke (a reused token revokes its
/// session): the password grant's answer need not wait to hear its own.
async fn token_endpoint(
    state: &AppState,
    ctx: &Ctx,
    origin: &Origin,
    bytes: Result<Bytes, ApiError>,
) -> Response {
    let form = bytes.and_then(|b| {
        serde_urlencoded::from_bytes::<LoginForm>(&b)
            .map_err(|_| ApiError::Malformed("The form body could not be read.".into()))
    });
    let f = match form {
        Ok(f) => f,
        Err(e) => return ApiError::oauth(e).into_response(),
    };
    match f.grant_type.as_deref() {
        None | Some("password") => {
            let answer =
                password_grant(state, ctx, origin, ("username", f.username), f.password).await;
            (NothingToSettle, answer.map_err(ApiError::oauth)).into_response()
        }
        Some("refresh_token") => session::rotate(state, ctx, f.refresh_token.as_deref())
            .await
            .map_err(ApiError::oauth)
            .into_response(),
        Some(_) => ApiError::oauth(ApiError::UnsupportedGrantType).into_response(),
    }
}

/// The password grant of either path; `login` is named as its path names it.
async fn password_grant(
    state: &AppState,
    ctx: &Ctx,
    origin: &Origin,
    (field, login): (&str, Option<String>),
    password: Option<String>,
) -> ApiResult<TokenAnswer> {
    let mut check = Check::default();
    let login = check
        .required(field, login.as_deref().filter(|l| !l.is_empty()))
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
    let verification = if hash.is_some() {
        state.hasher.verify(password, hash).await?
    } else {
        // The same login always draws the same stand-in: a repeat learns nothing new.
        let pick = state.mfa_keys.draw("login stand-in", &identifier);
        let (verification, format) = state.hasher.verify_unknown(password, pick).await?;
        state
            .metrics
            .unknown_logins
            .with_label_values(&[format])
            .inc();
        verification
    };
    let client = state.db.get().await?;
    let Some(user) = user.clone().filter(|u| verification.ok && u.is_active) else {
        // A known account is named by id; only an unknown identifier is kept as typed.
        let (target, details) = match &user {
            Some(u) => (Some(u.id), json!({})),
            None => (None, json!({"login": login})),
        };
        db::audit::record(
            &client,
            ctx,
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
        db::audit::record(&client, ctx, event).await?;
        return Err(ApiError::EmailUnverified);
    }
    // The right password of an account with a second factor: no tokens yet, a challenge.
    if user.mfa_enabled {
        let mfa_token = mfa::challenge(&client, ctx, user.id).await?;
        return Err(ApiError::MfaRequired { mfa_token });
    }
    let amr = [AMR_PASSWORD];
    let opened =
        tokens::open_session(state, &client, ctx, &user, &grants, &amr, origin, json!({})).await?;
    // None: deleted or deactivated while its password was being checked.
    opened.map(TokenAnswer).ok_or(ApiError::InvalidCredentials)
}

//! `/auth/*`: registration, login, refresh, logout and password reset.

use std::collections::BTreeSet;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use users_core::fields::{DisplayName, Email, Username};
use users_core::model::{TokenResponse, UserView};
use users_core::password::{self, Identity};
use users_core::perms::{Permission, USER_ROLE};
use users_core::token::{AccessClaims, Audience};
use uuid::Uuid;

use super::Check;
use crate::db::{
    self, GenericClient,
    audit::Event,
    tokens::{NewRefresh, Spend},
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, Ctx, JsonBody, OptionalJsonBody, media_type, parse_json, read_body};
use crate::ratelimit::Scope;
use crate::state::{AppState, now};

/// The OpenAPI description of these routes.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    paths(register, login, refresh, logout, request_reset, confirm_reset),
    components(schemas(Accepted))
)]
pub struct Docs;

/// The answer to a reset request: the same whatever the address.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct Accepted {
    detail: String,
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/register", post(register))
        .route("/auth/login", post(login))
        .route("/auth/refresh", post(refresh))
        .route("/auth/logout", post(logout))
        .route("/auth/password/reset", post(request_reset))
        .route("/auth/password/reset/{token}", put(confirm_reset))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    #[schema(pattern = "^[A-Za-z0-9_.-]{3,32}$")]
    username: Option<String>,
    #[schema(format = Email, max_length = 254)]
    email: Option<String>,
    #[schema(min_length = 15, max_length = 128)]
    password: Option<String>,
    #[schema(max_length = 100)]
    display_name: Option<String>,
}

/// Validated identity fields of a new account.
pub struct NewIdentity {
    pub username: Username,
    pub email: Email,
    pub display_name: Option<DisplayName>,
    pub password: String,
}

impl std::fmt::Debug for NewIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewIdentity")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Validates the fields every new account has, listing every problem at once (`422`).
pub fn validate_new(
    username: Option<&str>,
    email: Option<&str>,
    password: Option<&str>,
    display_name: Option<&str>,
) -> ApiResult<NewIdentity> {
    let mut check = Check::default();
    let new = collect_new(&mut check, username, email, password, display_name);
    check.finish()?;
    new.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("validated identity missing")))
}

impl NewIdentity {
    /// Inserts the account with `roles`; returns its id.
    pub async fn insert(
        &self,
        db: &impl GenericClient,
        password_hash: &str,
        is_active: bool,
        roles: &[String],
    ) -> ApiResult<Uuid> {
        let new = db::users::NewUser {
            username: self.username.as_str(),
            email: self.email.as_str(),
            display_name: self.display_name.as_ref().map(DisplayName::as_str),
            password_hash,
            is_active,
        };
        let id = db::users::insert(db, &new).await?;
        db::users::set_roles(db, id, roles).await?;
        Ok(id)
    }
}

fn collect_new(
    check: &mut Check,
    username: Option<&str>,
    email: Option<&str>,
    password: Option<&str>,
    display_name: Option<&str>,
) -> Option<NewIdentity> {
    let username = check
        .required("username", username)
        .and_then(|u| check.field("username", Username::parse(u)));
    let email = check
        .required("email", email)
        .and_then(|e| check.field("email", Email::parse(e)));
    let display_name = display_name.map(|d| check.field("display_name", DisplayName::parse(d)));
    let password = check.required("password", password);
    if let Some(password) = password {
        // Checked even when other fields are invalid, so one answer lists every problem.
        let identity = Identity {
            username: username.as_ref().map_or("", Username::as_str),
            email: email.as_ref().map_or("", Email::as_str),
            display_name: display_name
                .as_ref()
                .and_then(|d| d.as_ref().map(DisplayName::as_str)),
        };
        check.field("password", password::check(password, identity))?;
    }
    let (username, email, password) = (username?, email?, password?);
    let display_name = match display_name {
        Some(d) => Some(d?),
        None => None,
    };
    Some(NewIdentity {
        username,
        email,
        display_name,
        password: password.to_owned(),
    })
}

/// `POST /auth/register`: self-registration with the `user` role.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterBody, responses((status = 201, description = "Account created", body = UserView, headers(("Location" = String), ("ETag" = String)))))]
async fn register(
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
    db::audit::record(
        &tx,
        &ctx,
        Event {
            action: "user.registered",
            actor: Some(id),
            target: Some(id),
            details: json!({}),
        },
    )
    .await?;
    let user = db::users::get(&tx, id).await?.ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    Ok(super::users::created(&user.view()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct LoginJson {
    login: Option<String>,
    password: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct LoginForm {
    username: Option<String>,
    password: Option<String>,
    grant_type: Option<String>,
}

/// `POST /auth/login`: JSON `{login, password}` or the OAuth2 password form.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body(content((LoginJson = "application/json"), (LoginForm = "application/x-www-form-urlencoded"))), responses((status = 200, description = "Tokens", body = TokenResponse)))]
async fn login(
    State(state): State<AppState>,
    ctx: Ctx,
    req: Request,
) -> ApiResult<Json<TokenResponse>> {
    let media = media_type(req.headers());
    let bytes = read_body(req, &state).await?;
    let (login, password) = match media.as_deref() {
        Some("application/json") => {
            let b: LoginJson = parse_json(&bytes)?;
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
    let record = state.limiter.login_record(&identifier).await;
    if let Some(secs) = record.locked_secs {
        state
            .metrics
            .rate_limited
            .with_label_values(&[Scope::LoginFailures.as_str()])
            .inc();
        return Err(ApiError::RateLimited {
            retry_after_secs: secs,
            quota: None,
        });
    }
    // Refused before any database work when the hashing queue is already full.
    state.hasher.admit()?;
    // No pooled connection is held while hashing: a busy hashing queue must not starve the pool.
    let found = db::users::get_by_login(&state.db.get().await?, &login).await?;
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
            Event {
                action: "login.failed",
                actor: None,
                target,
                details,
            },
        )
        .await?;
        state.limiter.login_failed(&identifier).await;
        return Err(ApiError::InvalidCredentials);
    };
    state.limiter.login_succeeded(&identifier, &record).await;
    if let Some(rehash) = verification.rehash {
        db::users::set_password(&client, user.id, &rehash).await?;
    }
    let (tokens, digest) = token_pair(&state, &user, perms);
    let audit = Event {
        action: "login.succeeded",
        actor: Some(user.id),
        target: Some(user.id),
        details: json!({}),
    };
    let ttl = state.config.tokens.refresh_ttl;
    let token = NewRefresh::new(user.id, Uuid::now_v7(), &digest, ttl);
    if !db::tokens::insert_refresh_audited(&client, &token, &ctx, audit).await? {
        // Deleted or deactivated while its password was being checked.
        return Err(ApiError::InvalidCredentials);
    }
    Ok(Json(tokens))
}

/// A token pair for `user`: an access token signed with its roles, `perms` and security
/// version, and a new refresh token with the digest the caller stores.
pub fn token_pair(
    state: &AppState,
    user: &db::users::UserRow,
    perms: BTreeSet<Permission>,
) -> (TokenResponse, Vec<u8>) {
    let claims = AccessClaims {
        iss: state.config.tokens.issuer.clone(),
        aud: Audience::One(state.config.tokens.audience.clone()),
        sub: user.id,
        jti: Uuid::now_v7().to_string(),
        roles: user.roles.clone(),
        perms: perms.into_iter().collect(),
        sv: user.security_version,
    };
    let ttl = state.config.tokens.access_ttl;
    let access_token = state.keys.signer.sign(claims, now(), ttl);
    let (refresh_token, digest) = db::tokens::generate();
    let tokens = TokenResponse {
        access_token,
        token_type: "Bearer".into(),
        expires_in: ttl,
        refresh_token,
    };
    (tokens, digest)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: Option<String>,
}

/// `POST /auth/refresh`: rotates the refresh token; replaying a spent one revokes its family.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshBody, responses((status = 200, description = "A new token pair", body = TokenResponse)))]
async fn refresh(
    State(state): State<AppState>,
    ctx: Ctx,
    JsonBody(body): JsonBody<RefreshBody>,
) -> ApiResult<Json<TokenResponse>> {
    let mut check = Check::default();
    let token = check
        .required("refresh_token", body.refresh_token.as_deref())
        .map(str::to_owned);
    check.finish()?;
    let token = token.unwrap_or_default();
    if token.len() > 128 {
        return Err(ApiError::InvalidGrant);
    }
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let spend = db::tokens::spend_refresh(&tx, &db::tokens::digest(&token)).await?;
    let (user_id, family) = match spend {
        Spend::Spent { user_id, family_id } => (user_id, family_id),
        Spend::Reused => {
            db::audit::record(
                &tx,
                &ctx,
                Event {
                    action: "refresh.reused",
                    actor: None,
                    target: None,
                    details: json!({}),
                },
            )
            .await?;
            tx.commit().await?;
            return Err(ApiError::InvalidGrant);
        }
        Spend::Invalid => return Err(ApiError::InvalidGrant),
    };
    let user = db::users::get(&tx, user_id)
        .await?
        .filter(|u| u.is_active)
        .ok_or(ApiError::InvalidGrant)?;
    let principal = db::users::principal(&tx, user.id)
        .await?
        .ok_or(ApiError::InvalidGrant)?;
    let (tokens, digest) = token_pair(&state, &user, principal.perms);
    let ttl = state.config.tokens.refresh_ttl;
    db::tokens::insert_refresh(&tx, &NewRefresh::new(user.id, family, &digest, ttl)).await?;
    tx.commit().await?;
    Ok(Json(tokens))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct LogoutBody {
    refresh_token: Option<String>,
    all: Option<bool>,
}

/// `POST /auth/logout`: ends one session (its refresh family) or, with `all`, every session
/// and every outstanding access token.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", request_body(content = LogoutBody, description = "Optional"), security(("bearer" = [])), responses((status = 204, description = "Logged out")))]
async fn logout(
    State(state): State<AppState>,
    auth: Auth,
    OptionalJsonBody(body): OptionalJsonBody<LogoutBody>,
) -> ApiResult<StatusCode> {
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    if body.all == Some(true) {
        db::users::bump_security(&tx, auth.user_id).await?;
        db::tokens::revoke_all_refresh(&tx, auth.user_id).await?;
        db::audit::record(
            &tx,
            &auth.ctx,
            Event {
                action: "logout.all",
                actor: Some(auth.user_id),
                target: Some(auth.user_id),
                details: json!({}),
            },
        )
        .await?;
    } else if let Some(token) = body.refresh_token.filter(|t| t.len() <= 128) {
        db::tokens::revoke_family_of(&tx, auth.user_id, &db::tokens::digest(&token)).await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ResetRequestBody {
    email: Option<String>,
}

/// `POST /auth/password/reset`: always `202` with the same body. The look-up and the mail
/// happen after the response, so timing says nothing about whether the address is known.
#[utoipa::path(post, path = "/auth/password/reset", tag = "auth", request_body = ResetRequestBody, responses((status = 202, description = "Accepted, whether or not the address is known", body = Accepted)))]
async fn request_reset(
    State(state): State<AppState>,
    ctx: Ctx,
    JsonBody(body): JsonBody<ResetRequestBody>,
) -> ApiResult<Response> {
    let mut check = Check::default();
    let email = check
        .required("email", body.email.as_deref())
        .and_then(|e| check.field("email", Email::parse(e)));
    check.finish()?;
    if let Some(email) = email {
        tokio::spawn(async move {
            if let Err(e) = send_reset(&state, &ctx, &email).await {
                tracing::warn!(error = %e, "password reset request failed");
            }
        });
    }
    let body = json!({"detail": "If an account with that email address exists, a reset link has been sent to it."});
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

async fn send_reset(state: &AppState, ctx: &Ctx, email: &Email) -> ApiResult<()> {
    let mut client = state.db.get().await?;
    let Some(user) = db::users::get_by_email(&client, email.as_str())
        .await?
        .filter(|u| u.is_active)
    else {
        return Ok(());
    };
    let (token, digest) = db::tokens::generate();
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
    db::tokens::insert_reset(&tx, user.id, &digest, ttl).await?;
    db::outbox::enqueue(&tx, &user.email, "Reset your password", &body).await?;
    db::audit::record(
        &tx,
        ctx,
        Event {
            action: "password.reset_requested",
            actor: None,
            target: Some(user.id),
            details: json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    state.mail_ready.notify_one();
    Ok(())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ResetConfirmBody {
    password: Option<String>,
}

/// `PUT /auth/password/reset/{token}`: sets a new password, spends the token and revokes every
/// session and access token of the user.
#[utoipa::path(put, path = "/auth/password/reset/{token}", tag = "auth", params(("token" = String, Path, description = "The token from the reset mail")), request_body = ResetConfirmBody, responses((status = 204, description = "Password set; every session revoked")))]
async fn confirm_reset(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(token): Path<String>,
    JsonBody(body): JsonBody<ResetConfirmBody>,
) -> ApiResult<StatusCode> {
    if token.len() > 128 {
        return Err(ApiError::InvalidResetToken);
    }
    let digest = db::tokens::digest(&token);
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
    let tx = client.transaction().await?;
    if !db::tokens::spend_reset(&tx, &digest, user_id).await? {
        return Err(ApiError::InvalidResetToken);
    }
    db::users::set_password(&tx, user_id, &hash).await?;
    db::users::bump_security(&tx, user_id).await?;
    db::tokens::revoke_all_refresh(&tx, user_id).await?;
    db::audit::record(
        &tx,
        &ctx,
        Event {
            action: "password.reset",
            actor: Some(user_id),
            target: Some(user_id),
            details: json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

//! Request extractors that turn hostile input into typed values or problem responses.
//!
//! - [`JsonBody`]: `415` for a wrong media type, `413` over 64 KiB, `400` for malformed JSON,
//!   `422` (with the offending field) for JSON of the wrong shape.
//! - [`Auth`]: a verified, unrevoked bearer token of an active user, with live permissions.
//! - [`Ctx`]: request id and client IP for audit records.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use users_core::perms::Permission;
use users_core::problem::FieldProblem;
use uuid::Uuid;

use crate::db;
use crate::error::ApiError;
use crate::state::{AppState, now};

/// Largest accepted request body (SPEC §4).
pub const BODY_LIMIT: usize = 64 * 1024;

/// The media type of a request, lower-cased, without parameters.
pub fn media_type(parts: &axum::http::HeaderMap) -> Option<String> {
    let raw = parts.get(CONTENT_TYPE)?.to_str().ok()?;
    Some(
        raw.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase(),
    )
}

fn is_json(media: &str) -> bool {
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

/// Reads the body, mapping the size limit to 413.
pub async fn read_body(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::Malformed("The request body could not be read.".into())
        }
    })
}

/// Parses JSON bytes into `T`, distinguishing syntax (400) from shape (422).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::Malformed(format!("The body is not valid JSON: {e}.")))?;
    from_value(value)
}

/// Converts a JSON value into `T`, naming the offending field on failure (422).
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let field = if path == "." {
            unknown_field(&inner).unwrap_or_else(|| "body".into())
        } else {
            path
        };
        ApiError::Validation(vec![FieldProblem::new(field, inner)])
    })
}

/// The field named by serde's "unknown field `x`" and "missing field `x`" messages.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("missing field `"))?;
    Some(rest.split('`').next()?.to_owned())
}

/// A JSON request body (`application/json` or any `application/*+json`).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        match media_type(req.headers()) {
            Some(m) if is_json(&m) => {}
            _ => {
                return Err(ApiError::UnsupportedMediaType(
                    "Send the body as application/json.".into(),
                ));
            }
        }
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// An optional JSON body: empty bodies are accepted as `T::default()`.
#[derive(Debug)]
pub struct OptionalJsonBody<T>(pub T);

impl<T: DeserializeOwned + Default> FromRequest<AppState> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let media = media_type(req.headers());
        let bytes = read_body(req, state).await?;
        if bytes.is_empty() {
            return Ok(Self(T::default()));
        }
        match media {
            Some(m) if is_json(&m) => parse_json(&bytes).map(OptionalJsonBody),
            _ => Err(ApiError::UnsupportedMediaType(
                "Send the body as application/json.".into(),
            )),
        }
    }
}

/// Request id and client address, for audit records and logs.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub request_id: Option<String>,
    pub ip: Option<String>,
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, ApiError> {
        let request_id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(128).collect());
        let ip = parts
            .extensions
            .get::<crate::client::ClientIp>()
            .map(|c| c.0.to_string())
            .or_else(|| {
                parts
                    .extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|c| c.0.ip().to_string())
            });
        Ok(Self { request_id, ip })
    }
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Auth {
    pub user_id: Uuid,
    /// Permissions held now (from the database, not the token).
    pub perms: BTreeSet<Permission>,
    pub ctx: Ctx,
}

impl Auth {
    pub fn has(&self, perm: Permission) -> bool {
        self.perms.contains(&perm)
    }

    pub fn is(&self, id: Uuid) -> bool {
        self.user_id == id
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or(ApiError::Unauthenticated)?;
        let header = header.to_str().map_err(|_| ApiError::InvalidToken)?;
        let (scheme, token) = header.split_once(' ').ok_or(ApiError::InvalidToken)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::Unauthenticated);
        }
        let verified = state
            .keys
            .verify
            .verify(token.trim(), &state.expect, now())
            .map_err(|e| {
                tracing::debug!(reason = %e, "token refused");
                ApiError::InvalidToken
            })?;
        // The connection goes back to the pool before the rate-limit call.
        let principal = db::users::principal(&state.db.get().await?, verified.claims.sub)
            .await?
            .ok_or(ApiError::InvalidToken)?;
        if !principal.is_active || verified.claims.sv != principal.security_version {
            return Err(ApiError::InvalidToken);
        }
        let quota = state.config.limits.user;
        let decision = state
            .limiter
            .check(&format!("user:{}", principal.id), quota)
            .await;
        if !decision.allowed {
            state
                .metrics
                .rate_limited
                .with_label_values(&[crate::ratelimit::Scope::User.as_str()])
                .inc();
            return Err(ApiError::RateLimited {
                retry_after_secs: decision.retry_after_secs(),
                quota: Some((crate::ratelimit::Scope::User, quota, decision)),
            });
        }
        let ctx = Ctx::from_request_parts(parts, state).await?;
        Ok(Self {
            user_id: principal.id,
            perms: principal.perms,
            ctx,
        })
    }
}

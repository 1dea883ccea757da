//! The one error type of the HTTP layer and its RFC 9457 rendering.
//!
//! Each variant documents its status. Internal causes are logged here, once, and never sent.
//! The errors of the layers below (validation, accounts, tokens, hashing, rate limits, the
//! database) become an [`ApiError`] here, in one `From` impl each.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use users_core::problem::{ErrorCode, FieldProblem, PROBLEM_JSON, Problem};

use crate::accounts::AccountError;
use crate::fields::Invalid;
use crate::hashing::HashError;
use crate::http::respond::quota_headers;
use crate::ratelimit::Limited;
use crate::tokens::AccessError;

/// Seconds clients are asked to wait after a 503.
pub const RETRY_AFTER_SECS: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body or query could not be read.
    #[error("{0}")]
    Malformed(String),
    /// 400: a pagination cursor this API did not issue.
    #[error("invalid cursor")]
    InvalidCursor,
    /// 401: no credentials.
    #[error("authentication required")]
    Unauthenticated,
    /// 401: a bad, expired or revoked access token.
    #[error("invalid token")]
    InvalidToken,
    /// 401: login failed (one body for every reason).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// 401: a bad, spent, revoked or expired refresh token.
    #[error("invalid refresh token")]
    InvalidGrant,
    /// 403: authenticated but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 403: self-registration is switched off.
    #[error("registration disabled")]
    RegistrationDisabled,
    /// 404.
    #[error("not found")]
    NotFound,
    /// 405.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409: a unique constraint or a state conflict.
    #[error("{0}")]
    Conflict(String),
    /// 412: `If-Match` does not match.
    #[error("precondition failed")]
    PreconditionFailed,
    /// 413: body over the limit.
    #[error("payload too large")]
    PayloadTooLarge,
    /// 415.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: field-level validation failures.
    #[error("validation failed")]
    Validation(Vec<FieldProblem>),
    /// 400: bad, expired or spent password-reset token.
    #[error("invalid reset token")]
    InvalidResetToken,
    /// 429: a rate limit or a login lock-out; `Retry-After` says when to come back, and the
    /// quota's `RateLimit-*` headers when a quota refused it.
    #[error("rate limited")]
    RateLimited(Limited),
    /// 503: the hashing queue is full.
    #[error("overloaded")]
    Overloaded,
    /// 503: a dependency (database) is unreachable.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// 500: a bug or an unexpected dependency error. Logged, never shown.
    #[error("internal: {0}")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn validation(field: &str, detail: impl std::fmt::Display) -> Self {
        Self::Validation(vec![FieldProblem::new(field, detail)])
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::Forbidden(detail.into())
    }

    fn parts(&self) -> (StatusCode, ErrorCode, String) {
        use StatusCode as S;
        match self {
            Self::Malformed(d) => (S::BAD_REQUEST, ErrorCode::MalformedRequest, d.clone()),
            Self::InvalidCursor => (
                S::BAD_REQUEST,
                ErrorCode::InvalidCursor,
                ErrorCode::InvalidCursor.detail().into(),
            ),
            Self::Unauthenticated => (
                S::UNAUTHORIZED,
                ErrorCode::Unauthenticated,
                ErrorCode::Unauthenticated.detail().into(),
            ),
            Self::InvalidToken => (
                S::UNAUTHORIZED,
                ErrorCode::InvalidToken,
                ErrorCode::InvalidToken.detail().into(),
            ),
            Self::InvalidCredentials => (
                S::UNAUTHORIZED,
                ErrorCode::InvalidCredentials,
                ErrorCode::InvalidCredentials.detail().into(),
            ),
            Self::InvalidGrant => (
                S::UNAUTHORIZED,
                ErrorCode::InvalidGrant,
                ErrorCode::InvalidGrant.detail().into(),
            ),
            Self::Forbidden(d) => (S::FORBIDDEN, ErrorCode::Forbidden, d.clone()),
            Self::RegistrationDisabled => (
                S::FORBIDDEN,
                ErrorCode::RegistrationDisabled,
                ErrorCode::RegistrationDisabled.detail().into(),
            ),
            Self::NotFound => (
                S::NOT_FOUND,
                ErrorCode::NotFound,
                ErrorCode::NotFound.detail().into(),
            ),
            Self::MethodNotAllowed => (
                S::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                ErrorCode::MethodNotAllowed.detail().into(),
            ),
            Self::Conflict(d) => (S::CONFLICT, ErrorCode::Conflict, d.clone()),
            Self::PreconditionFailed => (
                S::PRECONDITION_FAILED,
                ErrorCode::PreconditionFailed,
                ErrorCode::PreconditionFailed.detail().into(),
            ),
            Self::PayloadTooLarge => (
                S::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                ErrorCode::PayloadTooLarge.detail().into(),
            ),
            Self::UnsupportedMediaType(d) => (
                S::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                d.clone(),
            ),
            Self::Validation(errors) => (
                S::UNPROCESSABLE_ENTITY,
                ErrorCode::ValidationFailed,
                format!("{} field(s) are invalid.", errors.len()),
            ),
            Self::InvalidResetToken => (
                S::BAD_REQUEST,
                ErrorCode::InvalidResetToken,
                ErrorCode::InvalidResetToken.detail().into(),
            ),
            Self::RateLimited(limited) => (
                S::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                format!(
                    "Too many requests; retry in {} s.",
                    limited.retry_after_secs
                ),
            ),
            Self::Overloaded => (
                S::SERVICE_UNAVAILABLE,
                ErrorCode::Overloaded,
                ErrorCode::Overloaded.detail().into(),
            ),
            Self::Unavailable(_) => (
                S::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                ErrorCode::Unavailable.detail().into(),
            ),
            Self::Internal(_) => (
                S::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                ErrorCode::Internal.detail().into(),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(e) => tracing::error!(error = format!("{e:#}"), "internal error"),
            Self::Unavailable(e) => tracing::warn!(error = %e, "dependency unavailable"),
            _ => {}
        }
        let (status, code, detail) = self.parts();
        let limited = match &self {
            Self::RateLimited(limited) => Some(*limited),
            _ => None,
        };
        let mut problem = Problem::new(code, status.as_u16(), detail);
        if let Self::Validation(errors) = self {
            problem = problem.with_errors(errors);
        }
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut res = (status, body).into_response();
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        match code {
            ErrorCode::Unauthenticated => {
                h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ErrorCode::InvalidToken => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer error="invalid_token""#),
                );
            }
            ErrorCode::Overloaded | ErrorCode::Unavailable => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            }
            _ => {}
        }
        if let Some(limited) = limited {
            h.insert(
                header::RETRY_AFTER,
                HeaderValue::from(limited.retry_after_secs.max(1)),
            );
            if let Some((quota, decision)) = limited.quota {
                quota_headers(h, limited.scope, quota, &decision);
            }
        }
        res
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        if let Some(db) = e.as_db_error() {
            let code = db.code().code();
            // Connection exceptions, shutdowns, a missing database, too many connections:
            // the dependency is unavailable, not broken.
            if code.starts_with("08")
                || code.starts_with("57P")
                || code == "3D000"
                || code == "53300"
            {
                return Self::Unavailable(e.to_string());
            }
            if *db.code() == tokio_postgres::error::SqlState::UNIQUE_VIOLATION {
                let what = match db.constraint() {
                    Some("users_username_key") => "username is already taken",
                    Some("users_email_key") => "email is already registered",
                    Some("roles_pkey") => "a role with this name already exists",
                    _ => "the resource already exists",
                };
                return Self::Conflict(format!("The {what}."));
            }
            return Self::Internal(anyhow::Error::new(e));
        }
        // Not a server error: I/O on the connection, a closed connection, a failed connect.
        let io = std::iter::successors(std::error::Error::source(&e), |s| s.source())
            .any(|s| s.is::<std::io::Error>());
        let text = e.to_string();
        if e.is_closed() || io || text.contains("connect") || text.contains("communicating") {
            return Self::Unavailable(text);
        }
        Self::Internal(anyhow::Error::new(e))
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        Self::Validation(e.0)
    }
}

impl From<Limited> for ApiError {
    fn from(e: Limited) -> Self {
        Self::RateLimited(e)
    }
}

impl From<HashError> for ApiError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Overloaded => Self::Overloaded,
            HashError::Failed(_) => Self::Internal(anyhow::Error::new(e)),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Invalid(e) => e.into(),
            AccountError::Forbidden(detail) => Self::Forbidden(detail),
            AccountError::LastAdmin => Self::Conflict(e.to_string()),
            AccountError::Query(e) => e.into(),
            AccountError::Pool(e) => e.into(),
            AccountError::Hash(e) => e.into(),
        }
    }
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::Invalid => Self::InvalidToken,
            AccessError::Query(e) => e.into(),
            AccessError::Pool(e) => e.into(),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

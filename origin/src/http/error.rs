//! The one error type of the HTTP layer and its RFC 9457 rendering.
//!
//! Each variant documents its status. Internal causes are logged here, once, and never sent.
//! The errors of the layers below (validation, accounts, tokens, hashing, rate limits, the
//! database) become an [`ApiError`] here, in one `From` impl each.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use users_core::problem::{ErrorCode, FieldProblem, PROBLEM_JSON, Problem};
use users_core::wire;

use crate::accounts::AccountError;
use crate::fields::Invalid;
use crate::hashing::HashError;
use crate::http::respond::quota_headers;
use crate::idempotency::IdempotencyError;
use crate::mfa::MfaError;
use crate::ratelimit::Limited;
use crate::tokens::AccessError;

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
    /// 403: the right password of an unverified account under `UNVERIFIED_POLICY=block`.
    #[error("e-mail unverified")]
    EmailUnverified,
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
    /// 428: the request must be conditional.
    #[error("precondition required")]
    PreconditionRequired,
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
    /// 400: bad, expired or spent e-mail verification token (one answer for every reason).
    #[error("invalid verification token")]
    InvalidEmailToken,
    /// `401` `/problems/mfa-required`: the password was right, the second factor is next.
    #[error("second factor required")]
    MfaRequired { mfa_token: String },
    #[error("invalid mfa token")]
    InvalidMfaToken,
    #[error("invalid second-factor code")]
    InvalidMfaCode,
    #[error("{0}")]
    MfaEnrolmentRequired(String),
    /// 400: a `grant_type` the token endpoint does not offer.
    #[error("unsupported grant type")]
    UnsupportedGrantType,
    /// 409: the first request with this `Idempotency-Key` has not finished.
    #[error("idempotency key in flight")]
    IdempotencyInFlight,
    /// 422: this `Idempotency-Key` came with another request before.
    #[error("idempotency key reused")]
    IdempotencyMismatch,
    /// An error of the token endpoint's OAuth2 form path: the inner error's problem, with the
    /// RFC 6749 §5.2 members; a request that fails validation is a `400` `invalid_request`.
    #[error("{0}")]
    OAuth(Box<ApiError>),
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

    /// The error code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Malformed(_) => ErrorCode::MalformedRequest,
            Self::InvalidCursor => ErrorCode::InvalidCursor,
            Self::Unauthenticated => ErrorCode::Unauthenticated,
            Self::InvalidToken => ErrorCode::InvalidToken,
            Self::InvalidCredentials => ErrorCode::InvalidCredentials,
            Self::InvalidGrant => ErrorCode::InvalidGrant,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::RegistrationDisabled => ErrorCode::RegistrationDisabled,
            Self::EmailUnverified => ErrorCode::EmailUnverified,
            Self::NotFound => ErrorCode::NotFound,
            Self::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::PreconditionFailed => ErrorCode::PreconditionFailed,
            Self::PreconditionRequired => ErrorCode::PreconditionRequired,
            Self::PayloadTooLarge => ErrorCode::PayloadTooLarge,
            Self::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            Self::Validation(_) => ErrorCode::ValidationFailed,
            Self::InvalidResetToken => ErrorCode::InvalidResetToken,
            Self::InvalidEmailToken => ErrorCode::InvalidEmailToken,
            Self::MfaRequired { .. } => ErrorCode::MfaRequired,
            Self::InvalidMfaToken => ErrorCode::InvalidMfaToken,
            Self::InvalidMfaCode => ErrorCode::InvalidMfaCode,
            Self::MfaEnrolmentRequired(_) => ErrorCode::MfaEnrolmentRequired,
            Self::UnsupportedGrantType => ErrorCode::UnsupportedGrantType,
            Self::IdempotencyInFlight => ErrorCode::IdempotencyInFlight,
            Self::IdempotencyMismatch => ErrorCode::IdempotencyMismatch,
            Self::OAuth(inner) => match inner.code() {
                ErrorCode::ValidationFailed => ErrorCode::MalformedRequest,
                code => code,
            },
            Self::RateLimited(_) => ErrorCode::RateLimited,
            Self::Overloaded => ErrorCode::Overloaded,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The `detail` sent: the variant's own text where it has one, else the code's fixed
    /// detail (never an internal cause).
    fn detail(&self) -> String {
        match self {
            Self::Malformed(d)
            | Self::Forbidden(d)
            | Self::Conflict(d)
            | Self::MfaEnrolmentRequired(d)
            | Self::UnsupportedMediaType(d) => d.clone(),
            Self::Validation(errors) => format!("{} field(s) are invalid.", errors.len()),
            Self::OAuth(inner) => inner.detail(),
            Self::RateLimited(limited) => wire::rate_limited_detail(limited.retry_after_secs),
            other => other.code().detail().into(),
        }
    }
}

impl From<ErrorCode> for ApiError {
    /// The error a tier answers with for `code` when it has nothing more specific to say.
    fn from(code: ErrorCode) -> Self {
        match code {
            ErrorCode::MalformedRequest => Self::Malformed(code.detail().into()),
            ErrorCode::InvalidCursor => Self::InvalidCursor,
            ErrorCode::Unauthenticated => Self::Unauthenticated,
            ErrorCode::InvalidToken => Self::InvalidToken,
            ErrorCode::InvalidCredentials => Self::InvalidCredentials,
            ErrorCode::InvalidGrant => Self::InvalidGrant,
            ErrorCode::Forbidden => Self::Forbidden(code.detail().into()),
            ErrorCode::RegistrationDisabled => Self::RegistrationDisabled,
            ErrorCode::EmailUnverified => Self::EmailUnverified,
            ErrorCode::NotFound => Self::NotFound,
            ErrorCode::MethodNotAllowed => Self::MethodNotAllowed,
            ErrorCode::Conflict => Self::Conflict(code.detail().into()),
            ErrorCode::PreconditionFailed => Self::PreconditionFailed,
            ErrorCode::PreconditionRequired => Self::PreconditionRequired,
            ErrorCode::PayloadTooLarge => Self::PayloadTooLarge,
            ErrorCode::UnsupportedMediaType => Self::UnsupportedMediaType(code.detail().into()),
            ErrorCode::ValidationFailed => Self::validation("body", "is invalid"),
            ErrorCode::InvalidResetToken => Self::InvalidResetToken,
            ErrorCode::InvalidEmailToken => Self::InvalidEmailToken,
            ErrorCode::MfaRequired => Self::MfaRequired {
                mfa_token: String::new(),
            },
            ErrorCode::InvalidMfaToken => Self::InvalidMfaToken,
            ErrorCode::InvalidMfaCode => Self::InvalidMfaCode,
            ErrorCode::MfaEnrolmentRequired => Self::MfaEnrolmentRequired(code.detail().into()),
            ErrorCode::UnsupportedGrantType => Self::UnsupportedGrantType,
            ErrorCode::IdempotencyInFlight => Self::IdempotencyInFlight,
            ErrorCode::IdempotencyMismatch => Self::IdempotencyMismatch,
            ErrorCode::RateLimited => Self::RateLimited(Limited {
                scope: crate::ratelimit::Scope::User,
                retry_after_secs: 1,
                quota: None,
            }),
            ErrorCode::Overloaded => Self::Overloaded,
            ErrorCode::Unavailable => Self::Unavailable(code.detail().into()),
            ErrorCode::Internal => Self::Internal(anyhow::anyhow!("{}", code.detail())),
        }
    }
}

impl ApiError {
    /// This error as the token endpoint's OAuth2 form path answers it.
    pub fn oauth(self) -> Self {
        match self {
            Self::OAuth(_) => self,
            other => Self::OAuth(Box::new(other)),
        }
    }

    /// The RFC 6749 §5.2 `error` of this error on the token endpoint.
    fn oauth_error(&self) -> &'static str {
        match self.code() {
            ErrorCode::InvalidCredentials
            | ErrorCode::InvalidGrant
            | ErrorCode::EmailUnverified => "invalid_grant",
            ErrorCode::MfaRequired => "mfa_required",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::RateLimited | ErrorCode::Overloaded | ErrorCode::Unavailable => {
                "temporarily_unavailable"
            }
            ErrorCode::Internal => "server_error",
            _ => "invalid_request",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.code();
        let oauth = matches!(self, Self::OAuth(_)).then(|| self.oauth_error());
        let detail = self.detail();
        let inner = match self {
            Self::OAuth(inner) => *inner,
            other => other,
        };
        match &inner {
            Self::Internal(e) => tracing::error!(error = format!("{e:#}"), "internal error"),
            Self::Unavailable(e) => tracing::warn!(error = %e, "dependency unavailable"),
            _ => {}
        }
        let status =
            StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let limited = match &inner {
            Self::RateLimited(limited) => Some(*limited),
            _ => None,
        };
        let mut problem = Problem::new(code, status.as_u16(), detail);
        match inner {
            Self::Validation(errors) => problem = problem.with_errors(errors),
            // The login step-up's answer carries a credential: nothing may store it
            // (`no-store`, as on every answer).
            Self::MfaRequired { mfa_token } => {
                problem = problem.with_mfa_challenge(mfa_token, &crate::mfa::METHODS);
            }
            _ => {}
        }
        if let Some(error) = oauth {
            problem = problem.with_oauth_error(error);
        }
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut res = (status, body).into_response();
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(challenge) = wire::www_authenticate(code) {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if let Some(secs) = wire::retry_after_secs(code) {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
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
            AccountError::Encode(e) => Self::Internal(e.into()),
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

impl From<IdempotencyError> for ApiError {
    fn from(e: IdempotencyError) -> Self {
        match e {
            IdempotencyError::InFlight => Self::IdempotencyInFlight,
            IdempotencyError::Mismatch => Self::IdempotencyMismatch,
            IdempotencyError::Query(e) => e.into(),
        }
    }
}

impl From<crate::import::ImportError> for ApiError {
    fn from(e: crate::import::ImportError) -> Self {
        match e {
            crate::import::ImportError::Query(e) => e.into(),
            crate::import::ImportError::Hash(e) => e.into(),
        }
    }
}

impl From<MfaError> for ApiError {
    fn from(e: MfaError) -> Self {
        match e {
            MfaError::InvalidCode => Self::InvalidMfaCode,
            MfaError::InvalidToken => Self::InvalidMfaToken,
            MfaError::Guessing(secs) => Self::RateLimited(Limited {
                scope: crate::ratelimit::Scope::MfaGuesses,
                retry_after_secs: secs,
                quota: None,
            }),
            MfaError::WrongPassword => Self::Forbidden(e.to_string()),
            MfaError::AlreadyEnabled => Self::Conflict(e.to_string()),
            MfaError::NotFound => Self::NotFound,
            MfaError::AccountGone => Self::InvalidToken,
            MfaError::Hash(e) => e.into(),
            MfaError::Query(e) => e.into(),
            MfaError::Pool(e) => e.into(),
            MfaError::Internal(e) => Self::Internal(anyhow::anyhow!(e)),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    //! The edge answers the errors it makes itself exactly as the origin would.

    use users_edge::pipeline::problem;

    use super::*;

    /// Status and the headers a client reads off an error: everything but the body.
    fn visible(status: u16, headers: &axum::http::HeaderMap) -> (u16, Vec<(String, String)>) {
        let mut seen: Vec<_> = [
            header::CONTENT_TYPE,
            header::WWW_AUTHENTICATE,
            header::RETRY_AFTER,
        ]
        .iter()
        .filter_map(|name| {
            let value = headers.get(name)?.to_str().ok()?;
            Some((name.to_string(), value.to_owned()))
        })
        .collect();
        seen.sort();
        (status, seen)
    }

    #[test]
    fn every_error_code_has_the_same_status_and_headers_at_edge_and_origin() {
        for code in ErrorCode::ALL {
            let origin = ApiError::from(code).into_response();
            let edge = match code {
                ErrorCode::RateLimited => problem::rate_limited(1),
                _ => problem::problem(code),
            };
            assert_eq!(
                visible(origin.status().as_u16(), origin.headers()),
                visible(edge.status().as_u16(), edge.headers()),
                "{code:?}"
            );
            assert_eq!(origin.status().as_u16(), code.status(), "{code:?}");
        }
    }

    #[test]
    fn a_429_reads_the_same_at_edge_and_origin() {
        let limited = Limited {
            scope: crate::ratelimit::Scope::AuthIp,
            retry_after_secs: 7,
            quota: None,
        };
        let origin = ApiError::RateLimited(limited).into_response();
        let edge = problem::rate_limited(7);
        assert_eq!(
            visible(origin.status().as_u16(), origin.headers()),
            visible(edge.status().as_u16(), edge.headers())
        );
        assert_eq!(origin.headers()[header::RETRY_AFTER], "7");
    }
}

//! The error vocabulary shared by both tiers and its RFC 9457 rendering.
//!
//! Each [`ErrorCode`] has one HTTP status ([`ErrorCode::status`], a plain `u16`), one title and,
//! for most, one detail, so an error made at the edge looks exactly like one made at the origin.

use serde::{Deserialize, Serialize};

/// The media type of every error body (RFC 9457 §3).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Every kind of error the API reports, each with a stable machine-readable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    MalformedRequest,
    InvalidCursor,
    Unauthenticated,
    InvalidToken,
    InvalidCredentials,
    InvalidGrant,
    Forbidden,
    RegistrationDisabled,
    EmailUnverified,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PreconditionFailed,
    PreconditionRequired,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
    InvalidResetToken,
    InvalidEmailToken,
    MfaRequired,
    InvalidMfaToken,
    InvalidMfaCode,
    MfaEnrolmentRequired,
    UnsupportedGrantType,
    IdempotencyInFlight,
    IdempotencyMismatch,
    RateLimited,
    Overloaded,
    Unavailable,
    Internal,
}

impl ErrorCode {
    /// Every code, in declaration order.
    pub const ALL: [Self; 30] = [
        Self::MalformedRequest,
        Self::InvalidCursor,
        Self::Unauthenticated,
        Self::InvalidToken,
        Self::InvalidCredentials,
        Self::InvalidGrant,
        Self::Forbidden,
        Self::RegistrationDisabled,
        Self::EmailUnverified,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::Conflict,
        Self::PreconditionFailed,
        Self::PreconditionRequired,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::ValidationFailed,
        Self::InvalidResetToken,
        Self::InvalidEmailToken,
        Self::MfaRequired,
        Self::InvalidMfaToken,
        Self::InvalidMfaCode,
        Self::MfaEnrolmentRequired,
        Self::UnsupportedGrantType,
        Self::IdempotencyInFlight,
        Self::IdempotencyMismatch,
        Self::RateLimited,
        Self::Overloaded,
        Self::Unavailable,
        Self::Internal,
    ];

    /// The stable code; it is also the last segment of the problem `type`.
    pub fn code(self) -> &'static str {
        match self {
            Self::MalformedRequest => "malformed-request",
            Self::InvalidCursor => "invalid-cursor",
            Self::Unauthenticated => "unauthenticated",
            Self::InvalidToken => "invalid-token",
            Self::InvalidCredentials => "invalid-credentials",
            Self::InvalidGrant => "invalid-grant",
            Self::Forbidden => "forbidden",
            Self::RegistrationDisabled => "registration-disabled",
            Self::EmailUnverified => "email-unverified",
            Self::NotFound => "not-found",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::Conflict => "conflict",
            Self::PreconditionFailed => "precondition-failed",
            Self::PreconditionRequired => "precondition-required",
            Self::PayloadTooLarge => "payload-too-large",
            Self::UnsupportedMediaType => "unsupported-media-type",
            Self::ValidationFailed => "validation-failed",
            Self::InvalidResetToken => "invalid-reset-token",
            Self::InvalidEmailToken => "invalid-email-token",
            Self::MfaRequired => "mfa-required",
            Self::InvalidMfaToken => "invalid-mfa-token",
            Self::InvalidMfaCode => "invalid-mfa-code",
            Self::MfaEnrolmentRequired => "mfa-enrolment-required",
            Self::UnsupportedGrantType => "unsupported-grant-type",
            Self::IdempotencyInFlight => "idempotency-key-in-flight",
            Self::IdempotencyMismatch => "idempotency-key-reused",
            Self::RateLimited => "rate-limited",
            Self::Overloaded => "overloaded",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }

    /// A short, human-readable summary that does not change from occurrence to occurrence.
    pub fn title(self) -> &'static str {
        match self {
            Self::MalformedRequest => "Malformed request",
            Self::InvalidCursor => "Invalid pagination cursor",
            Self::Unauthenticated => "Authentication required",
            Self::InvalidToken => "Invalid access token",
            Self::InvalidCredentials => "Invalid credentials",
            Self::InvalidGrant => "Invalid refresh token",
            Self::Forbidden => "Forbidden",
            Self::RegistrationDisabled => "Registration is disabled",
            Self::EmailUnverified => "E-mail address not verified",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::Conflict => "Conflict",
            Self::PreconditionFailed => "Precondition failed",
            Self::PreconditionRequired => "Precondition required",
            Self::PayloadTooLarge => "Payload too large",
            Self::UnsupportedMediaType => "Unsupported media type",
            Self::ValidationFailed => "Validation failed",
            Self::InvalidResetToken => "Invalid or expired reset token",
            Self::InvalidEmailToken => "Invalid or expired verification token",
            Self::MfaRequired => "Second factor required",
            Self::InvalidMfaToken => "Invalid MFA token",
            Self::InvalidMfaCode => "Invalid second-factor code",
            Self::MfaEnrolmentRequired => "Second factor required for this permission",
            Self::UnsupportedGrantType => "Unsupported grant type",
            Self::IdempotencyInFlight => "Request with this Idempotency-Key in progress",
            Self::IdempotencyMismatch => "Idempotency-Key reused with another request",
            Self::RateLimited => "Too many requests",
            Self::Overloaded => "Server busy",
            Self::Unavailable => "Service unavailable",
            Self::Internal => "Internal error",
        }
    }
}

impl ErrorCode {
    /// The HTTP status every tier answers this code with (RFC 9110 §15 unless noted).
    pub fn status(self) -> u16 {
        match self {
            // 400: the request cannot be read, or names a cursor or reset token that is not
            // (or no longer) valid.
            Self::MalformedRequest
            | Self::InvalidCursor
            | Self::InvalidResetToken
            | Self::InvalidEmailToken
            | Self::UnsupportedGrantType => 400,
            // 401: no usable credentials (RFC 6750 §3.1 for the token cases).
            Self::Unauthenticated
            | Self::InvalidToken
            | Self::InvalidCredentials
            | Self::InvalidGrant
            | Self::MfaRequired
            | Self::InvalidMfaToken => 401,
            Self::Forbidden
            | Self::RegistrationDisabled
            | Self::EmailUnverified
            | Self::InvalidMfaCode
            | Self::MfaEnrolmentRequired => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Conflict | Self::IdempotencyInFlight => 409,
            Self::PreconditionFailed => 412,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::ValidationFailed | Self::IdempotencyMismatch => 422,
            // RFC 6585 §3 and §4.
            Self::PreconditionRequired => 428,
            Self::RateLimited => 429,
            Self::Internal => 500,
            Self::Overloaded | Self::Unavailable => 503,
        }
    }

    /// The detail of codes whose detail never varies, so every tier words them alike; for the
    /// others, the title (tiers then pass a specific detail).
    pub fn detail(self) -> &'static str {
        match self {
            Self::InvalidCursor => "The cursor is not one this API issued.",
            Self::Unauthenticated => "A bearer access token is required.",
            Self::InvalidToken => "The access token is invalid, expired or revoked.",
            Self::InvalidCredentials => "The login or password is incorrect.",
            Self::InvalidGrant => "The refresh token is invalid, expired or revoked.",
            Self::RegistrationDisabled => "Self-registration is disabled on this server.",
            Self::EmailUnverified => {
                "Verify your e-mail address first: follow the link in the verification mail, or ask for a new one."
            }
            Self::InvalidEmailToken => "The verification token is invalid, spent or expired.",
            Self::MfaRequired => {
                "The password is right; prove the second factor at POST /auth/mfa/verify with the mfa_token."
            }
            Self::InvalidMfaToken => "The mfa_token is invalid, spent or expired: log in again.",
            Self::InvalidMfaCode => "The code is wrong, already used or expired.",
            Self::UnsupportedGrantType => "grant_type must be \"password\" or \"refresh_token\".",
            Self::IdempotencyInFlight => {
                "A request with this Idempotency-Key is still being processed; retry shortly."
            }
            Self::IdempotencyMismatch => {
                "This Idempotency-Key was used with a different request; use a new key."
            }
            Self::NotFound => "The requested resource does not exist.",
            Self::MethodNotAllowed => "This method is not supported on this resource.",
            Self::PreconditionFailed => "The resource has changed since the If-Match version.",
            Self::PayloadTooLarge => "The request body exceeds 65536 bytes.",
            Self::InvalidResetToken => "The reset token is invalid, expired or already used.",
            Self::Overloaded => "The server is busy; retry shortly.",
            Self::Unavailable => "A dependency is unavailable; retry shortly.",
            Self::Internal => "An unexpected error occurred.",
            other => other.title(),
        }
    }
}

/// One refused field of a request body or query string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldProblem {
    /// The field's name (a JSON member or query parameter).
    pub field: String,
    /// Why it was refused, as a sentence fragment after the field name.
    pub detail: String,
}

impl FieldProblem {
    pub fn new(field: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        Self {
            field: field.into(),
            detail: detail.to_string(),
        }
    }
}

/// An RFC 9457 problem details body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldProblem>,
    /// `/problems/mfa-required` only: the single-use token to present at `POST /auth/mfa/verify`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa_token: Option<String>,
    /// `/problems/mfa-required` only: the ways the second factor may be proved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// The OAuth2 form path of `POST /auth/login` only: the RFC 6749 §5.2 error code
    /// (`invalid_request`, `invalid_grant`, `unsupported_grant_type`, `mfa_required`, or
    /// `temporarily_unavailable` for a refusal to be retried later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// With `error`: the RFC 6749 §5.2 description, the same text as `detail`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

impl Problem {
    /// A problem of kind `code`, answered with `status`.
    pub fn new(code: ErrorCode, status: u16, detail: impl Into<String>) -> Self {
        Self {
            type_: format!("/problems/{}", code.code()),
            title: code.title().to_owned(),
            status,
            detail: detail.into(),
            errors: Vec::new(),
            mfa_token: None,
            methods: Vec::new(),
            error: None,
            error_description: None,
        }
    }

    pub fn with_errors(mut self, errors: Vec<FieldProblem>) -> Self {
        self.errors = errors;
        self
    }

    /// The step-up challenge of `/problems/mfa-required`: its token and the accepted methods.
    pub fn with_mfa_challenge(mut self, mfa_token: String, methods: &[&str]) -> Self {
        self.mfa_token = Some(mfa_token);
        self.methods = methods.iter().map(|m| (*m).to_owned()).collect();
        self
    }

    /// The RFC 6749 §5.2 members of a token endpoint error: `error`, and `detail` again as
    /// `error_description`.
    pub fn with_oauth_error(mut self, error: &str) -> Self {
        self.error = Some(error.to_owned());
        self.error_description = Some(self.detail.clone());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Numbers every code in an exhaustive match: a new code does not compile until it is
    /// numbered here, and then fails the test below until [`ErrorCode::ALL`] lists it.
    fn position(code: ErrorCode) -> usize {
        match code {
            ErrorCode::MalformedRequest => 0,
            ErrorCode::InvalidCursor => 1,
            ErrorCode::Unauthenticated => 2,
            ErrorCode::InvalidToken => 3,
            ErrorCode::InvalidCredentials => 4,
            ErrorCode::InvalidGrant => 5,
            ErrorCode::Forbidden => 6,
            ErrorCode::RegistrationDisabled => 7,
            ErrorCode::EmailUnverified => 8,
            ErrorCode::NotFound => 9,
            ErrorCode::MethodNotAllowed => 10,
            ErrorCode::Conflict => 11,
            ErrorCode::PreconditionFailed => 12,
            ErrorCode::PreconditionRequired => 13,
            ErrorCode::PayloadTooLarge => 14,
            ErrorCode::UnsupportedMediaType => 15,
            ErrorCode::ValidationFailed => 16,
            ErrorCode::InvalidResetToken => 17,
            ErrorCode::InvalidEmailToken => 18,
            ErrorCode::MfaRequired => 19,
            ErrorCode::InvalidMfaToken => 20,
            ErrorCode::InvalidMfaCode => 21,
            ErrorCode::MfaEnrolmentRequired => 22,
            ErrorCode::UnsupportedGrantType => 23,
            ErrorCode::IdempotencyInFlight => 24,
            ErrorCode::IdempotencyMismatch => 25,
            ErrorCode::RateLimited => 26,
            ErrorCode::Overloaded => 27,
            ErrorCode::Unavailable => 28,
            ErrorCode::Internal => 29,
        }
    }

    #[test]
    fn all_lists_every_code_once_in_order() {
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(position(*code), i, "{code:?}");
        }
        let highest = ErrorCode::ALL.iter().map(|c| position(*c)).max();
        assert_eq!(highest, Some(ErrorCode::ALL.len() - 1));
    }

    #[test]
    fn problem_serialises_as_rfc9457() {
        let p =
            Problem::new(ErrorCode::ValidationFailed, 422, "1 field is invalid").with_errors(vec![
                FieldProblem::new("email", "is not a valid email address"),
            ]);
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            serde_json::json!({
                "type": "/problems/validation-failed",
                "title": "Validation failed",
                "status": 422,
                "detail": "1 field is invalid",
                "errors": [{"field": "email", "detail": "is not a valid email address"}]
            })
        );
        let plain = serde_json::to_value(Problem::new(ErrorCode::NotFound, 404, "x")).unwrap();
        assert!(plain.get("errors").is_none());
    }

    #[test]
    fn every_code_has_its_status() {
        use ErrorCode as E;
        let table = [
            (E::MalformedRequest, 400),
            (E::InvalidCursor, 400),
            (E::Unauthenticated, 401),
            (E::InvalidToken, 401),
            (E::InvalidCredentials, 401),
            (E::InvalidGrant, 401),
            (E::Forbidden, 403),
            (E::RegistrationDisabled, 403),
            (E::EmailUnverified, 403),
            (E::NotFound, 404),
            (E::MethodNotAllowed, 405),
            (E::Conflict, 409),
            (E::PreconditionFailed, 412),
            (E::PreconditionRequired, 428),
            (E::PayloadTooLarge, 413),
            (E::UnsupportedMediaType, 415),
            (E::ValidationFailed, 422),
            (E::InvalidResetToken, 400),
            (E::InvalidEmailToken, 400),
            (E::MfaRequired, 401),
            (E::InvalidMfaToken, 401),
            (E::InvalidMfaCode, 403),
            (E::MfaEnrolmentRequired, 403),
            (E::UnsupportedGrantType, 400),
            (E::IdempotencyInFlight, 409),
            (E::IdempotencyMismatch, 422),
            (E::RateLimited, 429),
            (E::Overloaded, 503),
            (E::Unavailable, 503),
            (E::Internal, 500),
        ];
        for (code, status) in table {
            assert_eq!(code.status(), status, "{}", code.code());
            // The variant is listed once: a new variant must be added here to compile.
            match code {
                E::MalformedRequest
                | E::InvalidCursor
                | E::Unauthenticated
                | E::InvalidToken
                | E::InvalidCredentials
                | E::InvalidGrant
                | E::Forbidden
                | E::RegistrationDisabled
                | E::EmailUnverified
                | E::NotFound
                | E::MethodNotAllowed
                | E::Conflict
                | E::PreconditionFailed
                | E::PreconditionRequired
                | E::PayloadTooLarge
                | E::UnsupportedMediaType
                | E::ValidationFailed
                | E::InvalidResetToken
                | E::InvalidEmailToken
                | E::MfaRequired
                | E::InvalidMfaToken
                | E::InvalidMfaCode
                | E::MfaEnrolmentRequired
                | E::UnsupportedGrantType
                | E::IdempotencyInFlight
                | E::IdempotencyMismatch
                | E::RateLimited
                | E::Overloaded
                | E::Unavailable
                | E::Internal => {}
            }
        }
        let codes: std::collections::HashSet<_> = table.iter().map(|(c, _)| *c).collect();
        assert_eq!(codes.len(), table.len(), "each code once");
    }
}

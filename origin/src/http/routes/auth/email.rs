//! E-mail verification: `POST /auth/email/verify` spends a mailed token (a verification or
//! one side of a pending change), `POST /auth/email/verify/resend` mails a new verification
//! link (the answer is the same whatever the address). The rules live in
//! [`crate::verification`].

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use users_core::fields::Email;

use crate::db::audit::Ctx;
use crate::fields::Check;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::JsonBody;
use crate::http::respond::accepted_then;
use crate::state::AppState;
use crate::verification::{self, VerifyError};

impl From<VerifyError> for ApiError {
    fn from(e: VerifyError) -> Self {
        match e {
            VerifyError::InvalidToken => Self::InvalidEmailToken,
            VerifyError::Conflict(detail) => Self::Conflict(detail),
            VerifyError::Query(e) => e.into(),
            VerifyError::Pool(e) => e.into(),
        }
    }
}

/// `POST /auth/email/verify` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    /// The token from a verification or change-confirmation mail.
    #[schema(max_length = 128)]
    token: Option<String>,
}

/// `POST /auth/email/verify`: spends a mailed token. A verification token marks the address
/// verified (the first time, every earlier session and access token is revoked); a change
/// token confirms its side of the pending change, which commits once both sides confirmed.
#[utoipa::path(
    post, path = "/auth/email/verify", tag = "auth", request_body = VerifyBody,
    responses(
        (status = 204, description = "Token spent: address verified, or change confirmed (committed once both sides confirmed)"),
        (status = 400, description = "Unknown, spent or expired token (one answer for all)", body = users_core::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The pending address was taken by another account meanwhile", body = users_core::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`token` missing", body = users_core::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn verify_email(
    State(state): State<AppState>,
    ctx: Ctx,
    JsonBody(body): JsonBody<VerifyBody>,
) -> ApiResult<StatusCode> {
    let mut check = Check::default();
    let token = check.required("token", body.token.as_deref());
    check.finish()?;
    verification::verify(&state, &ctx, token.unwrap_or_default()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /auth/email/verify/resend` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResendBody {
    #[schema(format = Email, max_length = 254)]
    email: Option<String>,
}

/// The answer to a resend request: the same whatever the address.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ResendAccepted {
    detail: String,
}

/// `POST /auth/email/verify/resend`: always `202` with the same body. The look-up and the
/// mail happen after the answer, so neither body nor timing tells whether the address has an
/// account, is verified, or was mailed within `EMAIL_RESEND_INTERVAL`.
#[utoipa::path(
    post, path = "/auth/email/verify/resend", tag = "auth", request_body = ResendBody,
    responses(
        (status = 202, description = "Accepted, whether or not the address has an unverified account", body = ResendAccepted),
        (status = 422, description = "`email` missing or not an address", body = users_core::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn resend_verification(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<ResendBody>,
) -> ApiResult<Response> {
    let mut check = Check::default();
    let email = check
        .required("email", body.email.as_deref())
        .and_then(|e| check.field("email", Email::parse(e)));
    check.finish()?;
    let work = email.map(|email| async move { verification::resend(&state, &email).await });
    Ok(accepted_then(
        "If an unverified account with that email address exists, a verification link has been sent to it.",
        "a verification resend",
        work,
    ))
}

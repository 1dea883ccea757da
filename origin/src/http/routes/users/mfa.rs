//! `/users/me/mfa…` and `/users/{id}/mfa`: a user's second factor (SPEC §8). Enrolling needs
//! the current password; disabling and new recovery codes need a code. The admin reset needs
//! `users:update`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use users_core::perms::Permission;

use crate::db;
use crate::fields::Check;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Auth, FactorIdPath, JsonBody, UserId};
use crate::mfa::{self, Proof};
use crate::state::AppState;

/// `POST /users/me/mfa/totp` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolBody {
    current_password: Option<String>,
}

/// A pending TOTP factor: add `secret` (or scan `otpauth_uri`) in an authenticator app, then
/// confirm it with a first code within `expires_in` seconds.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PendingFactor {
    pub id: uuid::Uuid,
    /// The secret, base32 (160 bits).
    pub secret: String,
    pub otpauth_uri: String,
    pub expires_in: i64,
}

/// A code from the authenticator app.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    /// 6 digits.
    #[schema(max_length = 16)]
    code: Option<String>,
}

/// A code from the authenticator app, or one of the recovery codes: exactly one of them.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProofBody {
    #[schema(max_length = 16)]
    code: Option<String>,
    #[schema(max_length = 64)]
    recovery_code: Option<String>,
}

/// Recovery codes, shown this once: each works once in place of a code.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

/// The one proof of a body holding `code` or `recovery_code` (`422` for neither or both).
pub fn proof_of(code: Option<String>, recovery_code: Option<String>) -> ApiResult<Proof> {
    match (code, recovery_code) {
        (Some(code), None) => Ok(Proof::Code(code)),
        (None, Some(rc)) => Ok(Proof::RecoveryCode(rc)),
        (None, None) => Err(ApiError::validation(
            "code",
            "is required (or recovery_code)",
        )),
        (Some(_), Some(_)) => Err(ApiError::validation(
            "recovery_code",
            "must not be sent with code",
        )),
    }
}

fn required_code(code: Option<String>) -> ApiResult<String> {
    let mut check = Check::default();
    let code = check.required("code", code.as_deref()).map(str::to_owned);
    check.finish()?;
    Ok(code.unwrap_or_default())
}

/// `POST /users/me/mfa/totp`: starts enrolling a TOTP factor (pending for 10 minutes).
#[utoipa::path(
    post, path = "/users/me/mfa/totp", tag = "mfa", request_body = EnrolBody,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "A pending factor: confirm it with a first code", body = PendingFactor),
        (status = 403, description = "The current password is incorrect", body = users_core::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "A second factor is already enabled", body = users_core::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn enrol(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(body): JsonBody<EnrolBody>,
) -> ApiResult<(StatusCode, Json<PendingFactor>)> {
    let mut check = Check::default();
    let password = check
        .required("current_password", body.current_password.as_deref())
        .map(str::to_owned);
    check.finish()?;
    let user = db::users::get(&state.db.get().await?, auth.user_id)
        .await?
        .ok_or(ApiError::InvalidToken)?;
    let password = password.unwrap_or_default();
    let e = mfa::enrol(&state, &auth.ctx, user.id, &user.username, password).await?;
    let factor = PendingFactor {
        id: e.id,
        secret: e.secret,
        otpauth_uri: e.otpauth_uri,
        expires_in: e.expires_in,
    };
    Ok((StatusCode::CREATED, Json(factor)))
}

/// `POST /users/me/mfa/totp/{id}/confirm`: confirms the pending factor with a first code.
/// MFA is on, every other session ends, and the recovery codes are shown once.
#[utoipa::path(
    post, path = "/users/me/mfa/totp/{id}/confirm", tag = "mfa", request_body = CodeBody,
    params(("id" = String, Path, description = "The pending factor's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Enabled; the recovery codes, shown this once", body = RecoveryCodes),
        (status = 403, description = "Wrong code", body = users_core::problem::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such pending factor (or it expired)", body = users_core::problem::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many wrong codes for this account", body = users_core::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn confirm(
    State(state): State<AppState>,
    auth: Auth,
    FactorIdPath(factor): FactorIdPath,
    JsonBody(body): JsonBody<CodeBody>,
) -> ApiResult<Json<RecoveryCodes>> {
    let code = required_code(body.code)?;
    let recovery_codes =
        mfa::confirm(&state, &auth.ctx, auth.user_id, factor, auth.session, &code).await?;
    Ok(Json(RecoveryCodes { recovery_codes }))
}

/// `DELETE /users/me/mfa`: disables the second factor, proved with a code or a recovery code.
#[utoipa::path(
    delete, path = "/users/me/mfa", tag = "mfa", request_body = ProofBody,
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Disabled: the factor and the recovery codes are gone"),
        (status = 403, description = "Wrong code", body = users_core::problem::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No second factor is enabled", body = users_core::problem::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many wrong codes for this account", body = users_core::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn disable(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(body): JsonBody<ProofBody>,
) -> ApiResult<StatusCode> {
    let proof = proof_of(body.code, body.recovery_code)?;
    mfa::disable(&state, &auth.ctx, auth.user_id, &proof).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /users/me/mfa/recovery-codes`: a new set of recovery codes; the old set dies.
#[utoipa::path(
    post, path = "/users/me/mfa/recovery-codes", tag = "mfa", request_body = CodeBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The new recovery codes, shown this once", body = RecoveryCodes),
        (status = 403, description = "Wrong code", body = users_core::problem::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No second factor is enabled", body = users_core::problem::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many wrong codes for this account", body = users_core::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn regenerate_codes(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(body): JsonBody<CodeBody>,
) -> ApiResult<Json<RecoveryCodes>> {
    let code = required_code(body.code)?;
    let recovery_codes = mfa::regenerate_codes(&state, &auth.ctx, auth.user_id, &code).await?;
    Ok(Json(RecoveryCodes { recovery_codes }))
}

/// `DELETE /users/{id}/mfa` (`users:update`): removes the user's second factor, ends every
/// session of theirs and mails them.
#[utoipa::path(
    delete, path = "/users/{id}/mfa", tag = "mfa", params(("id" = String, Path)),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed; the user's sessions ended and the user was mailed"),
        (status = 404, description = "No such user, or no second factor", body = users_core::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn reset(
    State(state): State<AppState>,
    auth: Auth,
    UserId(id): UserId,
) -> ApiResult<StatusCode> {
    auth.require_on(None, Permission::UsersUpdate)?;
    mfa::reset(&state, &auth.ctx, auth.user_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

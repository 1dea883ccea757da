//! `POST /auth/mfa/verify`: the second step of a login with a second factor (SPEC §8).

use axum::extract::State;
use serde::Deserialize;
use users_core::model::TokenResponse;

use crate::db::audit::Ctx;
use crate::fields::Check;
use crate::http::error::ApiResult;
use crate::http::extract::{JsonBody, LoginOrigin};
use crate::http::respond::TokenAnswer;
use crate::http::routes::users::mfa::proof_of;
use crate::mfa;
use crate::state::AppState;

/// `POST /auth/mfa/verify` body: the `mfa_token` of the login's challenge and exactly one of
/// `code` and `recovery_code`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyMfaBody {
    #[schema(max_length = 128)]
    mfa_token: Option<String>,
    #[schema(max_length = 16)]
    code: Option<String>,
    #[schema(max_length = 64)]
    recovery_code: Option<String>,
}

/// `POST /auth/mfa/verify`: spends the login's `mfa_token` with a code or a recovery code for
/// the usual tokens (`amr` `["pwd", "otp"]` or `["pwd", "rc"]`).
#[utoipa::path(
    post, path = "/auth/mfa/verify", tag = "auth", request_body = VerifyMfaBody,
    responses(
        (status = 200, description = "Tokens", body = TokenResponse, headers(("Cache-Control" = String, description = "`no-store`"), ("Pragma" = String, description = "`no-cache`"))),
        (status = 401, description = "The mfa_token is invalid, spent, expired or dead after 5 wrong codes", body = users_core::problem::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Wrong code", body = users_core::problem::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many wrong codes for this account", body = users_core::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn verify_mfa(
    State(state): State<AppState>,
    ctx: Ctx,
    LoginOrigin(origin): LoginOrigin,
    JsonBody(body): JsonBody<VerifyMfaBody>,
) -> ApiResult<TokenAnswer> {
    let mut check = Check::default();
    let token = check
        .required("mfa_token", body.mfa_token.as_deref())
        .map(str::to_owned);
    check.finish()?;
    let proof = proof_of(body.code, body.recovery_code)?;
    let token = token.unwrap_or_default();
    let tokens = mfa::verify_login(&state, &ctx, &token, &proof, &origin).await?;
    Ok(TokenAnswer(tokens))
}

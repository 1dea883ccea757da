//! `POST /auth/refresh` (rotation with reuse detection) and `POST /auth/logout`.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use crate::accounts::revoke_sessions;
use crate::db::{
    self,
    audit::Ctx,
    audit::Event,
    tokens::{NewRefresh, Spend},
};
use crate::fields::Check;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Auth, JsonBody, OptionalJsonBody};
use crate::http::respond::TokenAnswer;
use crate::state::AppState;
use crate::tokens::{self, token_pair};
use serde_json::json;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    refresh_token: Option<String>,
}

/// `POST /auth/refresh`: rotates the refresh token; replaying a spent one revokes its family.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshBody, responses((status = 200, description = "A new token pair", body = users_core::model::TokenResponse, headers(("Cache-Control" = String, description = "`no-store`"), ("Pragma" = String, description = "`no-cache`")))))]
pub async fn refresh(
    State(state): State<AppState>,
    ctx: Ctx,
    JsonBody(body): JsonBody<RefreshBody>,
) -> ApiResult<TokenAnswer> {
    rotate(&state, &ctx, body.refresh_token.as_deref()).await
}

/// Spends `token` for a new pair: the refresh of `POST /auth/refresh` and of the token
/// endpoint's `grant_type=refresh_token`. Replaying a spent token revokes its family.
pub(super) async fn rotate(
    state: &AppState,
    ctx: &Ctx,
    token: Option<&str>,
) -> ApiResult<TokenAnswer> {
    let mut check = Check::default();
    let token = check.required("refresh_token", token).map(str::to_owned);
    check.finish()?;
    let token = token.unwrap_or_default();
    if token.len() > 128 {
        return Err(ApiError::InvalidGrant);
    }
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let spend = db::tokens::spend_refresh(&tx, &tokens::digest(&token)).await?;
    let (user_id, family) = match spend {
        Spend::Spent { user_id, family_id } => (user_id, family_id),
        Spend::Reused => {
            db::audit::record(&tx, ctx, Event::new("refresh.reused", None, None)).await?;
            tx.commit().await?;
            state.metrics.refresh_reuse.inc();
            return Err(ApiError::InvalidGrant);
        }
        Spend::Invalid => return Err(ApiError::InvalidGrant),
    };
    let user = db::users::get(&tx, user_id)
        .await?
        .filter(|u| u.is_active)
        .ok_or(ApiError::InvalidGrant)?;
    let grants = db::grants::grants(&tx, user.id, &state.config.mfa.required_roles).await?;
    let (refresh_ttl, access_ttl) = (
        state.config.tokens.refresh_ttl,
        state.config.tokens.access_ttl,
    );
    // The family is the session: a revoked session refreshes no more. Its tokens keep how
    // its login was proved.
    let amr = db::sessions::refreshed(&tx, family, refresh_ttl, access_ttl)
        .await?
        .ok_or(ApiError::InvalidGrant)?;
    let amr: Vec<&str> = amr.iter().map(String::as_str).collect();
    let (tokens, digest) = token_pair(state, &user, &grants, family, &amr);
    let token = NewRefresh::new(user.id, family, &digest, refresh_ttl);
    db::tokens::insert_refresh(&tx, &token).await?;
    tx.commit().await?;
    Ok(TokenAnswer(tokens))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutBody {
    refresh_token: Option<String>,
    all: Option<bool>,
}

/// `POST /auth/logout`: ends one session (the one of `refresh_token`, else the caller's own)
/// with its refresh family and access tokens, or, with `all`, every session and every
/// outstanding access token.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", request_body(content = LogoutBody, description = "Optional"), security(("bearer" = [])), responses((status = 204, description = "Logged out")))]
pub async fn logout(
    State(state): State<AppState>,
    auth: Auth,
    OptionalJsonBody(body): OptionalJsonBody<LogoutBody>,
) -> ApiResult<StatusCode> {
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    if body.all == Some(true) {
        revoke_sessions(&tx, auth.user_id).await?;
        db::audit::record(&tx, &auth.ctx, Event::own("logout.all", auth.user_id)).await?;
    } else {
        let session = match body.refresh_token {
            Some(token) if token.len() <= 128 => {
                db::tokens::family_of(&tx, auth.user_id, &tokens::digest(&token)).await?
            }
            Some(_) => None,
            None => auth.session,
        };
        if let Some(sid) = session
            && db::sessions::revoke(&tx, auth.user_id, sid).await?
        {
            let event = Event::own("logout", auth.user_id).with(json!({"session_id": sid}));
            db::audit::record(&tx, &auth.ctx, event).await?;
        }
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

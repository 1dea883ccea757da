//! The authenticated caller: a verified, unrevoked bearer token of an active user, with the
//! permissions it holds now, within the per-user rate limit. Handlers ask it for permissions
//! with [`Auth::require`] (`403`) and [`Auth::require_on`] (acting on an account: self passes,
//! and a caller who may not read users at all gets `404`, so ids cannot be probed).

use std::collections::BTreeSet;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use users_core::perms::Permission;
use users_core::wire::{self, BearerError};
use uuid::Uuid;

use crate::db::audit::Ctx;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::meta::request_ctx;
use crate::ratelimit::Scope;
use crate::state::AppState;
use crate::tokens;

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Auth {
    pub user_id: Uuid,
    /// Permissions the token may use now (from the database, not the token).
    pub perms: BTreeSet<Permission>,
    /// Permissions the user's roles grant only to a token proved with a TOTP code
    /// (`MFA_REQUIRED_ROLES`): asking for one of these is `403` `mfa-enrolment-required`.
    pub withheld: BTreeSet<Permission>,
    /// The session the token belongs to (absent on tokens issued before sessions existed).
    pub session: Option<Uuid>,
    pub ctx: Ctx,
}

impl Auth {
    pub fn has(&self, perm: Permission) -> bool {
        self.perms.contains(&perm)
    }

    pub fn is(&self, id: Uuid) -> bool {
        self.user_id == id
    }

    /// `403` unless the caller holds `perm` (`mfa-enrolment-required` when only a token
    /// proved with a TOTP code would).
    pub fn require(&self, perm: Permission) -> ApiResult<()> {
        if self.has(perm) {
            Ok(())
        } else if self.withheld.contains(&perm) {
            Err(ApiError::MfaEnrolmentRequired(format!(
                "The {perm} permission needs a login with a second factor: enrol one at \
                 POST /users/me/mfa/totp, then log in again."
            )))
        } else {
            Err(ApiError::forbidden(format!(
                "This requires the {perm} permission."
            )))
        }
    }

    /// Acting on the account `target` (`None`: an action that is never one's own): the
    /// target itself and holders of `perm` pass; others get `403` if they may read users, and
    /// `404` if they may not.
    pub fn require_on(&self, target: Option<Uuid>, perm: Permission) -> ApiResult<()> {
        if target.is_some_and(|t| self.is(t)) || self.has(perm) {
            Ok(())
        } else if self.has(Permission::UsersRead) || self.withheld.contains(&perm) {
            self.require(perm)
        } else {
            Err(ApiError::NotFound)
        }
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
        let token = wire::bearer_token(header).map_err(|e| match e {
            BearerError::Malformed => ApiError::InvalidToken,
            BearerError::NotBearer => ApiError::Unauthenticated,
        })?;
        let caller = tokens::verify_access(state, token).await?;
        let key = format!("user:{}", caller.principal.id);
        state
            .limiter
            .limit(Scope::User, &key, state.config.limits.user)
            .await?;
        Ok(Self {
            user_id: caller.principal.id,
            perms: caller.perms,
            withheld: caller.withheld,
            session: caller.session,
            ctx: request_ctx(parts),
        })
    }
}

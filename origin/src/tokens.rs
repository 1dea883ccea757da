//! Issuing and verifying tokens.
//!
//! - Access tokens: Ed25519-signed JWTs ([`token_pair`] issues them, [`verify_access`] checks a
//!   presented one against the keys, then against the account as it is now: active, and the
//!   same security version, so a revocation takes effect at once).
//! - Refresh and password-reset tokens: 256 random bits ([`generate`]); only their SHA-256
//!   [`digest`] is stored.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use users_core::model::TokenResponse;
use users_core::perms::Permission;
use users_core::token::{AMR_OTP, AccessClaims, Audience};
use uuid::Uuid;

use crate::clock::now;
use crate::db;
use crate::db::audit::{Ctx, Event};
use crate::db::grants::Grants;
use crate::db::principals::Principal;
use crate::db::sessions::{NewLogin, Origin};
use crate::db::users::UserRow;
use crate::memo::{Memo, SessionState, TokenFacts};
use crate::state::AppState;

/// Why a presented access token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// Bad signature, expired, wrong issuer or audience, revoked, or the account is gone or
    /// inactive: all look the same to the client.
    #[error("invalid token")]
    Invalid,
    #[error(transparent)]
    Query(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Pool(#[from] deadpool_postgres::PoolError),
}

/// A fresh random token (256 bits, base64url) and its digest.
pub fn generate() -> (String, Vec<u8>) {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let token = URL_SAFE_NO_PAD.encode(raw);
    let digest = digest(&token);
    (token, digest)
}

/// The stored form of a refresh or reset token.
pub fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A token pair for `user` in session `sid` proved by `amr`: an access token signed with its
/// roles, the permissions of `grants` such a token may use, security version, session and
/// e-mail state, and a new refresh token with the digest the caller stores.
pub fn token_pair(
    state: &AppState,
    user: &UserRow,
    grants: &Grants,
    sid: Uuid,
    amr: &[&str],
) -> (TokenResponse, Vec<u8>) {
    let perms = grants.usable(amr.contains(&AMR_OTP));
    let claims = AccessClaims {
        iss: state.config.tokens.issuer.clone(),
        aud: Audience::One(state.config.tokens.audience.clone()),
        sub: user.id,
        jti: Uuid::now_v7().to_string(),
        roles: user.roles.clone(),
        perms: perms.iter().copied().collect(),
        sv: user.security_version,
        sid: Some(sid),
        email_verified: user.email_verified,
        amr: amr.iter().map(|m| (*m).to_owned()).collect(),
    };
    let ttl = state.config.tokens.access_ttl;
    let access_token = state.keys.signer.sign(claims, now(), ttl);
    let (refresh_token, digest) = generate();
    let tokens = TokenResponse {
        access_token,
        token_type: "Bearer".into(),
        expires_in: ttl,
        refresh_token,
    };
    (tokens, digest)
}

/// Opens a session for `user` proved by `amr` from `origin`, with its first token pair and
/// the audit entry `login.succeeded` (with `details` and the session id), in one statement on
/// `db`. `None` when the account is gone or inactive.
#[allow(clippy::too_many_arguments)]
pub async fn open_session(
    state: &AppState,
    db: &impl db::GenericClient,
    ctx: &Ctx,
    user: &UserRow,
    grants: &Grants,
    amr: &[&str],
    origin: &Origin,
    mut details: serde_json::Value,
) -> Result<Option<TokenResponse>, tokio_postgres::Error> {
    let session_id = Uuid::now_v7();
    let (tokens, digest) = token_pair(state, user, grants, session_id, amr);
    if let Some(map) = details.as_object_mut() {
        map.insert("session_id".into(), session_id.to_string().into());
    }
    let audit = Event::own("login.succeeded", user.id).with(details);
    let login = NewLogin {
        session_id,
        user_id: user.id,
        refresh_digest: &digest,
        refresh_ttl: state.config.tokens.refresh_ttl,
        access_ttl: state.config.tokens.access_ttl,
        origin,
        amr,
    };
    Ok(db::sessions::open(db, &login, ctx, audit)
        .await?
        .then_some(tokens))
}

/// The caller behind a verified access token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: std::sync::Arc<Principal>,
    /// The permissions the token may use now.
    pub perms: BTreeSet<Permission>,
    /// Those its roles grant but only to a token proved with a TOTP code.
    pub withheld: BTreeSet<Permission>,
    /// The token's session.
    pub session: Option<Uuid>,
}

/// The account behind a presented access token, with the permissions it may use now, and the
/// token's session. A token of a revoked session is refused like a revoked token.
///
/// A token seen before is not verified again (its digest is remembered until `exp`); the
/// principal and the session come from the replica's memory while it follows the change
/// notifications, and from PostgreSQL otherwise (then remembered, when followed).
pub async fn verify_access(state: &AppState, token: &str) -> Result<Caller, AccessError> {
    let memo = &state.follower.memo;
    let at = now();
    let key = Memo::token_key(token);
    let facts = match memo.token(&key, at) {
        Some(facts) => {
            state.metrics.memo.token_memory.inc();
            facts
        }
        None => {
            let verified = state
                .keys
                .verify
                .verify(token, &state.expect, at)
                .map_err(|e| {
                    tracing::debug!(reason = %e, "token refused");
                    AccessError::Invalid
                })?;
            state.metrics.memo.token_verified.inc();
            let facts = TokenFacts {
                sub: verified.claims.sub,
                sid: verified.claims.sid,
                sv: verified.claims.sv,
                otp: verified.claims.amr.iter().any(|m| m == AMR_OTP),
                expires_at: verified.expires_at,
            };
            memo.remember_token(key, facts.clone());
            std::sync::Arc::new(facts)
        }
    };
    let principal = match remembered(state, &facts, at) {
        Some(principal) => {
            state.metrics.memo.principal_memory.inc();
            principal
        }
        None => {
            state.metrics.memo.principal_database.inc();
            std::sync::Arc::new(look_up(state, &facts).await?)
        }
    };
    if !principal.is_active || facts.sv != principal.security_version {
        return Err(AccessError::Invalid);
    }
    Ok(Caller {
        perms: principal.grants.usable(facts.otp).clone(),
        withheld: principal.grants.withheld(facts.otp),
        principal,
        session: facts.sid,
    })
}

/// How long a session's `last_used_at` may lag before it is stamped again, in seconds.
const STAMP_EVERY: i64 = 300;

/// The principal of `facts` from memory, when it and the token's session are held (a session
/// held as not live refuses there and then: `Some` of a principal that fails the checks is
/// never needed, so `None` sends the caller to PostgreSQL, which refuses it).
fn remembered(state: &AppState, facts: &TokenFacts, at: i64) -> Option<std::sync::Arc<Principal>> {
    let memo = &state.follower.memo;
    if let Some(sid) = facts.sid {
        let session = memo.session(sid)?;
        if !session.live || session.user != facts.sub {
            return None;
        }
        let stamped = session.stamped_at.load(Ordering::Relaxed);
        if at - stamped >= STAMP_EVERY
            && session
                .stamped_at
                .compare_exchange(stamped, at, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            stamp_session(state, sid);
        }
    }
    memo.principal(facts.sub)
}

/// The principal of `facts` (and the state of its session) from PostgreSQL, remembered when
/// the memory is followed. A token of a session that is not live is refused.
async fn look_up(state: &AppState, facts: &TokenFacts) -> Result<Principal, AccessError> {
    let memo = &state.follower.memo;
    let ticket = memo.ticket(facts.sub, facts.sid);
    let roles = &state.config.mfa.required_roles;
    // The connection goes back to the pool before the caller's next step (the rate limit).
    let client = state.db.get().await?;
    let (principal, session) = match facts.sid {
        None => (
            db::principals::principal(&client, facts.sub, roles).await?,
            None,
        ),
        Some(sid) => {
            match db::principals::principal_in_session(&client, facts.sub, sid, roles).await? {
                Some((_, check)) if !check.live => return Err(AccessError::Invalid),
                Some((principal, check)) => {
                    let at = now();
                    if check.stale {
                        stamp_session(state, sid);
                    }
                    let session = SessionState {
                        user: facts.sub,
                        live: true,
                        stamped_at: AtomicI64::new(at),
                    };
                    (Some(principal), Some((sid, session)))
                }
                None => (None, None),
            }
        }
    };
    let principal = principal.ok_or(AccessError::Invalid)?;
    if let Some(ticket) = ticket {
        memo.fill_principal(ticket, principal.clone(), session);
    }
    Ok(principal)
}

/// Stamps the session's `last_used_at` beside the request: the answer never waits on it.
fn stamp_session(state: &AppState, sid: Uuid) {
    let state = state.clone();
    tokio::spawn(async move {
        let stamped = match state.db.get().await {
            Ok(client) => db::sessions::touch(&client, sid)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = stamped {
            tracing::warn!(error = %e, "could not stamp a session's last use");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_random_and_stored_as_their_digest() {
        let (a, digest_a) = generate();
        let (b, _) = generate();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43, "256 bits in unpadded base64url");
        assert_eq!(digest_a, digest(&a));
        assert_eq!(digest_a.len(), 32);
        assert_ne!(digest(&a), digest(&b));
    }
}

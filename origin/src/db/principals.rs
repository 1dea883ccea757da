//! What authorising a request reads about its user: whether the account is active, its
//! security version and the permissions its roles grant now, and, for a token of a session,
//! whether that session is still live. One round trip each, with statements prepared once per
//! connection: this runs on every authenticated request.

use std::sync::LazyLock;

use uuid::Uuid;

use super::GenericClient;
use super::grants::{Grants, PERMS, grants_of, perms_without_mfa};

/// What authorising a request needs to know about its user.
#[derive(Debug, Clone)]
pub struct Principal {
    pub id: Uuid,
    pub is_active: bool,
    pub security_version: i64,
    /// What its roles grant, with and without the roles that need a second factor.
    pub grants: Grants,
}

/// The principal `id`; `mfa_roles` are the roles of `MFA_REQUIRED_ROLES`.
pub async fn principal(
    db: &impl GenericClient,
    id: Uuid,
    mfa_roles: &[String],
) -> Result<Option<Principal>, tokio_postgres::Error> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT u.is_active, u.security_version, {PERMS}, {} FROM users u WHERE u.id = $1",
            perms_without_mfa(2)
        )
    });
    let statement = db.prepare_cached(&SQL).await?;
    let row = db.query_opt(&statement, &[&id, &mfa_roles]).await?;
    Ok(row.map(|r| Principal {
        id,
        is_active: r.get("is_active"),
        security_version: r.get("security_version"),
        grants: grants_of(&r),
    }))
}

/// What authorising a token of session `sid` found about that session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionCheck {
    /// The session exists, belongs to the user and is not revoked.
    pub live: bool,
    /// Its `last_used_at` is older than five minutes: time to stamp it.
    pub stale: bool,
}

/// [`principal`] and the state of session `sid`, in the same round trip.
pub async fn principal_in_session(
    db: &impl GenericClient,
    id: Uuid,
    sid: Uuid,
    mfa_roles: &[String],
) -> Result<Option<(Principal, SessionCheck)>, tokio_postgres::Error> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT u.is_active, u.security_version, {PERMS}, {}, \
             (s.id IS NOT NULL AND s.revoked_at IS NULL) AS session_live, \
             coalesce(s.last_used_at < now() - interval '5 minutes', false) AS session_stale \
             FROM users u LEFT JOIN sessions s ON s.id = $2 AND s.user_id = u.id WHERE u.id = $1",
            perms_without_mfa(3)
        )
    });
    let statement = db.prepare_cached(&SQL).await?;
    let row = db.query_opt(&statement, &[&id, &sid, &mfa_roles]).await?;
    Ok(row.map(|r| {
        let principal = Principal {
            id,
            is_active: r.get("is_active"),
            security_version: r.get("security_version"),
            grants: grants_of(&r),
        };
        let check = SessionCheck {
            live: r.get("session_live"),
            stale: r.get("session_stale"),
        };
        (principal, check)
    }))
}

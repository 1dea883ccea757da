//! The `sessions` table: one row per login, the parent of one refresh-token family
//! (`refresh_tokens.family_id = sessions.id`). Only digests of refresh tokens are stored (in
//! `db::tokens`); a session keeps where and how it was opened and when it was last used.

use time::OffsetDateTime;
use tokio_postgres::Row;
use users_core::cursor::{Cursor, CursorKey, Sort};
use uuid::Uuid;

use super::GenericClient;
use super::audit::{Ctx, Event};
use super::events;

/// Longest `User-Agent` kept, in characters (SPEC §7).
pub const USER_AGENT_MAX: usize = 256;

/// Where a login came from.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub country: Option<String>,
}

/// A login to record: the session, its first refresh token and the audit entry, in one
/// statement (one round trip, never one without the others).
#[derive(Debug)]
pub struct NewLogin<'a> {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub refresh_digest: &'a [u8],
    pub refresh_ttl: i64,
    pub access_ttl: i64,
    pub origin: &'a Origin,
    /// How the login was proved (`pwd`, then `otp` or `rc`): `mfa` is whether a second
    /// factor was.
    pub amr: &'a [&'a str],
}

/// Records `login` if its user is still active; `false` (and nothing stored) when the account
/// is gone or inactive.
pub async fn open(
    db: &impl GenericClient,
    login: &NewLogin<'_>,
    ctx: &Ctx,
    event: Event<'_>,
) -> Result<bool, tokio_postgres::Error> {
    let statement = db
        .prepare_cached(
            "WITH session AS (\
               INSERT INTO sessions (id, user_id, expires_at, access_expires_at, ip, user_agent, \
                                     country, mfa, amr) \
               SELECT $1, u.id, now() + make_interval(secs => $4), \
                      now() + make_interval(secs => $5), $6, $7, $8, cardinality($9::text[]) > 1, $9 \
               FROM users u WHERE u.id = $2 AND u.is_active RETURNING id, user_id, expires_at), \
             token AS (\
               INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at) \
               SELECT $10, s.user_id, s.id, $3, s.expires_at FROM session s RETURNING 1) \
             INSERT INTO audit_log (actor_id, action, target_id, request_id, ip, details) \
             SELECT $11, $12, $13, $14, $15, $16 FROM token",
        )
        .await?;
    let n = db
        .execute(
            &statement,
            &[
                &login.session_id,
                &login.user_id,
                &login.refresh_digest,
                &(login.refresh_ttl as f64),
                &(login.access_ttl as f64),
                &login.origin.ip,
                &login.origin.user_agent,
                &login.origin.country,
                &login.amr,
                &Uuid::now_v7(),
                &event.actor,
                &event.action,
                &event.target,
                &ctx.request_id,
                &ctx.ip,
                &event.details,
            ],
        )
        .await?;
    Ok(n == 1)
}

/// Stamps a refresh of `id`: used now, and its newest tokens' expiry. `None` when the session
/// is revoked or gone; else how its login was proved (`amr`).
pub async fn refreshed(
    db: &impl GenericClient,
    id: Uuid,
    refresh_ttl: i64,
    access_ttl: i64,
) -> Result<Option<Vec<String>>, tokio_postgres::Error> {
    let statement = db
        .prepare_cached(
            "UPDATE sessions SET last_used_at = now(), \
             expires_at = now() + make_interval(secs => $2), \
             access_expires_at = now() + make_interval(secs => $3) \
             WHERE id = $1 AND revoked_at IS NULL RETURNING amr",
        )
        .await?;
    Ok(db
        .query_opt(
            &statement,
            &[&id, &(refresh_ttl as f64), &(access_ttl as f64)],
        )
        .await?
        .map(|r| r.get(0)))
}

/// Stamps `last_used_at` of `id` when it is older than five minutes (SPEC §7): at most one
/// write per session per five minutes, however busy it is.
pub async fn touch(db: &impl GenericClient, id: Uuid) -> Result<(), tokio_postgres::Error> {
    db.execute(
        "UPDATE sessions SET last_used_at = now() \
         WHERE id = $1 AND last_used_at < now() - interval '5 minutes'",
        &[&id],
    )
    .await?;
    Ok(())
}

/// Revokes session `id` of `user_id`, its refresh family and (through the revocation feed) its
/// access tokens. `false` when it is not a live session of that user.
pub async fn revoke(
    db: &impl GenericClient,
    user_id: Uuid,
    id: Uuid,
) -> Result<bool, tokio_postgres::Error> {
    let revoked = db
        .execute(
            "UPDATE sessions SET revoked_at = now() \
             WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
            &[&id, &user_id],
        )
        .await?;
    if revoked == 0 {
        return Ok(false);
    }
    super::tokens::revoke_family(db, id).await?;
    events::revoke_session(db, user_id, id).await?;
    Ok(true)
}

/// Revokes every live session of `user_id` but `keep`, as [`revoke`] does each; returns how
/// many.
pub async fn revoke_others(
    db: &impl GenericClient,
    user_id: Uuid,
    keep: Option<Uuid>,
) -> Result<u64, tokio_postgres::Error> {
    let rows = db
        .query(
            "UPDATE sessions SET revoked_at = now() \
             WHERE user_id = $1 AND revoked_at IS NULL AND id IS DISTINCT FROM $2 RETURNING id",
            &[&user_id, &keep],
        )
        .await?;
    for row in &rows {
        let id: Uuid = row.get(0);
        super::tokens::revoke_family(db, id).await?;
        events::revoke_session(db, user_id, id).await?;
    }
    Ok(rows.len() as u64)
}

/// Marks every live session of `user_id` revoked, returning how many. Their access tokens are
/// revoked by the caller's new security version, so no per-session event is needed.
pub async fn close_all(
    db: &impl GenericClient,
    user_id: Uuid,
) -> Result<u64, tokio_postgres::Error> {
    db.execute(
        "UPDATE sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
        &[&user_id],
    )
    .await
}

/// A live session as its owner sees it.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: Uuid,
    pub created_at: OffsetDateTime,
    pub last_used_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub country: Option<String>,
    pub mfa: bool,
}

impl From<&Row> for SessionRow {
    fn from(r: &Row) -> Self {
        Self {
            id: r.get("id"),
            created_at: r.get("created_at"),
            last_used_at: r.get("last_used_at"),
            expires_at: r.get("expires_at"),
            ip: r.get("ip"),
            user_agent: r.get("user_agent"),
            country: r.get("country"),
            mfa: r.get("mfa"),
        }
    }
}

impl SessionRow {
    /// Where the page after this row starts.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            sort: Sort::CreatedDesc,
            key: CursorKey::Micros(micros(self.created_at)),
            id: self.id,
        }
    }
}

fn micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}

/// Up to `limit` live sessions of `user_id`, newest first, after `cursor`.
pub async fn list(
    db: &impl GenericClient,
    user_id: Uuid,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<Vec<SessionRow>, tokio_postgres::Error> {
    const LIVE: &str = "SELECT id, created_at, last_used_at, expires_at, ip, user_agent, country, \
         mfa FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now()";
    let rows = match after.map(|c| (&c.key, c.id)) {
        Some((CursorKey::Micros(key), id)) => {
            let sql = format!(
                "{LIVE} AND ((extract(epoch FROM created_at) * 1000000)::bigint, id) < ($2, $3) \
                 ORDER BY created_at DESC, id DESC LIMIT $4"
            );
            db.query(&sql, &[&user_id, key, &id, &limit]).await?
        }
        _ => {
            let sql = format!("{LIVE} ORDER BY created_at DESC, id DESC LIMIT $2");
            db.query(&sql, &[&user_id, &limit]).await?
        }
    };
    Ok(rows.iter().map(SessionRow::from).collect())
}

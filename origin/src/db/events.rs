//! The `security_events` feed: revocations in commit order. A trigger on `users` records new
//! security versions and deletions; [`revoke_session`] records a revoked session.

use users_core::wire::Revocation;
use uuid::Uuid;

use super::GenericClient;

/// One revocation: tokens of `user_id` with `sv` below `security_version` are revoked, or,
/// with `session_id`, the tokens of that session, none of which lives past `until`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SecurityEvent {
    pub seq: i64,
    pub user_id: Uuid,
    pub security_version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<Uuid>,
    /// Unix seconds; with `session_id` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
}

impl SecurityEvent {
    pub fn revocation(&self) -> Revocation {
        Revocation::of_event(
            self.user_id,
            self.security_version,
            self.session_id,
            self.until,
        )
    }

    /// A session revocation whose tokens have all expired by `now` (Unix seconds) means
    /// nothing any more.
    pub fn expired(&self, now: i64) -> bool {
        self.until.is_some_and(|until| until < now)
    }
}

/// The newest sequence number (0 when there is none).
pub async fn last_seq(db: &impl GenericClient) -> Result<i64, tokio_postgres::Error> {
    Ok(db
        .query_one("SELECT coalesce(max(seq), 0) FROM security_events", &[])
        .await?
        .get(0))
}

/// Up to `limit` events after `since`, oldest first.
pub async fn since(
    db: &impl GenericClient,
    since: i64,
    limit: i64,
) -> Result<Vec<SecurityEvent>, tokio_postgres::Error> {
    let rows = db
        .query(
            "SELECT seq, user_id, security_version, session_id, \
             extract(epoch FROM expires_at)::bigint FROM security_events \
             WHERE seq > $1 ORDER BY seq LIMIT $2",
            &[&since, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| SecurityEvent {
            seq: r.get(0),
            user_id: r.get(1),
            security_version: r.get(2),
            session_id: r.get(3),
            until: r.get(4),
        })
        .collect())
}

/// Records that session `sid` of `user_id` was revoked: edges reject its access tokens until
/// the last of them expires (`sessions.access_expires_at`, with the verifiers' leeway).
pub async fn revoke_session(
    db: &impl GenericClient,
    user_id: Uuid,
    sid: Uuid,
) -> Result<(), tokio_postgres::Error> {
    db.execute(
        "INSERT INTO security_events (user_id, security_version, session_id, expires_at) \
         SELECT u.id, u.security_version, s.id, \
                s.access_expires_at + make_interval(secs => $3) \
         FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $2 AND s.user_id = $1",
        &[&user_id, &sid, &(users_core::token::LEEWAY as f64)],
    )
    .await?;
    Ok(())
}

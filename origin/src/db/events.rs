//! The `security_events` feed: revocations in commit order, filled by a trigger on `users`.

use uuid::Uuid;

use super::GenericClient;

/// One revocation: tokens of `user_id` with `sv` below `security_version` are revoked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SecurityEvent {
    pub seq: i64,
    pub user_id: Uuid,
    pub security_version: i64,
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
            "SELECT seq, user_id, security_version FROM security_events WHERE seq > $1 ORDER BY seq LIMIT $2",
            &[&since, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| SecurityEvent {
            seq: r.get(0),
            user_id: r.get(1),
            security_version: r.get(2),
        })
        .collect())
}

//! The reads of an export (SPEC §10): accounts in `(created_at, id)` order, a page at a time
//! after a keyset position.

use time::OffsetDateTime;
use uuid::Uuid;

use super::GenericClient;

/// An exported account.
#[derive(Debug, Clone)]
pub struct Exported {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub display_name: Option<String>,
    pub roles: Vec<String>,
    pub is_active: bool,
    pub email_verified: bool,
    pub created_at: OffsetDateTime,
    pub external_id: Option<String>,
    pub password_hash: Option<String>,
}

/// Up to `limit` accounts after `after` (none: from the first), with their password hashes
/// when `with_hash`.
pub async fn page(
    db: &impl GenericClient,
    after: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
    with_hash: bool,
) -> Result<Vec<Exported>, tokio_postgres::Error> {
    let (at, id) = after.unzip();
    let rows = db
        .query(
            "SELECT u.id, u.username, u.email, u.display_name, u.is_active, u.email_verified, \
                 u.created_at, u.external_id, CASE WHEN $4 THEN u.password_hash END, \
                 ARRAY(SELECT ur.role_name FROM user_roles ur WHERE ur.user_id = u.id \
                       ORDER BY ur.role_name) \
             FROM users u \
             WHERE $1::timestamptz IS NULL OR (u.created_at, u.id) > ($1, $2) \
             ORDER BY u.created_at, u.id LIMIT $3",
            &[&at, &id, &limit, &with_hash],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| Exported {
            id: r.get(0),
            username: r.get(1),
            email: r.get(2),
            display_name: r.get(3),
            is_active: r.get(4),
            email_verified: r.get(5),
            created_at: r.get(6),
            external_id: r.get(7),
            password_hash: r.get(8),
            roles: r.get(9),
        })
        .collect())
}

//! The writes of an import (SPEC §10): an account as another system had it, inserted or
//! brought up to date by e-mail address.

use time::OffsetDateTime;
use uuid::Uuid;

use super::GenericClient;

/// An imported account's fields.
#[derive(Debug, Clone)]
pub struct Imported<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub display_name: Option<&'a str>,
    /// `None` on an update: the stored hash stays.
    pub password_hash: Option<&'a str>,
    pub is_active: bool,
    pub email_verified: bool,
    pub created_at: Option<OffsetDateTime>,
    pub external_id: Option<&'a str>,
}

/// Inserts the account; its id.
pub async fn insert(
    db: &impl GenericClient,
    new: &Imported<'_>,
) -> Result<Uuid, tokio_postgres::Error> {
    let id = Uuid::now_v7();
    db.execute(
        "INSERT INTO users (id, username, email, display_name, password_hash, is_active, \
             email_verified, created_at, external_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, COALESCE($8, now()), $9)",
        &[
            &id,
            &new.username,
            &new.email,
            &new.display_name,
            &new.password_hash.unwrap_or("!"),
            &new.is_active,
            &new.email_verified,
            &new.created_at,
            &new.external_id,
        ],
    )
    .await?;
    Ok(id)
}

/// Brings the account `id` up to `new`; its new version, and whether its password or its
/// active flag changed (its sessions then end).
pub async fn update(
    db: &impl GenericClient,
    id: Uuid,
    new: &Imported<'_>,
) -> Result<Option<(i64, bool)>, tokio_postgres::Error> {
    let row = db
        .query_opt(
            "WITH old AS (SELECT password_hash, is_active FROM users WHERE id = $1 FOR UPDATE) \
             UPDATE users u SET username = $2, display_name = $3, \
                 password_hash = COALESCE($4, u.password_hash), is_active = $5, \
                 email_verified = $6, external_id = COALESCE($7, u.external_id), \
                 version = u.version + 1, updated_at = now() \
             FROM old WHERE u.id = $1 \
             RETURNING u.version, (old.password_hash IS DISTINCT FROM u.password_hash \
                 OR old.is_active IS DISTINCT FROM u.is_active)",
            &[
                &id,
                &new.username,
                &new.display_name,
                &new.password_hash,
                &new.is_active,
                &new.email_verified,
                &new.external_id,
            ],
        )
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

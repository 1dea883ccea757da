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
             email_verified, created_at, external_id, imported_hash_sha256) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, COALESCE($8, now()), $9, \
             sha256(convert_to($5, 'UTF8')))",
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

/// How an update treats what the account has here.
#[derive(Debug, Clone, Copy, Default)]
pub struct Keep {
    /// The row's roles differ from the account's: it changes even if nothing else does.
    pub roles_changed: bool,
    /// The hash here stays unless the other system's changed since the last import: a
    /// rehash at login, or a password set here, is not undone by a rerun.
    pub hash_unless_changed: bool,
}

/// Brings the account `id` up to `new`; its new version, and whether its password or its
/// active flag changed (its sessions then end). `None` when nothing would change (and
/// nothing is written).
pub async fn update(
    db: &impl GenericClient,
    id: Uuid,
    new: &Imported<'_>,
    keep: Keep,
) -> Result<Option<(i64, bool)>, tokio_postgres::Error> {
    let row = db
        .query_opt(
            "WITH old AS (SELECT * FROM users WHERE id = $1 FOR UPDATE), \
             next AS (SELECT CASE WHEN $4::text IS NULL THEN old.password_hash \
                     WHEN $9 AND old.imported_hash_sha256 = sha256(convert_to($4, 'UTF8')) \
                     THEN old.password_hash ELSE $4 END AS hash, \
                 COALESCE($7, old.external_id) AS external_id FROM old) \
             UPDATE users u SET username = $2, display_name = $3, password_hash = next.hash, \
                 is_active = $5, email_verified = $6, external_id = next.external_id, \
                 imported_hash_sha256 = COALESCE(sha256(convert_to($4, 'UTF8')), \
                     old.imported_hash_sha256), \
                 version = u.version + 1, updated_at = now() \
             FROM old, next WHERE u.id = $1 AND ($8 OR (old.username, old.display_name, \
                 old.password_hash, old.is_active, old.email_verified, old.external_id) \
                 IS DISTINCT FROM ($2, $3, next.hash, $5, $6, next.external_id)) \
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
                &keep.roles_changed,
                &keep.hash_unless_changed,
            ],
        )
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

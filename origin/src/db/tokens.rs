//! Refresh tokens and password-reset tokens. Only digests of tokens are stored (made by
//! `crate::tokens`).

use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::GenericClient;

/// A refresh token to store.
#[derive(Debug)]
pub struct NewRefresh<'a> {
    id: Uuid,
    user_id: Uuid,
    family_id: Uuid,
    digest: &'a [u8],
    ttl_secs: f64,
}

impl<'a> NewRefresh<'a> {
    /// The token with `digest` for `user_id` in `family_id`, valid for `ttl_secs`.
    pub fn new(user_id: Uuid, family_id: Uuid, digest: &'a [u8], ttl_secs: i64) -> Self {
        Self {
            id: Uuid::now_v7(),
            user_id,
            family_id,
            digest,
            ttl_secs: ttl_secs as f64,
        }
    }

    /// `$1`–`$5` of the statements below.
    fn params(&self) -> [&(dyn ToSql + Sync); 5] {
        [
            &self.id,
            &self.user_id,
            &self.family_id,
            &self.digest,
            &self.ttl_secs,
        ]
    }
}

pub async fn insert_refresh(
    db: &impl GenericClient,
    token: &NewRefresh<'_>,
) -> Result<(), tokio_postgres::Error> {
    let statement = db
        .prepare_cached(
            "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at) \
             VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))",
        )
        .await?;
    db.execute(&statement, &token.params()).await?;
    Ok(())
}

/// What presenting a refresh token found.
#[derive(Debug, PartialEq, Eq)]
pub enum Spend {
    /// Valid: it is now spent; continue the family.
    Spent { user_id: Uuid, family_id: Uuid },
    /// Already spent: a replay. The family has been revoked.
    Reused,
    /// Unknown, expired or revoked.
    Invalid,
}

/// Spends a refresh token atomically (one of two racing requests wins).
pub async fn spend_refresh(
    db: &impl GenericClient,
    digest: &[u8],
) -> Result<Spend, tokio_postgres::Error> {
    let spent = db
        .query_opt(
            "UPDATE refresh_tokens SET spent_at = now() WHERE token_hash = $1 AND spent_at IS NULL \
             AND revoked_at IS NULL AND expires_at > now() RETURNING user_id, family_id",
            &[&digest],
        )
        .await?;
    if let Some(row) = spent {
        return Ok(Spend::Spent {
            user_id: row.get(0),
            family_id: row.get(1),
        });
    }
    let known = db
        .query_opt(
            "SELECT family_id, spent_at IS NOT NULL, user_id FROM refresh_tokens \
             WHERE token_hash = $1",
            &[&digest],
        )
        .await?;
    match known {
        Some(row) if row.get::<_, bool>(1) => {
            let family: Uuid = row.get(0);
            // The replayed family's session ends, its access tokens with it.
            revoke_family(db, family).await?;
            super::sessions::revoke(db, row.get(2), family).await?;
            Ok(Spend::Reused)
        }
        _ => Ok(Spend::Invalid),
    }
}

pub async fn revoke_family(
    db: &impl GenericClient,
    family_id: Uuid,
) -> Result<(), tokio_postgres::Error> {
    db.execute(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
        &[&family_id],
    )
    .await?;
    Ok(())
}

/// The family (session) of the refresh token `digest`, if it belongs to `user_id`.
pub async fn family_of(
    db: &impl GenericClient,
    user_id: Uuid,
    digest: &[u8],
) -> Result<Option<Uuid>, tokio_postgres::Error> {
    Ok(db
        .query_opt(
            "SELECT family_id FROM refresh_tokens WHERE token_hash = $1 AND user_id = $2",
            &[&digest, &user_id],
        )
        .await?
        .map(|r| r.get(0)))
}

pub async fn revoke_all_refresh(
    db: &impl GenericClient,
    user_id: Uuid,
) -> Result<(), tokio_postgres::Error> {
    db.execute(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
        &[&user_id],
    )
    .await?;
    Ok(())
}

/// Stores a reset token for `user_id`, mailed to `email`.
pub async fn insert_reset(
    db: &impl GenericClient,
    user_id: Uuid,
    email: &str,
    digest: &[u8],
    ttl_secs: i64,
) -> Result<(), tokio_postgres::Error> {
    db.execute(
        "INSERT INTO password_reset_tokens (token_hash, user_id, email, expires_at) \
         VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
        &[&digest, &user_id, &email, &(ttl_secs as f64)],
    )
    .await?;
    Ok(())
}

/// The address the reset token `digest` was mailed to (none for tokens from before it was
/// recorded).
pub async fn reset_recipient(
    db: &impl GenericClient,
    digest: &[u8],
) -> Result<Option<String>, tokio_postgres::Error> {
    Ok(db
        .query_opt(
            "SELECT email FROM password_reset_tokens WHERE token_hash = $1",
            &[&digest],
        )
        .await?
        .and_then(|r| r.get(0)))
}

/// The user a valid (unspent, unexpired) reset token belongs to.
pub async fn find_reset(
    db: &impl GenericClient,
    digest: &[u8],
) -> Result<Option<Uuid>, tokio_postgres::Error> {
    Ok(db
        .query_opt(
            "SELECT user_id FROM password_reset_tokens WHERE token_hash = $1 AND spent_at IS NULL AND expires_at > now()",
            &[&digest],
        )
        .await?
        .map(|r| r.get(0)))
}

/// Spends a reset token and every other outstanding one of the same user; `false` if it was
/// spent meanwhile.
pub async fn spend_reset(
    db: &impl GenericClient,
    digest: &[u8],
    user_id: Uuid,
) -> Result<bool, tokio_postgres::Error> {
    let n = db
        .execute(
            "UPDATE password_reset_tokens SET spent_at = now() WHERE token_hash = $1 AND spent_at IS NULL \
             AND expires_at > now()",
            &[&digest],
        )
        .await?;
    db.execute(
        "UPDATE password_reset_tokens SET spent_at = now() WHERE user_id = $1 AND spent_at IS NULL",
        &[&user_id],
    )
    .await?;
    Ok(n == 1)
}

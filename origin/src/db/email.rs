//! E-mail verification: the `email_tokens` table and the verification columns of `users`
//! (`email_verified`, the pending change, the mail throttle). Only digests of tokens are
//! stored (made by `crate::tokens`).

use uuid::Uuid;

use super::GenericClient;

/// What a mailed token proves (the `purpose` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `email` is the account's address.
    Verify,
    /// The current address agrees to the pending change.
    ChangeCurrent,
    /// The pending address is reachable and agrees to the change.
    ChangeNew,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verify => "verify",
            Self::ChangeCurrent => "change_current",
            Self::ChangeNew => "change_new",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "verify" => Some(Self::Verify),
            "change_current" => Some(Self::ChangeCurrent),
            "change_new" => Some(Self::ChangeNew),
            _ => None,
        }
    }
}

/// Stores a token digest for `user_id`, mailed to `email`, valid for `ttl_secs`.
pub async fn insert_token(
    db: &impl GenericClient,
    user_id: Uuid,
    purpose: Purpose,
    email: &str,
    digest: &[u8],
    ttl_secs: i64,
) -> Result<(), tokio_postgres::Error> {
    db.execute(
        "INSERT INTO email_tokens (token_hash, user_id, purpose, email, expires_at) \
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))",
        &[
            &digest,
            &user_id,
            &purpose.as_str(),
            &email,
            &(ttl_secs as f64),
        ],
    )
    .await?;
    Ok(())
}

/// A token that was valid and is now spent.
#[derive(Debug, Clone)]
pub struct Spent {
    pub user_id: Uuid,
    pub purpose: Purpose,
    /// The address it was mailed to.
    pub email: String,
}

/// Spends a valid (unspent, unexpired) token in one statement: of two requests racing with one
/// token, exactly one gets it. `None` for an unknown, spent or expired token.
pub async fn spend_token(
    db: &impl GenericClient,
    digest: &[u8],
) -> Result<Option<Spent>, tokio_postgres::Error> {
    let row = db
        .query_opt(
            "UPDATE email_tokens SET spent_at = now() \
             WHERE token_hash = $1 AND spent_at IS NULL AND expires_at > now() \
             RETURNING user_id, purpose, email",
            &[&digest],
        )
        .await?;
    Ok(row.and_then(|r| {
        Some(Spent {
            user_id: r.get(0),
            purpose: Purpose::parse(r.get(1))?,
            email: r.get(2),
        })
    }))
}

/// Spends every outstanding token of `user_id` with one of `purposes`.
pub async fn spend_outstanding(
    db: &impl GenericClient,
    user_id: Uuid,
    purposes: &[Purpose],
) -> Result<(), tokio_postgres::Error> {
    let purposes: Vec<&str> = purposes.iter().map(|p| p.as_str()).collect();
    db.execute(
        "UPDATE email_tokens SET spent_at = now() \
         WHERE user_id = $1 AND spent_at IS NULL AND purpose = ANY($2)",
        &[&user_id, &purposes],
    )
    .await?;
    Ok(())
}

/// Spends every outstanding password-reset token of `user_id`: they were mailed to an address
/// the account no longer has. So a valid reset token always went to the current address.
pub async fn spend_resets(
    db: &impl GenericClient,
    user_id: Uuid,
) -> Result<(), tokio_postgres::Error> {
    db.execute(
        "UPDATE password_reset_tokens SET spent_at = now() WHERE user_id = $1 AND spent_at IS NULL",
        &[&user_id],
    )
    .await?;
    Ok(())
}

/// Takes the account's mail slot: `true` (and the slot stamped now) when no verification or
/// notice mail went to it in the last `interval_secs`. One statement, so two racing requests
/// cannot both take it.
pub async fn claim_mail_slot(
    db: &impl GenericClient,
    user_id: Uuid,
    interval_secs: i64,
) -> Result<bool, tokio_postgres::Error> {
    Ok(db
        .execute(
            "UPDATE users SET email_mailed_at = now() WHERE id = $1 \
             AND (email_mailed_at IS NULL OR email_mailed_at <= now() - make_interval(secs => $2))",
            &[&user_id, &(interval_secs as f64)],
        )
        .await?
        == 1)
}

/// Sets `email_verified` (a new version of the view when it changes).
pub async fn set_verified(
    db: &impl GenericClient,
    user_id: Uuid,
    verified: bool,
) -> Result<(), tokio_postgres::Error> {
    db.execute(
        "UPDATE users SET email_verified = $2, version = version + 1, updated_at = now() \
         WHERE id = $1 AND email_verified IS DISTINCT FROM $2",
        &[&user_id, &verified],
    )
    .await?;
    Ok(())
}

/// Whether an account other than `except` has `email` (case-insensitively).
pub async fn taken(
    db: &impl GenericClient,
    email: &str,
    except: Uuid,
) -> Result<bool, tokio_postgres::Error> {
    let row = db
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($1) AND id <> $2)",
            &[&email, &except],
        )
        .await?;
    Ok(row.get(0))
}

/// Starts (or replaces) a pending change to `email`; `current_confirmed` is whether the
/// current address is taken as confirmed from the start (it is when it is not verified).
pub async fn set_pending(
    db: &impl GenericClient,
    user_id: Uuid,
    email: &str,
    current_confirmed: bool,
) -> Result<(), tokio_postgres::Error> {
    db.execute(
        "UPDATE users SET pending_email = $2, pending_current_confirmed = $3, \
         pending_new_confirmed = false, version = version + 1, updated_at = now() WHERE id = $1",
        &[&user_id, &email, &current_confirmed],
    )
    .await?;
    Ok(())
}

/// Records one side's confirmation of the pending change.
pub async fn confirm_pending(
    db: &impl GenericClient,
    user_id: Uuid,
    side: Purpose,
) -> Result<(), tokio_postgres::Error> {
    let sql = match side {
        Purpose::ChangeCurrent => {
            "UPDATE users SET pending_current_confirmed = true, version = version + 1, \
             updated_at = now() WHERE id = $1"
        }
        Purpose::ChangeNew | Purpose::Verify => {
            "UPDATE users SET pending_new_confirmed = true, version = version + 1, \
             updated_at = now() WHERE id = $1"
        }
    };
    db.execute(sql, &[&user_id]).await?;
    Ok(())
}

/// Moves the account to its pending address, verified, and clears the pending change.
pub async fn commit_pending(
    db: &impl GenericClient,
    user_id: Uuid,
) -> Result<(), tokio_postgres::Error> {
    db.execute(
        "UPDATE users SET email = pending_email, email_verified = true, pending_email = NULL, \
         pending_current_confirmed = false, pending_new_confirmed = false, \
         version = version + 1, updated_at = now() WHERE id = $1 AND pending_email IS NOT NULL",
        &[&user_id],
    )
    .await?;
    Ok(())
}

/// Drops a pending change (the address was set another way).
pub async fn clear_pending(
    db: &impl GenericClient,
    user_id: Uuid,
) -> Result<(), tokio_postgres::Error> {
    db.execute(
        "UPDATE users SET pending_email = NULL, pending_current_confirmed = false, \
         pending_new_confirmed = false, version = version + 1, updated_at = now() \
         WHERE id = $1 AND pending_email IS NOT NULL",
        &[&user_id],
    )
    .await?;
    Ok(())
}

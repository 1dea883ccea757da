//! The tables of second factors (SPEC §8): `mfa_factors` (TOTP secrets, sealed),
//! `mfa_recovery_codes` (keyed hashes), `mfa_challenges` (the login step-up's single-use
//! tokens, by digest) and `mfa_failures` (each account's budget of wrong codes).
//!
//! Every check of a code runs in a transaction that first takes the account's row lock
//! ([`lock_account`]): two checks for one account never interleave, so a time step or a
//! recovery code is accepted once and the budget of wrong codes is exact.

use uuid::Uuid;

use super::GenericClient;

/// Wrong codes an account may spend before it must wait (SPEC §8).
pub const FAILURE_BUDGET: f64 = 10.0;
/// Seconds for one wrong code to be refunded (SPEC §8: one per 6 minutes).
pub const FAILURE_REFILL_SECS: f64 = 360.0;
/// Wrong codes after which a challenge dies (SPEC §8).
pub const CHALLENGE_FAILURES: i32 = 5;

/// A TOTP factor row.
#[derive(Debug, Clone)]
pub struct FactorRow {
    pub id: Uuid,
    pub key_id: String,
    pub sealed_secret: Vec<u8>,
    pub confirmed: bool,
    pub last_step: Option<i64>,
}

impl From<tokio_postgres::Row> for FactorRow {
    fn from(r: tokio_postgres::Row) -> Self {
        Self {
            id: r.get("id"),
            key_id: r.get("key_id"),
            sealed_secret: r.get("sealed_secret"),
            confirmed: r.get("confirmed"),
            last_step: r.get("last_step"),
        }
    }
}

const FACTOR: &str = "SELECT id, key_id, sealed_secret, confirmed_at IS NOT NULL AS confirmed, \
     last_step FROM mfa_factors";

/// Takes the row lock of account `user_id` for the rest of the transaction; `false` when there
/// is no such account.
pub async fn lock_account(
    db: &impl GenericClient,
    user_id: Uuid,
) -> Result<bool, tokio_postgres::Error> {
    Ok(db
        .query_opt(
            "SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE",
            &[&user_id],
        )
        .await?
        .is_some())
}

/// Stores a new pending factor valid `ttl` seconds; the user's other pending ones die.
pub async fn insert_pending(
    db: &impl GenericClient,
    id: Uuid,
    user_id: Uuid,
    key_id: &str,
    sealed_secret: &[u8],
    ttl: i64,
) -> Result<(), tokio_postgres::Error> {
    db.execute(
        "DELETE FROM mfa_factors WHERE user_id = $1 AND confirmed_at IS NULL",
        &[&user_id],
    )
    .await?;
    db.execute(
        "INSERT INTO mfa_factors (id, user_id, key_id, sealed_secret, expires_at) \
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))",
        &[&id, &user_id, &key_id, &sealed_secret, &(ttl as f64)],
    )
    .await?;
    Ok(())
}

/// The pending, unexpired factor `id` of `user_id`.
pub async fn pending(
    db: &impl GenericClient,
    user_id: Uuid,
    id: Uuid,
) -> Result<Option<FactorRow>, tokio_postgres::Error> {
    let sql = format!(
        "{FACTOR} WHERE id = $1 AND user_id = $2 AND confirmed_at IS NULL AND expires_at > now()"
    );
    Ok(db
        .query_opt(&sql, &[&id, &user_id])
        .await?
        .map(FactorRow::from))
}

/// The confirmed factor of `user_id`, if it has one.
pub async fn confirmed(
    db: &impl GenericClient,
    user_id: Uuid,
) -> Result<Option<FactorRow>, tokio_postgres::Error> {
    let sql = format!("{FACTOR} WHERE user_id = $1 AND confirmed_at IS NOT NULL");
    Ok(db.query_opt(&sql, &[&user_id]).await?.map(FactorRow::from))
}

/// Confirms factor `id` with its first accepted step; the user's other pending factors die.
pub async fn confirm(
    db: &impl GenericClient,
    user_id: Uuid,
    id: Uuid,
    step: i64,
) -> Result<(), tokio_postgres::Error> {
    db.execute(
        "UPDATE mfa_factors SET confirmed_at = now(), last_step = $3 WHERE id = $1 AND user_id = $2",
        &[&id, &user_id, &step],
    )
    .await?;
    db.execute(
        "DELETE FROM mfa_factors WHERE user_id = $1 AND confirmed_at IS NULL",
        &[&user_id],
    )
    .await?;
    Ok(())
}

/// Records `step` as accepted for factor `id`, unless it (or a later one) already was: `false`
/// then (RFC 6238 §5.2).
pub async fn accept_step(
    db: &impl GenericClient,
    id: Uuid,
    step: i64,
) -> Result<bool, tokio_postgres::Error> {
    let n = db
        .execute(
            "UPDATE mfa_factors SET last_step = $2 \
             WHERE id = $1 AND (last_step IS NULL OR last_step < $2)",
            &[&id, &step],
        )
        .await?;
    Ok(n == 1)
}

/// Replaces the recovery codes of `user_id` with `hashes`.
pub async fn replace_codes(
    db: &impl GenericClient,
    user_id: Uuid,
    hashes: &[Vec<u8>],
) -> Result<(), tokio_postgres::Error> {
    db.execute(
        "DELETE FROM mfa_recovery_codes WHERE user_id = $1",
        &[&user_id],
    )
    .await?;
    db.execute(
        "INSERT INTO mfa_recovery_codes (user_id, code_hash) SELECT $1, unnest($2::bytea[])",
        &[&user_id, &hashes],
    )
    .await?;
    Ok(())
}

/// Spends the unused recovery code of `user_id` stored as one of `hashes`; `false` when there
/// is none.
pub async fn spend_code(
    db: &impl GenericClient,
    user_id: Uuid,
    hashes: &[Vec<u8>],
) -> Result<bool, tokio_postgres::Error> {
    let n = db
        .execute(
            "UPDATE mfa_recovery_codes SET used_at = now() \
             WHERE user_id = $1 AND code_hash = ANY($2) AND used_at IS NULL",
            &[&user_id, &hashes],
        )
        .await?;
    Ok(n >= 1)
}

/// Unused recovery codes of `user_id`.
pub async fn codes_left(
    db: &impl GenericClient,
    user_id: Uuid,
) -> Result<i64, tokio_postgres::Error> {
    Ok(db
        .query_one(
            "SELECT count(*) FROM mfa_recovery_codes WHERE user_id = $1 AND used_at IS NULL",
            &[&user_id],
        )
        .await?
        .get(0))
}

/// Removes every factor, recovery code and open challenge of `user_id`.
pub async fn remove_all(
    db: &impl GenericClient,
    user_id: Uuid,
) -> Result<(), tokio_postgres::Error> {
    for sql in [
        "DELETE FROM mfa_factors WHERE user_id = $1",
        "DELETE FROM mfa_recovery_codes WHERE user_id = $1",
        "DELETE FROM mfa_challenges WHERE user_id = $1",
    ] {
        db.execute(sql, &[&user_id]).await?;
    }
    Ok(())
}

/// Sets the user's `mfa_enabled`, as a change of the user (new version).
pub async fn set_enabled(
    db: &impl GenericClient,
    user_id: Uuid,
    enabled: bool,
) -> Result<(), tokio_postgres::Error> {
    db.execute(
        "UPDATE users SET mfa_enabled = $2, version = version + 1, updated_at = now() \
         WHERE id = $1",
        &[&user_id, &enabled],
    )
    .await?;
    Ok(())
}

/// Stores a challenge (the digest of its token) for `user_id`, valid `ttl` seconds.
pub async fn insert_challenge(
    db: &impl GenericClient,
    token_hash: &[u8],
    user_id: Uuid,
    ttl: i64,
) -> Result<(), tokio_postgres::Error> {
    db.execute(
        "INSERT INTO mfa_challenges (token_hash, user_id, expires_at) \
         VALUES ($1, $2, now() + make_interval(secs => $3))",
        &[&token_hash, &user_id, &(ttl as f64)],
    )
    .await?;
    Ok(())
}

/// The account of the live challenge stored as `token_hash`: unspent, unexpired and with
/// fewer than [`CHALLENGE_FAILURES`] wrong codes.
pub async fn challenge(
    db: &impl GenericClient,
    token_hash: &[u8],
) -> Result<Option<Uuid>, tokio_postgres::Error> {
    Ok(db
        .query_opt(
            "SELECT user_id FROM mfa_challenges WHERE token_hash = $1 AND spent_at IS NULL \
             AND expires_at > now() AND failures < $2",
            &[&token_hash, &CHALLENGE_FAILURES],
        )
        .await?
        .map(|r| r.get(0)))
}

/// Spends the challenge `token_hash` if it is still live (see [`challenge`]); `false` if it
/// was not.
pub async fn spend_challenge(
    db: &impl GenericClient,
    token_hash: &[u8],
) -> Result<bool, tokio_postgres::Error> {
    let n = db
        .execute(
            "UPDATE mfa_challenges SET spent_at = now() WHERE token_hash = $1 \
             AND spent_at IS NULL AND expires_at > now() AND failures < $2",
            &[&token_hash, &CHALLENGE_FAILURES],
        )
        .await?;
    Ok(n == 1)
}

/// Counts a wrong code against challenge `token_hash`.
pub async fn challenge_failed(
    db: &impl GenericClient,
    token_hash: &[u8],
) -> Result<(), tokio_postgres::Error> {
    db.execute(
        "UPDATE mfa_challenges SET failures = failures + 1 WHERE token_hash = $1",
        &[&token_hash],
    )
    .await?;
    Ok(())
}

/// Wrong codes `user_id` may still try now (up to [`FAILURE_BUDGET`], refilled over time).
pub async fn budget(db: &impl GenericClient, user_id: Uuid) -> Result<f64, tokio_postgres::Error> {
    Ok(db
        .query_opt(
            "SELECT least($2::float8, budget + extract(epoch FROM now() - at)::float8 / $3::float8) \
             FROM mfa_failures WHERE user_id = $1",
            &[&user_id, &FAILURE_BUDGET, &FAILURE_REFILL_SECS],
        )
        .await?
        .map_or(FAILURE_BUDGET, |r| r.get(0)))
}

/// Spends one wrong code of `user_id`'s budget.
pub async fn spend_budget(
    db: &impl GenericClient,
    user_id: Uuid,
) -> Result<(), tokio_postgres::Error> {
    db.execute(
        "INSERT INTO mfa_failures (user_id, budget, at) VALUES ($1, $2::float8 - 1, now()) \
         ON CONFLICT (user_id) DO UPDATE SET at = now(), budget = greatest(0, least($2::float8, \
           mfa_failures.budget + extract(epoch FROM now() - mfa_failures.at)::float8 / $3::float8) - 1)",
        &[&user_id, &FAILURE_BUDGET, &FAILURE_REFILL_SECS],
    )
    .await?;
    Ok(())
}

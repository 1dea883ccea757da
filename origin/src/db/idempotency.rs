//! The `idempotency_keys` table: the first answer to a request with an `Idempotency-Key`.
//!
//! A key is claimed by a transaction-scoped advisory lock on its scope and name, so a second
//! request with the key while the first is in its transaction is told so at once instead of
//! waiting; the answer is inserted in that transaction. A row older than the retention counts
//! as absent and is replaced.

use super::GenericClient;

/// A stored answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    pub fingerprint: Vec<u8>,
    pub status: u16,
    /// `(name, value)` of the headers that are part of the answer.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Takes the key's lock for the rest of the transaction; `false` when another transaction
/// holds it.
pub async fn try_lock(
    db: &impl GenericClient,
    scope: &str,
    key: &str,
) -> Result<bool, tokio_postgres::Error> {
    let row = db
        .query_one(
            "SELECT pg_try_advisory_xact_lock(hashtextextended($1 || E'\\n' || $2, 7))",
            &[&scope, &key],
        )
        .await?;
    Ok(row.get(0))
}

/// The answer stored for the key within the last `ttl_secs`, if any.
pub async fn find(
    db: &impl GenericClient,
    scope: &str,
    key: &str,
    ttl_secs: i64,
) -> Result<Option<StoredAnswer>, tokio_postgres::Error> {
    let row = db
        .query_opt(
            "SELECT fingerprint, status, headers, body FROM idempotency_keys \
             WHERE scope = $1 AND key = $2 AND created_at > now() - make_interval(secs => $3::float8)",
            &[&scope, &key, &(ttl_secs as f64)],
        )
        .await?;
    Ok(row.map(|r| {
        let headers: serde_json::Value = r.get(2);
        StoredAnswer {
            fingerprint: r.get(0),
            status: u16::try_from(r.get::<_, i16>(1)).unwrap_or(500),
            headers: serde_json::from_value(headers).unwrap_or_default(),
            body: r.get(3),
        }
    }))
}

/// Stores `answer` for the key, replacing an expired row; an unexpired one is kept (the
/// first answer wins). Whether it was stored.
pub async fn insert(
    db: &impl GenericClient,
    scope: &str,
    key: &str,
    answer: &StoredAnswer,
    ttl_secs: i64,
) -> Result<bool, tokio_postgres::Error> {
    let headers = serde_json::to_value(&answer.headers).unwrap_or_default();
    let n = db
        .execute(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, status, headers, body) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (scope, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, \
                 status = EXCLUDED.status, headers = EXCLUDED.headers, body = EXCLUDED.body, \
                 created_at = now() \
             WHERE idempotency_keys.created_at <= now() - make_interval(secs => $7::float8)",
            &[
                &scope,
                &key,
                &answer.fingerprint,
                &(answer.status as i16),
                &headers,
                &answer.body,
                &(ttl_secs as f64),
            ],
        )
        .await?;
    Ok(n == 1)
}

/// Deletes up to `limit` rows older than `ttl_secs`; how many it deleted.
pub async fn delete_expired(
    db: &impl GenericClient,
    ttl_secs: i64,
    limit: i64,
) -> Result<u64, tokio_postgres::Error> {
    db.execute(
        "DELETE FROM idempotency_keys WHERE ctid IN (SELECT ctid FROM idempotency_keys \
         WHERE created_at <= now() - make_interval(secs => $1::float8) LIMIT $2)",
        &[&(ttl_secs as f64), &limit],
    )
    .await
}

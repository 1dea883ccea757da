//! `Idempotency-Key` (draft-ietf-httpapi-idempotency-key-header; SPEC §9), with no HTTP in it.
//!
//! A [`Key`] is the client's key, scoped to its caller, with the fingerprint of the request it
//! came with. The first request's answer is stored in the transaction of its write
//! ([`Key::claim`], then [`Key::record`]); a repeat with the same fingerprint gets that answer
//! again, a repeat with another is refused ([`IdempotencyError::Mismatch`]), and one that
//! comes while the first is still in its transaction is refused at once
//! ([`IdempotencyError::InFlight`]). Answers live `IDEMPOTENCY_TTL`; [`spawn_cleanup`] deletes
//! older ones.

use std::time::Duration;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::db::{self, GenericClient, idempotency::StoredAnswer};
use crate::state::AppState;

/// Longest accepted key, in bytes.
pub const KEY_MAX: usize = 255;

/// Why a key cannot be used for this request.
#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    /// The first request with this key has not finished (`409`).
    #[error("a request with this key is in flight")]
    InFlight,
    /// The key came with another request before (`422`).
    #[error("the key was used with another request")]
    Mismatch,
    #[error(transparent)]
    Query(#[from] tokio_postgres::Error),
}

/// Whose keys a key is among: each caller has its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    User(Uuid),
    /// The routes that take no token (registration, the reset request): the fingerprint,
    /// which covers the whole body, is what ties a repeat to its first request.
    Anonymous,
}

/// A client's key for one request.
#[derive(Debug, Clone)]
pub struct Key {
    scope: String,
    key: String,
    fingerprint: [u8; 32],
}

/// An answer to store: its status, the headers that belong to it, its body.
pub type Answer = (u16, Vec<(String, String)>, Vec<u8>);

/// Whether `key` is a key this server accepts: 1 to [`KEY_MAX`] visible ASCII characters.
pub fn is_valid(key: &str) -> bool {
    (1..=KEY_MAX).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

impl Key {
    /// `key` of `caller` for the request `method route` with `body`.
    pub fn new(key: String, caller: Caller, method: &str, route: &str, body: &[u8]) -> Self {
        let scope = match caller {
            Caller::User(id) => format!("user:{id}"),
            Caller::Anonymous => "anonymous".to_owned(),
        };
        let mut h = Sha256::new();
        for part in [method.as_bytes(), b"\n", route.as_bytes(), b"\n", body] {
            h.update(part);
        }
        Self {
            scope,
            key,
            fingerprint: h.finalize().into(),
        }
    }

    fn check(&self, stored: StoredAnswer) -> Result<StoredAnswer, IdempotencyError> {
        if stored.fingerprint == self.fingerprint {
            Ok(stored)
        } else {
            Err(IdempotencyError::Mismatch)
        }
    }

    /// Before any work: the stored answer to replay, if there is one.
    pub async fn peek(
        &self,
        db: &impl GenericClient,
        ttl_secs: i64,
    ) -> Result<Option<StoredAnswer>, IdempotencyError> {
        let found = db::idempotency::find(db, &self.scope, &self.key, ttl_secs).await?;
        found.map(|s| self.check(s)).transpose()
    }

    /// In the write's transaction, before the write: takes the key for the transaction
    /// (refused while another request holds it) and returns the answer to replay if the key
    /// was answered meanwhile.
    pub async fn claim(
        &self,
        tx: &impl GenericClient,
        ttl_secs: i64,
    ) -> Result<Option<StoredAnswer>, IdempotencyError> {
        if !db::idempotency::try_lock(tx, &self.scope, &self.key).await? {
            return Err(IdempotencyError::InFlight);
        }
        self.peek(tx, ttl_secs).await
    }

    /// Stores `answer` as this key's (in the write's transaction, after a [`Key::claim`]; or
    /// on its own for an answer that wrote nothing). A stored unexpired answer is kept.
    pub async fn record(
        &self,
        db: &impl GenericClient,
        (status, headers, body): Answer,
        ttl_secs: i64,
    ) -> Result<(), tokio_postgres::Error> {
        let answer = StoredAnswer {
            fingerprint: self.fingerprint.to_vec(),
            status,
            headers,
            body,
        };
        db::idempotency::insert(db, &self.scope, &self.key, &answer, ttl_secs).await?;
        Ok(())
    }
}

/// Whether an answer of `status` is stored for its key: not a `409` (a conflict may clear), a
/// `429` (a limit), nor any server error (all may pass).
pub fn is_stored(status: u16) -> bool {
    !matches!(status, 409 | 429) && status < 500
}

/// How often expired answers are deleted: the retention, between a second and ten minutes.
fn cleanup_every(ttl_secs: i64) -> Duration {
    Duration::from_secs(ttl_secs.clamp(1, 600) as u64)
}

/// Deletes expired answers until none are left; how many.
pub async fn clean(state: &AppState) -> Result<u64, tokio_postgres::Error> {
    let ttl = state.config.idempotency_ttl;
    let mut total = 0;
    loop {
        let client = match state.db.get().await {
            Ok(c) => c,
            Err(_) => return Ok(total),
        };
        let n = db::idempotency::delete_expired(&client, ttl, 1000).await?;
        total += n;
        if n < 1000 {
            return Ok(total);
        }
    }
}

/// Starts the job that deletes expired answers; it runs until aborted.
pub fn spawn_cleanup(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(cleanup_every(state.config.idempotency_ttl));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match clean(&state).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(deleted = n, "expired idempotency keys deleted"),
                Err(e) => tracing::warn!(error = %e, "deleting expired idempotency keys failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_up_to_255_bytes() {
        assert!(is_valid("8e03978e-40d5-43e8-bc93-6894a57f9324"));
        assert!(is_valid(&"k".repeat(KEY_MAX)));
        assert!(!is_valid(""));
        assert!(!is_valid(&"k".repeat(KEY_MAX + 1)));
        assert!(!is_valid("has space"));
        assert!(!is_valid("é"));
        assert!(!is_valid("tab\t"));
    }

    #[test]
    fn the_fingerprint_covers_method_route_and_body() {
        let key = |m, r, b: &[u8]| Key::new("k".into(), Caller::Anonymous, m, r, b).fingerprint;
        let base = key("POST", "/users", b"{}");
        assert_eq!(base, key("POST", "/users", b"{}"));
        assert_ne!(base, key("POST", "/roles", b"{}"));
        assert_ne!(base, key("PUT", "/users", b"{}"));
        assert_ne!(base, key("POST", "/users", b"{ }"));
        // The separators keep parts from running into each other.
        assert_ne!(key("POST", "/a", b"b"), key("POST", "/ab", b""));
    }

    #[test]
    fn callers_have_their_own_keys() {
        let a = Key::new(
            "k".into(),
            Caller::User(Uuid::from_u128(1)),
            "POST",
            "/",
            b"",
        );
        let b = Key::new(
            "k".into(),
            Caller::User(Uuid::from_u128(2)),
            "POST",
            "/",
            b"",
        );
        let anon = Key::new("k".into(), Caller::Anonymous, "POST", "/", b"");
        assert_ne!(a.scope, b.scope);
        assert_ne!(a.scope, anon.scope);
        assert_eq!(a.fingerprint, b.fingerprint);
    }

    #[test]
    fn conflicts_limits_and_server_errors_are_not_stored() {
        for status in [201, 202, 400, 403, 404, 422] {
            assert!(is_stored(status), "{status}");
        }
        for status in [409, 429, 500, 503] {
            assert!(!is_stored(status), "{status}");
        }
    }

    #[test]
    fn cleanup_runs_at_most_every_ten_minutes() {
        assert_eq!(cleanup_every(86_400), Duration::from_secs(600));
        assert_eq!(cleanup_every(2), Duration::from_secs(2));
        assert_eq!(cleanup_every(0), Duration::from_secs(1));
    }
}

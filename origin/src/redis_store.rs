//! A thin, fault-tolerant handle on Redis: a lazily connecting `ConnectionManager` that
//! reconnects by itself, a key prefix, and a short deadline on every call.
//!
//! Redis is an accelerator here, never the source of truth: every failure is counted
//! (`users_redis_errors_total`), logged (at most once per [`WARN_EVERY`]) and reported as
//! `None`, and callers fall back to PostgreSQL or to in-process state. When Redis returns, the
//! next call uses it again.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use prometheus::IntCounter;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// Deadline of one Redis call.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(250);
/// Minimum seconds between two "Redis unavailable" warnings.
pub const WARN_EVERY: i64 = 10;

/// A Redis connection with a key prefix.
#[derive(Clone)]
pub struct Redis {
    conn: ConnectionManager,
    prefix: Arc<str>,
    last_warn: Arc<AtomicI64>,
    /// Failed calls (`users_redis_errors_total`).
    errors: IntCounter,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// Prepares a connection; nothing is sent until the first call. `errors` counts failed
    /// calls.
    pub fn new(url: &str, prefix: &str, errors: IntCounter) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).map_err(|e| anyhow::anyhow!("REDIS_URL: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self {
            conn,
            prefix: prefix.into(),
            last_warn: Arc::new(AtomicI64::new(0)),
            errors,
        })
    }

    /// The full key for `key`.
    pub fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Runs `cmd` with the deadline; `None` on any failure.
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Option<T> {
        let mut conn = self.conn.clone();
        self.settle(tokio::time::timeout(CALL_TIMEOUT, cmd.query_async::<T>(&mut conn)).await)
    }

    /// Runs a pipeline with the deadline; `None` on any failure.
    pub async fn pipeline<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> Option<T> {
        let mut conn = self.conn.clone();
        self.settle(tokio::time::timeout(CALL_TIMEOUT, pipe.query_async::<T>(&mut conn)).await)
    }

    /// Runs a script with the deadline; `None` on any failure.
    pub async fn script<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Option<T> {
        let mut conn = self.conn.clone();
        self.settle(
            tokio::time::timeout(CALL_TIMEOUT, invocation.invoke_async::<T>(&mut conn)).await,
        )
    }

    fn settle<T>(
        &self,
        result: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    ) -> Option<T> {
        let error = match result {
            Ok(Ok(value)) => return Some(value),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".to_owned(),
        };
        self.errors.inc();
        let now = crate::clock::now();
        let last = self.last_warn.load(Ordering::Relaxed);
        if now - last >= WARN_EVERY
            && self
                .last_warn
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(%error, "redis unavailable: falling back");
        }
        None
    }

    /// Whether Redis answers a PING now.
    pub async fn ping(&self) -> bool {
        self.query::<String>(&redis::cmd("PING")).await.is_some()
    }
}

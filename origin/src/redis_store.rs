//! A thin, fault-tolerant handle on Redis — one server or a Redis Cluster — with a key prefix
//! and a short deadline on every call.
//!
//! One server: a lazily connecting `ConnectionManager` that reconnects by itself. A cluster: a
//! `ClusterClient` whose connection is made on first use and made again on the next call while
//! it cannot be; once made, it follows the cluster's topology and reconnects to the nodes (or to
//! the seed nodes, when it has lost them all) by itself.
//!
//! Redis is an accelerator here, never the source of truth: every failure is counted
//! (`users_redis_errors_total`), logged (at most once per [`WARN_EVERY`]) and reported as
//! `None`, and callers fall back to PostgreSQL or to in-process state. When Redis returns, the
//! next call uses it again.
//!
//! On a cluster, every key one script, pipeline or multi-key command touches must hash to one
//! slot: [`Redis::tagged_key`] gives keys that belong together one hash tag.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use prometheus::IntCounter;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

/// Deadline of one Redis call.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(250);
/// Minimum seconds between two "Redis unavailable" warnings.
pub const WARN_EVERY: i64 = 10;
/// Retries of a cluster request (a redirect after a resharding, a node being replaced); each
/// waits 10–100 ms, all within [`CALL_TIMEOUT`].
const CLUSTER_RETRIES: u32 = 2;

/// A Redis connection with a key prefix.
#[derive(Clone)]
pub struct Redis {
    server: Server,
    prefix: Arc<str>,
    last_warn: Arc<AtomicI64>,
    /// Failed calls (`users_redis_errors_total`).
    errors: IntCounter,
}

/// Where the keys live.
#[derive(Clone)]
enum Server {
    Single(ConnectionManager),
    Cluster(Arc<Cluster>),
}

/// A Redis Cluster, connected on first use.
struct Cluster {
    client: ClusterClient,
    /// Set by the first call that connects; a failed attempt leaves it empty for the next.
    connection: OnceCell<ClusterConnection>,
}

impl Cluster {
    /// The cluster connection, made now if there is none yet: concurrent callers wait for one
    /// attempt rather than each making their own.
    async fn connection(&self) -> RedisResult<ClusterConnection> {
        self.connection
            .get_or_try_init(|| self.client.get_async_connection())
            .await
            .cloned()
    }
}

/// The connection one call runs on.
enum Handle {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Handle {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let server = match self.server {
            Server::Single(_) => "single",
            Server::Cluster(_) => "cluster",
        };
        f.debug_struct("Redis")
            .field("server", &server)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// Prepares a connection to one server; nothing is sent until the first call. `errors`
    /// counts failed calls.
    pub fn new(url: &str, prefix: &str, errors: IntCounter) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).map_err(|e| anyhow::anyhow!("REDIS_URL: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self::with(Server::Single(conn), prefix, errors))
    }

    /// Prepares a connection to the Redis Cluster that `seeds` (node URLs) belong to; nothing
    /// is sent until the first call, so a cluster that is down at start only makes calls fail
    /// (counted) until it is up. `errors` counts failed calls.
    pub fn cluster(seeds: &[String], prefix: &str, errors: IntCounter) -> anyhow::Result<Self> {
        let client = ClusterClient::builder(seeds.iter().map(String::as_str))
            .connection_timeout(CALL_TIMEOUT)
            .response_timeout(CALL_TIMEOUT)
            .retries(CLUSTER_RETRIES)
            .min_retry_wait(10)
            .max_retry_wait(100)
            .build()
            .map_err(|e| anyhow::anyhow!("REDIS_CLUSTER_URLS: {e}"))?;
        let cluster = Cluster {
            client,
            connection: OnceCell::new(),
        };
        Ok(Self::with(
            Server::Cluster(Arc::new(cluster)),
            prefix,
            errors,
        ))
    }

    fn with(server: Server, prefix: &str, errors: IntCounter) -> Self {
        Self {
            server,
            prefix: prefix.into(),
            last_warn: Arc::new(AtomicI64::new(0)),
            errors,
        }
    }

    /// The full key for `key`.
    pub fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The full key for `key` in the hash slot of `group`: keys of one group may share a
    /// script, a pipeline or a multi-key command on a cluster. See [`tagged_key`].
    pub fn tagged_key(&self, group: &str, key: &str) -> String {
        tagged_key(&self.prefix, group, key)
    }

    /// The connection of one call.
    async fn handle(&self) -> RedisResult<Handle> {
        Ok(match &self.server {
            Server::Single(conn) => Handle::Single(conn.clone()),
            Server::Cluster(cluster) => Handle::Cluster(cluster.connection().await?),
        })
    }

    /// Runs `cmd` with the deadline; `None` on any failure.
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Option<T> {
        let call = async { cmd.query_async::<T>(&mut self.handle().await?).await };
        self.settle(tokio::time::timeout(CALL_TIMEOUT, call).await)
    }

    /// Runs a pipeline with the deadline; `None` on any failure.
    pub async fn pipeline<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> Option<T> {
        let call = async { pipe.query_async::<T>(&mut self.handle().await?).await };
        self.settle(tokio::time::timeout(CALL_TIMEOUT, call).await)
    }

    /// Runs a script with the deadline; `None` on any failure.
    pub async fn script<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Option<T> {
        let call = async {
            invocation
                .invoke_async::<T>(&mut self.handle().await?)
                .await
        };
        self.settle(tokio::time::timeout(CALL_TIMEOUT, call).await)
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

    /// Whether Redis answers a PING now (on a cluster: every node).
    pub async fn ping(&self) -> bool {
        self.query::<String>(&redis::cmd("PING")).await.is_some()
    }
}

/// `prefix{tag}key`, where the tag is the hex of the first 8 bytes of SHA-256(`group`): a
/// cluster puts every key of one group in one hash slot. Redis hashes the part between the
/// first `{` and the first `}` after it, so that part is ours whatever `group` and `key`
/// hold, as long as `prefix` has no brace (`REDIS_PREFIX` may not).
pub fn tagged_key(prefix: &str, group: &str, key: &str) -> String {
    let digest = Sha256::digest(group.as_bytes());
    let tag: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{{{tag}}}{key}")
}

#[cfg(test)]
mod tests {
    use redis::cluster_routing::Slot;

    use super::tagged_key;

    /// Identifiers that try to choose their own hash tag.
    const HOSTILE: [&str; 9] = [
        "",
        "{",
        "}",
        "{}",
        "}{",
        "{alice}",
        "a}b{c}d",
        "{{{x}}}",
        "users:{ll:alice}",
    ];

    #[test]
    fn the_keys_of_one_group_share_a_slot_whatever_the_group_holds() {
        for identifier in HOSTILE {
            let lock = tagged_key("users:", identifier, &format!("ll:{identifier}"));
            let count = tagged_key("users:", identifier, &format!("lf:{identifier}"));
            assert_eq!(
                Slot::for_key(&lock),
                Slot::for_key(&count),
                "{lock} and {count}"
            );
            assert!(lock.starts_with("users:{"), "{lock}");
            assert!(lock.ends_with(&format!("}}ll:{identifier}")), "{lock}");
        }
    }

    #[test]
    fn the_tag_is_the_hashed_group_alone() {
        let key = tagged_key("p:", "alice", "ll:alice");
        assert_eq!(key.len(), "p:{}ll:alice".len() + 16, "{key}");
        let tag = &key["p:{".len()..key.find('}').expect("a closing brace")];
        assert!(tag.chars().all(|c| c.is_ascii_hexdigit()), "{key}");
        assert_eq!(Slot::for_key(&key), Slot::for_key(format!("{{{tag}}}")));
        assert_ne!(
            tagged_key("p:", "alice", "x"),
            tagged_key("p:", "bob", "x"),
            "one tag per group"
        );
    }
}

//! Which Redis an origin under test uses — the test Redis server (`TEST_REDIS_URL`) or the test
//! Redis Cluster (`TEST_REDIS_CLUSTER_URLS`, three masters started by `scripts/test.sh`) — and
//! reading what it keeps there.
//!
//! [`redis_test!`](crate::helpers::redis_test) runs one test body on both: as `<name>::server`
//! and `<name>::cluster`. Without `TEST_REDIS_CLUSTER_URLS` the cluster variant fails, saying
//! how to start the cluster; it never passes without one.

use std::collections::HashMap;

use super::TestApp;
use crate::testdb::{redis_connection, redis_keys, redis_url};

/// Where an origin keeps its cache and limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisKind {
    /// The test Redis server, as `REDIS_URL` (the default test configuration).
    Server,
    /// The test Redis Cluster, as `REDIS_CLUSTER_URLS`.
    Cluster,
}

/// The seed nodes of the test Redis Cluster; panics, saying how to start one, when
/// `TEST_REDIS_CLUSTER_URLS` is unset.
pub fn test_cluster_urls() -> String {
    users_harness::keys::cluster_urls().unwrap_or_else(|| {
        panic!(
            "TEST_REDIS_CLUSTER_URLS is not set: this test needs the test Redis Cluster. \
             scripts/test.sh starts one; or run the tests under \
             `scripts/redis-cluster.sh cargo nextest run …`"
        )
    })
}

/// Points the configuration `vars` at the Redis of `kind`.
pub fn use_redis(vars: &mut HashMap<String, String>, kind: RedisKind) {
    match kind {
        RedisKind::Server => {
            vars.remove("REDIS_CLUSTER_URLS");
            vars.insert("REDIS_URL".into(), redis_url());
        }
        RedisKind::Cluster => {
            vars.remove("REDIS_URL");
            vars.insert("REDIS_CLUSTER_URLS".into(), test_cluster_urls());
        }
    }
}

/// A connection to the test Redis or the test Redis Cluster.
pub enum RedisConnection {
    Server(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl RedisConnection {
    /// Runs `cmd` (routed by its key on the cluster); panics on an error.
    pub async fn query<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> T {
        let answer = match self {
            Self::Server(conn) => cmd.query_async(conn).await,
            Self::Cluster(conn) => cmd.query_async(conn).await,
        };
        answer.unwrap_or_else(|e| panic!("{cmd:?} on the test Redis: {e}"))
    }
}

impl TestApp {
    /// The Redis this origin uses.
    pub fn redis_kind(&self) -> RedisKind {
        if self.vars.contains_key("REDIS_CLUSTER_URLS") {
            RedisKind::Cluster
        } else {
            RedisKind::Server
        }
    }

    /// A connection to the Redis (or Redis Cluster) this origin uses.
    pub async fn redis(&self) -> RedisConnection {
        match self.redis_kind() {
            RedisKind::Server => RedisConnection::Server(redis_connection().await),
            RedisKind::Cluster => {
                let seeds = test_cluster_urls();
                let client = redis::cluster::ClusterClient::new(seeds.split(','))
                    .unwrap_or_else(|e| panic!("TEST_REDIS_CLUSTER_URLS {seeds:?}: {e}"));
                let conn = client
                    .get_async_connection()
                    .await
                    .unwrap_or_else(|e| panic!("connect to the test Redis Cluster {seeds}: {e}"));
                RedisConnection::Cluster(conn)
            }
        }
    }

    /// Every key that starts with `prefix` on the Redis (or every master of the Redis
    /// Cluster) this origin uses.
    pub async fn redis_keys(&self, prefix: &str) -> Vec<String> {
        match self.redis_kind() {
            RedisKind::Server => redis_keys(&mut redis_connection().await, prefix).await,
            RedisKind::Cluster => users_harness::keys::cluster_keys(&test_cluster_urls(), prefix)
                .await
                .unwrap_or_else(|e| panic!("SCAN the test Redis Cluster: {e:#}")),
        }
    }
}

/// Two tests of the `async fn $name(kind: RedisKind)` beside it, on a multi-threaded runtime:
/// `$name::server` runs it on the test Redis server, `$name::cluster` on the test Redis
/// Cluster. Further arguments go to both `#[tokio::test(…)]` (`worker_threads = 4`).
///
/// ```ignore
/// async fn the_cache_hits(kind: RedisKind) {
///     let app = spawn_app_on(kind, &[]).await;
/// }
/// redis_test!(the_cache_hits);
/// ```
macro_rules! redis_test {
    ($name:ident $(, $($arg:tt)*)?) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread" $(, $($arg)*)?)]
            async fn server() {
                super::$name($crate::helpers::RedisKind::Server).await
            }

            #[tokio::test(flavor = "multi_thread" $(, $($arg)*)?)]
            async fn cluster() {
                super::$name($crate::helpers::RedisKind::Cluster).await
            }
        }
    };
}
pub(crate) use redis_test;

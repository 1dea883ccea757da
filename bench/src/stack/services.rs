//! The local PostgreSQL server and Redis, and what one run creates in them: connections,
//! throw-away databases and the run's Redis keys (from `users-harness`, which reads
//! `TEST_DATABASE_URL` and `TEST_REDIS_URL`), the Redis version for the report, and
//! [`Scratch`], the names of what a run owns (database, Redis prefix, data directory), removed
//! at the end, also after an error or Ctrl-C.

use std::path::PathBuf;

pub use users_harness::keys::{delete_prefix as delete_redis_keys, redis_url};
pub use users_harness::postgres::{connect, create_database, database_url, drop_database};

/// `redis_version` from `INFO server`.
pub async fn redis_version(url: &str) -> Option<String> {
    let client = redis::Client::open(url).ok()?;
    let mut conn = client.get_multiplexed_async_connection().await.ok()?;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await
        .ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .map(|v| v.trim().to_owned())
}

/// The names of what a run owns.
#[derive(Debug, Clone)]
pub struct Scratch {
    pub db: String,
    pub redis_prefix: String,
    pub data_dir: PathBuf,
}

/// How the removal went, for the caller to report (or not).
#[derive(Debug)]
pub struct Removal {
    pub database: anyhow::Result<()>,
    /// Keys deleted.
    pub redis_keys: anyhow::Result<usize>,
}

impl Scratch {
    /// Drops the database, deletes the Redis keys, then removes the data directory (whether it
    /// exists or not).
    pub async fn remove(&self) -> Removal {
        let database = drop_database(&self.db).await;
        let redis_keys = delete_redis_keys(&redis_url(), &self.redis_prefix).await;
        let _ = std::fs::remove_dir_all(&self.data_dir);
        Removal {
            database,
            redis_keys,
        }
    }
}

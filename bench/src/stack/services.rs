//! The local PostgreSQL server and Redis, and what one run creates in them: connections,
//! throw-away databases, the run's Redis keys, and [`Scratch`], the names of what a run owns
//! (database, Redis prefix, data directory), removed at the end, also after an error or Ctrl-C.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use tokio_postgres::{Client, NoTls};

/// The server, without a database name.
pub const PG_BASE: &str = "postgres://postgres@127.0.0.1:5432";
/// The Redis server every benchmark uses.
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The URL of database `db` on the server.
pub fn database_url(db: &str) -> String {
    format!("{PG_BASE}/{db}")
}

/// Connects to `db` and drives the connection on a task.
pub async fn connect(db: &str) -> anyhow::Result<Client> {
    let (client, conn) = tokio_postgres::connect(&database_url(db), NoTls)
        .await
        .with_context(|| format!("connect to PostgreSQL database {db} at {PG_BASE}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// Runs `sql` on the server's own `postgres` database; `what` says what it does, for errors.
async fn on_server(sql: &str, what: &str) -> anyhow::Result<()> {
    let admin = connect("postgres").await?;
    admin.batch_execute(sql).await.context(what.to_owned())?;
    Ok(())
}

/// Creates the empty database `name`.
pub async fn create_database(name: &str) -> anyhow::Result<()> {
    let sql = format!("CREATE DATABASE \"{name}\"");
    on_server(&sql, &format!("create database {name}")).await
}

/// Drops `name`, disconnecting whoever is still connected.
pub async fn drop_database(name: &str) -> anyhow::Result<()> {
    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
    on_server(&sql, &format!("drop database {name}")).await
}

/// Deletes every key under `prefix` (`SCAN` in batches, so a large keyspace never blocks Redis).
pub async fn delete_redis_keys(url: &str, prefix: &str) -> anyhow::Result<usize> {
    let client = redis::Client::open(url)?;
    let mut conn = tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    .context("connect to Redis")??;
    let pattern = format!("{}*", prefix.replace('*', "\\*").replace('?', "\\?"));
    let mut cursor: u64 = 0;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            let n: usize = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await?;
            deleted += n;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

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
        let redis_keys = delete_redis_keys(REDIS_URL, &self.redis_prefix).await;
        let _ = std::fs::remove_dir_all(&self.data_dir);
        Removal {
            database,
            redis_keys,
        }
    }
}

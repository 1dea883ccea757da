//! The PostgreSQL server of the tests and benchmarks: its URL (`TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432`, trust authentication), connections, creating and
//! dropping databases, and throw-away databases cloned from a template migrated once per
//! migration set.
//!
//! The template is named after a hash of `migrations/sql`, so a changed migration gets a new
//! template. Creating it happens under an advisory lock, as `<name>_tmp` renamed when complete,
//! so processes running in parallel (nextest runs each test in its own) never see a
//! half-migrated template.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use sha2::{Digest, Sha256};
use tokio_postgres::{Client, NoTls};
use uuid::Uuid;

/// The server when `TEST_DATABASE_URL` is unset.
pub const DEFAULT_BASE: &str = "postgres://postgres@127.0.0.1:5432";

/// Key of the advisory lock held while the template database is created.
const TEMPLATE_LOCK_KEY: i64 = 0x7573_6572_735f_7470; // "users_tp"

/// The server, without a database name: `TEST_DATABASE_URL` (a trailing `/` dropped), else
/// [`DEFAULT_BASE`].
pub fn base_url() -> String {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => url.trim_end_matches('/').to_owned(),
        _ => DEFAULT_BASE.to_owned(),
    }
}

/// The URL of database `db` on the server.
pub fn database_url(db: &str) -> String {
    format!("{}/{db}", base_url())
}

/// Connects to `db` and drives the connection on a task.
pub async fn connect(db: &str) -> anyhow::Result<Client> {
    let (client, conn) = tokio_postgres::connect(&database_url(db), NoTls)
        .await
        .with_context(|| format!("connect to PostgreSQL database {db} at {}", base_url()))?;
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

/// The directory of the SQL migrations.
fn migrations_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/sql")
}

/// `users_tpl_<first 12 hex digits of the SHA-256 of the migration files>`.
pub fn template_name() -> anyhow::Result<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(migrations_dir())
        .context("read migrations/sql")?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .context("read a migrations/sql entry")?;
    files.retain(|p| p.is_file());
    files.sort();
    let mut hasher = Sha256::new();
    for file in files {
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(std::fs::read(&file).context("read a migration")?);
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("users_tpl_{}", &hex[..12]))
}

async fn database_exists(client: &Client, name: &str) -> anyhow::Result<bool> {
    Ok(client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .context("look the template up")?
        .is_some())
}

/// Creates the migrated template database unless it exists; returns its name.
pub async fn ensure_template() -> anyhow::Result<String> {
    let name = template_name()?;
    let client = connect("postgres").await?;
    if database_exists(&client, &name).await? {
        return Ok(name);
    }
    client
        .execute("SELECT pg_advisory_lock($1)", &[&TEMPLATE_LOCK_KEY])
        .await
        .context("take the template lock")?;
    if !database_exists(&client, &name).await? {
        let tmp = format!("{name}_tmp");
        client
            .batch_execute(&format!(r#"DROP DATABASE IF EXISTS "{tmp}" WITH (FORCE)"#))
            .await
            .context("drop a leftover template")?;
        client
            .batch_execute(&format!(r#"CREATE DATABASE "{tmp}""#))
            .await
            .context("create the template")?;
        {
            let (mut tpl, connection) = tokio_postgres::connect(&database_url(&tmp), NoTls)
                .await
                .context("connect to the template")?;
            let conn_task = tokio::spawn(connection);
            users_migrations::run(&mut tpl)
                .await
                .context("migrate the template")?;
            drop(tpl);
            let _ = conn_task.await;
        }
        // The server may need a moment to see the session gone before it allows a rename.
        let mut attempt = 0;
        loop {
            match client
                .batch_execute(&format!(r#"ALTER DATABASE "{tmp}" RENAME TO "{name}""#))
                .await
            {
                Ok(()) => break,
                Err(_) if attempt < 50 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => bail!("rename the template: {e}"),
            }
        }
    }
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&TEMPLATE_LOCK_KEY])
        .await
        .context("release the template lock")?;
    Ok(name)
}

/// Creates a fresh database `<prefix><uuid>` from the migrated template; returns its name.
pub async fn clone_template(prefix: &str) -> anyhow::Result<String> {
    let template = ensure_template().await?;
    let name = format!("{prefix}{}", Uuid::new_v4().simple());
    on_server(
        &format!(r#"CREATE DATABASE "{name}" TEMPLATE "{template}""#),
        "create the database from the template",
    )
    .await?;
    Ok(name)
}

/// Removes a test's database, its Redis keys and its data directory when dropped, also when
/// the setup panics half-way. Dropping blocks on a runtime of its own on another thread, so it
/// works inside a tokio runtime too.
#[derive(Debug)]
pub struct Cleanup {
    pub db_name: String,
    pub data_dir: PathBuf,
    /// Every Redis key of the test starts with it (also those of replicas with a longer one).
    pub redis_prefix: String,
    /// The seed nodes of the Redis Cluster the test's keys live on, if it used one (they are
    /// deleted from the Redis server either way).
    pub redis_cluster: Option<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let db_name = self.db_name.clone();
        let data_dir = self.data_dir.clone();
        let redis_prefix = self.redis_prefix.clone();
        let redis_cluster = self.redis_cluster.clone();
        let dropper = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("build the drop runtime");
            rt.block_on(async move {
                // Redis may be cut off by a test or down: do not let that hang the cleanup.
                let _ = tokio::time::timeout(
                    Duration::from_secs(10),
                    crate::keys::delete_prefix(&crate::keys::redis_url(), &redis_prefix),
                )
                .await;
                if let Some(seeds) = redis_cluster {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(10),
                        crate::keys::delete_prefix_on_cluster(&seeds, &redis_prefix),
                    )
                    .await;
                }
                let _ = drop_database(&db_name).await;
            });
            let _ = std::fs::remove_dir_all(data_dir);
        });
        let _ = dropper.join();
    }
}

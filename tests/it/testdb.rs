//! Throw-away databases: a template migrated once per migration set, cloned per test; and the
//! per-test Redis key prefixes, whose keys are deleted with the database.
//!
//! The template is named after a hash of `migrations/sql`, so a changed migration gets a new
//! template. Creating it happens under an advisory lock, as `<name>_tmp` renamed when complete,
//! so test processes running in parallel (nextest runs each test in its own) never see a
//! half-migrated template.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio_postgres::NoTls;
use uuid::Uuid;

/// The server PostgreSQL runs on (trust authentication).
pub const PG_BASE: &str = "postgres://postgres@127.0.0.1:5432";

/// The Redis server of the tests (no persistence). Each test's keys live under its own prefix.
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Key of the advisory lock held while the template database is created.
const TEMPLATE_LOCK_KEY: i64 = 0x7573_6572_735f_7470; // "users_tp"

/// Creates a fresh database `users_test_<uuid>` from the template; returns its name.
pub async fn create_test_database() -> String {
    let template = ensure_template().await;
    let name = format!("users_test_{}", Uuid::new_v4().simple());
    let admin = connect("postgres").await;
    admin
        .batch_execute(&format!(
            r#"CREATE DATABASE "{name}" TEMPLATE "{template}""#
        ))
        .await
        .expect("create the test database from the template");
    name
}

/// Connects to database `name` on the test server.
pub async fn connect(name: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&format!("{PG_BASE}/{name}"), NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to database {name}: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// The directory of the SQL migrations.
fn migrations_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/sql")
}

/// `users_tpl_<first 12 hex digits of the SHA-256 of the migration files>`.
pub fn template_name() -> String {
    let mut files: Vec<PathBuf> = std::fs::read_dir(migrations_dir())
        .expect("read migrations/sql")
        .map(|e| e.expect("read a migrations/sql entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut hasher = Sha256::new();
    for file in files {
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(std::fs::read(&file).expect("read a migration"));
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("users_tpl_{}", &hex[..12])
}

async fn database_exists(client: &tokio_postgres::Client, name: &str) -> bool {
    client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .expect("look the template up")
        .is_some()
}

/// Creates the migrated template database unless it exists; returns its name.
pub async fn ensure_template() -> String {
    let name = template_name();
    let client = connect("postgres").await;
    if database_exists(&client, &name).await {
        return name;
    }
    client
        .execute("SELECT pg_advisory_lock($1)", &[&TEMPLATE_LOCK_KEY])
        .await
        .expect("take the template lock");
    if !database_exists(&client, &name).await {
        let tmp = format!("{name}_tmp");
        client
            .batch_execute(&format!(r#"DROP DATABASE IF EXISTS "{tmp}" WITH (FORCE)"#))
            .await
            .expect("drop a leftover template");
        client
            .batch_execute(&format!(r#"CREATE DATABASE "{tmp}""#))
            .await
            .expect("create the template");
        {
            let (mut tpl, connection) = tokio_postgres::connect(&format!("{PG_BASE}/{tmp}"), NoTls)
                .await
                .expect("connect to the template");
            let conn_task = tokio::spawn(connection);
            users_migrations::run(&mut tpl)
                .await
                .expect("migrate the template");
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
                Err(e) if attempt < 50 => {
                    attempt += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("rename the template: {e}"),
            }
        }
    }
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&TEMPLATE_LOCK_KEY])
        .await
        .expect("release the template lock");
    name
}

/// A connection to the test Redis.
pub async fn redis_connection() -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(REDIS_URL).expect("a valid Redis URL");
    tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    .expect("Redis answers within 5 s")
    .expect("connect to Redis at 127.0.0.1:6379")
}

/// `prefix` as a literal `SCAN MATCH` pattern followed by `*`.
fn prefix_pattern(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('*');
    pattern
}

/// Every key on the test Redis that starts with `prefix`.
pub async fn redis_keys(conn: &mut redis::aio::MultiplexedConnection, prefix: &str) -> Vec<String> {
    let pattern = prefix_pattern(prefix);
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .expect("SCAN the test Redis");
        keys.extend(batch);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

/// Deletes every key that starts with `prefix` from the test Redis.
async fn delete_redis_keys(prefix: &str) -> redis::RedisResult<()> {
    let client = redis::Client::open(REDIS_URL)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let keys = redis_keys(&mut conn, prefix).await;
    for chunk in keys.chunks(500) {
        let _: i64 = redis::cmd("DEL").arg(chunk).query_async(&mut conn).await?;
    }
    Ok(())
}

/// Removes a test database, its Redis keys and its data directory when dropped, also when
/// `spawn_app` panics half-way.
pub struct Cleanup {
    pub db_name: String,
    pub data_dir: PathBuf,
    /// Every Redis key of the test starts with it (also those of replicas with a longer one).
    pub redis_prefix: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let db_name = self.db_name.clone();
        let data_dir = self.data_dir.clone();
        let redis_prefix = self.redis_prefix.clone();
        // Dropping runs inside the test's runtime, which cannot be blocked on: use a thread
        // with a runtime of its own.
        let dropper = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("build the drop runtime");
            rt.block_on(async move {
                // Redis may be cut off by a test or down: do not let that hang the cleanup.
                let _ =
                    tokio::time::timeout(Duration::from_secs(10), delete_redis_keys(&redis_prefix))
                        .await;
                let Ok((client, connection)) =
                    tokio_postgres::connect(&format!("{PG_BASE}/postgres"), NoTls).await
                else {
                    return;
                };
                tokio::spawn(connection);
                let _ = client
                    .batch_execute(&format!(
                        r#"DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)"#
                    ))
                    .await;
            });
            let _ = std::fs::remove_dir_all(data_dir);
        });
        let _ = dropper.join();
    }
}

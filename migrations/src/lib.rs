//! The database schema: SQL migrations under `sql/`, embedded at build time with refinery.
//!
//! [`run`] applies whatever is pending. It holds a PostgreSQL advisory lock while it does, so
//! several origin replicas starting at once apply each migration exactly once.

use refinery::embed_migrations;
use tokio_postgres::Client;

embed_migrations!("sql");

/// Arbitrary constant key of the advisory lock held while migrating.
const MIGRATION_LOCK_KEY: i64 = 0x7573_6572_735f_6d67; // "users_mg"

/// Why migrating failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("database error while migrating: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] refinery::Error),
}

/// Applies pending migrations and returns the names of those applied now.
pub async fn run(client: &mut Client) -> Result<Vec<String>, MigrateError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    let result = migrations::runner().run_async(client).await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    let report = result?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|m| m.to_string())
        .collect())
}

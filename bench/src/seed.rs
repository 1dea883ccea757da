//! The benchmark's data: a fresh database (see [`crate::stack::services`]) migrated and seeded
//! with SQL.
//!
//! Seeded user `i` (1-based) is `user0000001`… with email `user0000001@bench.test`, created at
//! [`BASE_UNIX_S`] + `i` seconds, and an id that is a UUIDv7 of that instant whose low bits are
//! `i`, so ids follow `created_at` order and the bench can compute any seeded id without asking
//! the database ([`seeded_id`]). Every seeded user has the same Argon2id hash of
//! [`SEED_PASSWORD`] and the `user` role.

use std::time::Instant;

use anyhow::{Context as _, bail};
use tokio_postgres::Client;
use uuid::Uuid;

use crate::stack::services::connect;

/// The password of every seeded user.
pub const SEED_PASSWORD: &str = "seeded-bench-password-amber-glacier-thimble";
/// `created_at` of seeded user 0 (2025-01-01T00:00:00Z); user `i` is `i` seconds later.
pub const BASE_UNIX_S: u64 = 1_735_689_600;

/// The id of seeded user `i` (1-based): UUIDv7 layout, 48-bit unix ms, then `7000`, the variant
/// nibble `8` and `i` in the low 60 bits. The SQL in [`seed`] builds the same value.
pub fn seeded_id(i: u64) -> Uuid {
    let ms = u128::from((BASE_UNIX_S + i) * 1000);
    Uuid::from_u128((ms << 80) | (0x7000_u128 << 64) | (0x8_u128 << 60) | u128::from(i))
}

/// The username of seeded user `i`.
pub fn seeded_username(i: u64) -> String {
    format!("user{i:07}")
}

/// What seeding did and how long each step took.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SeedReport {
    pub users: u64,
    pub migrate_s: f64,
    pub insert_users_s: f64,
    pub insert_roles_s: f64,
    pub create_indexes_s: f64,
    pub vacuum_analyze_s: f64,
    pub total_s: f64,
    pub table_size_mb: f64,
    pub indexes_size_mb: f64,
}

fn secs(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}

/// Migrates `db` and seeds `n` users with `hash`. Secondary indexes are dropped for the bulk
/// load and recreated from their own definitions afterwards, so the schema ends exactly as the
/// migrations left it; foreign-key triggers are skipped for the load (the rows are consistent by
/// construction).
pub async fn seed(db: &str, n: u64, hash: &str) -> anyhow::Result<SeedReport> {
    let total = Instant::now();
    let mut client = connect(db).await?;
    let t = Instant::now();
    users_migrations::run(&mut client)
        .await
        .context("apply the migrations")?;
    let migrate_s = secs(t);

    client
        .batch_execute(
            "SET maintenance_work_mem = '512MB'; SET synchronous_commit = off; \
             SET session_replication_role = replica;",
        )
        .await?;
    let indexes: Vec<(String, String)> = client
        .query(
            "SELECT c.relname::text, pg_get_indexdef(i.indexrelid) FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indexrelid \
             WHERE i.indrelid IN ('users'::regclass, 'user_roles'::regclass) \
             AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)",
            &[],
        )
        .await?
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (name, _) in &indexes {
        client
            .batch_execute(&format!("DROP INDEX \"{name}\""))
            .await?;
    }

    let t = Instant::now();
    let n_i64 = i64::try_from(n)?;
    let base = i64::try_from(BASE_UNIX_S)?;
    let inserted = client
        .execute(
            "INSERT INTO users (id, username, email, display_name, password_hash, is_active, \
                                created_at, updated_at) \
             SELECT (lpad(to_hex(($3::bigint + g) * 1000), 12, '0') || '70008' \
                     || lpad(to_hex(g), 15, '0'))::uuid, \
                    'user' || lpad(g::text, 7, '0'), \
                    'user' || lpad(g::text, 7, '0') || '@bench.test', \
                    'Bench User ' || g, \
                    $1, true, to_timestamp($3::bigint + g), to_timestamp($3::bigint + g) \
             FROM generate_series(1::bigint, $2::bigint) AS g",
            &[&hash, &n_i64, &base],
        )
        .await
        .context("insert the users")?;
    if inserted != n {
        bail!("inserted {inserted} users, expected {n}");
    }
    let insert_users_s = secs(t);
    let t = Instant::now();
    client
        .execute(
            "INSERT INTO user_roles (user_id, role_name, granted_at) \
             SELECT id, 'user', created_at FROM users",
            &[],
        )
        .await
        .context("grant the user role")?;
    let insert_roles_s = secs(t);

    let t = Instant::now();
    for (name, def) in &indexes {
        client
            .batch_execute(def)
            .await
            .with_context(|| format!("recreate index {name}"))?;
    }
    let create_indexes_s = secs(t);

    let t = Instant::now();
    client
        .batch_execute("SET session_replication_role = origin")
        .await?;
    // Its own statement: VACUUM refuses to run in the implicit transaction of a multi-statement
    // query.
    client
        .batch_execute("VACUUM (ANALYZE) users, user_roles")
        .await
        .context("vacuum and analyze")?;
    let vacuum_analyze_s = secs(t);

    for (i, name) in [(1, seeded_username(1)), (n, seeded_username(n))] {
        let row = client
            .query_one("SELECT id FROM users WHERE username = $1", &[&name])
            .await?;
        let id: Uuid = row.get(0);
        if id != seeded_id(i) {
            bail!(
                "seeded id of {name} is {id}, the bench computes {}",
                seeded_id(i)
            );
        }
    }
    let sizes = client
        .query_one(
            "SELECT pg_table_size('users')::float8 / 1048576, \
                    pg_indexes_size('users')::float8 / 1048576",
            &[],
        )
        .await?;
    Ok(SeedReport {
        users: n,
        migrate_s,
        insert_users_s,
        insert_roles_s,
        create_indexes_s,
        vacuum_analyze_s,
        total_s: secs(total),
        table_size_mb: sizes.get(0),
        indexes_size_mb: sizes.get(1),
    })
}

/// The cursor key (`created_at` in µs) and id of the row at 0-based `offset` in
/// `(created_at, id)` order.
pub async fn row_at(client: &Client, offset: i64) -> anyhow::Result<(i64, Uuid)> {
    let row = client
        .query_one(
            "SELECT (EXTRACT(EPOCH FROM created_at) * 1000000)::bigint, id FROM users \
             ORDER BY created_at, id OFFSET $1 LIMIT 1",
            &[&offset],
        )
        .await
        .with_context(|| format!("read the row at offset {offset}"))?;
    Ok((row.get(0), row.get(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_ids_follow_the_uuidv7_layout_and_creation_order() {
        let first = seeded_id(1);
        assert_eq!(first.get_version_num(), 7);
        assert_eq!(first.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(first.as_u128() & ((1 << 60) - 1), 1);
        assert!(seeded_id(1) < seeded_id(2) && seeded_id(2) < seeded_id(1_000_000));
        assert_eq!(seeded_username(42), "user0000042");
    }
}

//! Moving in from the seed's design (SPEC §10, `users-origin import --from-seed-db URL`): a
//! PostgreSQL database with tables `users` (integer `id`, `email`, passlib's bcrypt in
//! `hashed_password`; `username`, `full_name`, `is_active`, `created_at`, `email_verified` or
//! `is_verified` when it has them), `roles` (`id`, `name`) and `user_roles` (`user_id`,
//! `role_id`).
//!
//! The seed is read from one read-only snapshot, a thousand users at a time, each batch
//! imported as `POST /admin/users/import` would ([`super::write_rows`]) in [`Mode::Sync`]:
//! accounts are matched by e-mail, `external_id` is the seed's id, and a rerun changes only
//! what changed there. Roles the seed has and this server lacks are created with no
//! permissions; every account also has `user`.

use std::collections::{BTreeMap, BTreeSet};

use indicatif::ProgressBar;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio_postgres::{Client, IsolationLevel, NoTls};
use users_core::fields::RoleName;
use users_core::model::RoleView;
use users_core::perms::{Permission, USER_ROLE};
use users_core::problem::FieldProblem;

use super::{Actor, ImportError, Input, Mode, Outcome, Row, Summary, prepare, write_rows};
use crate::db::{self, audit::Ctx};
use crate::state::AppState;
use crate::write::Write;

/// Users read and imported per transaction.
const BATCH: i64 = 1000;

/// Why the seed could not be imported (nothing of a failed batch is written).
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("--from-seed-db: not a PostgreSQL URL ({0})")]
    Url(String),
    #[error("cannot connect to the seed database: {0}")]
    Connect(String),
    #[error("the seed database does not have the seed's tables: {0}")]
    Schema(String),
    #[error("reading the seed database failed: {0}")]
    Read(String),
    #[error("writing to DATABASE_URL failed: {0}")]
    Write(String),
}

/// An error of PostgreSQL with what the server said.
fn said(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    }
}

impl From<tokio_postgres::Error> for SeedError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Write(said(&e))
    }
}

impl From<deadpool_postgres::PoolError> for SeedError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Self::Write(e.to_string())
    }
}

impl From<ImportError> for SeedError {
    fn from(e: ImportError) -> Self {
        match e {
            ImportError::Query(e) => e.into(),
            ImportError::Hash(e) => Self::Write(e.to_string()),
        }
    }
}

fn read(e: tokio_postgres::Error) -> SeedError {
    SeedError::Read(said(&e))
}

/// The seed database's connection settings, from `url`.
pub fn parse_url(url: &str) -> Result<tokio_postgres::Config, SeedError> {
    url.parse()
        .map_err(|e: tokio_postgres::Error| SeedError::Url(e.to_string()))
}

/// What an import from the seed did.
#[derive(Debug, Default)]
pub struct Report {
    /// Counted over all users (in a sync, `skipped` are users that had not changed).
    pub summary: Summary,
    /// The users that failed: the seed's id and why.
    pub failures: Vec<(usize, Vec<FieldProblem>)>,
    /// The roles created here (with no permissions).
    pub roles_created: Vec<String>,
    /// The seed's roles that could not be taken, and why: their holders came without them.
    pub roles_refused: Vec<(String, String)>,
}

/// The optional columns of the seed's `users` that this database has.
#[derive(Debug, Default)]
struct Columns {
    username: bool,
    full_name: bool,
    is_active: bool,
    created_at: bool,
    /// `email_verified` or `is_verified`.
    verified: Option<&'static str>,
}

/// Reads the seed database `seed` and imports it into `state`'s database; `progress` counts
/// the users. A dry run reads and checks everything and writes nothing.
pub async fn run(
    state: &AppState,
    seed: &tokio_postgres::Config,
    dry_run: bool,
    progress: &ProgressBar,
) -> Result<Report, SeedError> {
    let (mut client, connection) = seed
        .connect(NoTls)
        .await
        .map_err(|e| SeedError::Connect(said(&e)))?;
    let connection = tokio::spawn(connection);
    let result = import(state, &mut client, dry_run, progress).await;
    drop(client);
    let _ = connection.await;
    result
}

async fn import(
    state: &AppState,
    seed: &mut Client,
    dry_run: bool,
    progress: &ProgressBar,
) -> Result<Report, SeedError> {
    let columns = columns(seed).await?;
    // A `timestamp` without a zone is read as UTC.
    seed.batch_execute("SET TIME ZONE 'UTC'")
        .await
        .map_err(read)?;
    let snapshot = seed
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(read)?;
    let total: i64 = snapshot
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .map_err(read)?
        .get(0);
    progress.set_length(u64::try_from(total).unwrap_or(0));

    let mut report = Report::default();
    let names: Vec<String> = snapshot
        .query("SELECT name::text FROM roles ORDER BY 1", &[])
        .await
        .map_err(read)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    // The seed's role names as this server spells them.
    let mut renamed = BTreeMap::new();
    for name in names {
        match RoleName::parse(&name.to_ascii_lowercase()) {
            Ok(ours) => {
                renamed.insert(name, ours.as_str().to_owned());
            }
            Err(e) => report.roles_refused.push((name, e.to_string())),
        }
    }
    let theirs: BTreeSet<String> = renamed.values().cloned().collect();
    let mode = Mode::Sync(theirs.clone());
    let perms: BTreeSet<Permission> = Permission::ALL.into_iter().collect();
    let ctx = Ctx {
        request_id: None,
        ip: None,
    };
    let actor = Actor {
        id: None,
        perms: &perms,
        ctx: &ctx,
    };

    let sql = select(&columns);
    let mut after = i64::MIN;
    loop {
        let rows = snapshot
            .query(&sql, &[&after, &BATCH])
            .await
            .map_err(read)?;
        let mut inputs = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: i64 = r.get("id");
            after = id;
            inputs.push(input(id, r, &renamed));
        }
        let count = inputs.len();
        let prepared = prepare(state, inputs, dry_run).await?;
        let mut client = state.db.get().await?;
        let mut write = Write::begin(&mut client, &state.cache).await?;
        let created = ensure_roles(&write.tx, &theirs).await?;
        if report.roles_created.is_empty() {
            report.roles_created = created;
        }
        let (lines, summary) = if count == 0 {
            (Vec::new(), Summary::default())
        } else {
            write_rows(&mut write, actor, prepared, &mode, dry_run).await?
        };
        if dry_run {
            drop(write);
        } else {
            write.commit().await?;
        }
        add(&mut report.summary, &summary);
        report.failures.extend(
            lines
                .into_iter()
                .filter(|l| l.outcome == Outcome::Failed)
                .map(|l| (l.line, l.errors)),
        );
        progress.inc(u64::try_from(count).unwrap_or(0));
        if i64::try_from(count).unwrap_or(0) < BATCH {
            break;
        }
    }
    report.summary.dry_run = dry_run;
    state.cache.flush_pending().await;
    Ok(report)
}

/// Which of the optional columns the seed's `users` has; an error naming what is missing
/// when it is not of the seed's design.
async fn columns(seed: &Client) -> Result<Columns, SeedError> {
    let rows = seed
        .query(
            "SELECT table_name::text, column_name::text, data_type::text \
             FROM information_schema.columns \
             WHERE table_schema = current_schema() \
               AND table_name IN ('users', 'roles', 'user_roles')",
            &[],
        )
        .await
        .map_err(read)?;
    let mut tables: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for r in &rows {
        tables
            .entry(r.get(0))
            .or_default()
            .insert(r.get(1), r.get(2));
    }
    let required = [
        ("users", &["id", "email", "hashed_password"][..]),
        ("roles", &["id", "name"][..]),
        ("user_roles", &["user_id", "role_id"][..]),
    ];
    let mut missing = Vec::new();
    for (table, wanted) in required {
        let Some(have) = tables.get(table) else {
            missing.push(format!("no table {table}"));
            continue;
        };
        let absent: Vec<&str> = wanted
            .iter()
            .copied()
            .filter(|c| !have.contains_key(*c))
            .collect();
        if !absent.is_empty() {
            missing.push(format!("{table} has no column {}", absent.join(", ")));
        }
    }
    if !missing.is_empty() {
        return Err(SeedError::Schema(missing.join("; ")));
    }
    let users = &tables["users"];
    let id_type = users["id"].as_str();
    if !matches!(id_type, "integer" | "bigint" | "smallint") {
        return Err(SeedError::Schema(format!(
            "users.id is {id_type}, not an integer id"
        )));
    }
    let has = |c: &str| users.contains_key(c);
    Ok(Columns {
        username: has("username"),
        full_name: has("full_name"),
        is_active: has("is_active"),
        created_at: has("created_at"),
        verified: ["email_verified", "is_verified"]
            .into_iter()
            .find(|c| has(c)),
    })
}

/// The query of a batch: the users after `$1` in id order, at most `$2`, with their roles.
fn select(c: &Columns) -> String {
    let or = |present: bool, expr: &str, default: &str| {
        if present {
            expr.to_owned()
        } else {
            default.to_owned()
        }
    };
    format!(
        "SELECT u.id::bigint AS id, u.email::text AS email, \
             u.hashed_password::text AS hashed_password, \
             {} AS username, {} AS full_name, {} AS is_active, {} AS created_at, \
             {} AS verified, \
             ARRAY(SELECT r.name::text FROM user_roles ur JOIN roles r ON r.id = ur.role_id \
                   WHERE ur.user_id = u.id ORDER BY 1) AS roles \
         FROM users u WHERE u.id > $1::bigint ORDER BY u.id LIMIT $2",
        or(c.username, "u.username::text", "NULL::text"),
        or(c.full_name, "u.full_name::text", "NULL::text"),
        or(c.is_active, "COALESCE(u.is_active, true)", "true"),
        or(
            c.created_at,
            "u.created_at::timestamptz",
            "NULL::timestamptz"
        ),
        c.verified.map_or_else(
            || "false".to_owned(),
            |col| format!("COALESCE(u.{col}, false)")
        ),
    )
}

/// One seed user as an import row, numbered by its id.
fn input(id: i64, r: &tokio_postgres::Row, renamed: &BTreeMap<String, String>) -> Input {
    let line = usize::try_from(id).unwrap_or(0);
    let email: Option<String> = r.get("email");
    let username: Option<String> = r.get("username");
    let created_at: Option<OffsetDateTime> = r.get("created_at");
    let seed_roles: Vec<String> = r.get("roles");
    let mut roles: BTreeSet<String> = seed_roles
        .iter()
        .filter_map(|name| renamed.get(name).cloned())
        .collect();
    roles.insert(USER_ROLE.to_owned());
    let username = username.or_else(|| email.as_deref().map(|e| username_of(e, id)));
    let row = Row {
        username,
        email,
        display_name: r
            .get::<_, Option<String>>("full_name")
            .filter(|n| !n.trim().is_empty()),
        roles: Some(roles.into_iter().collect()),
        is_active: Some(r.get("is_active")),
        email_verified: Some(r.get("verified")),
        created_at: created_at.and_then(|t| t.format(&Rfc3339).ok()),
        external_id: Some(id.to_string()),
        password_hash: r.get("hashed_password"),
        ..Row::default()
    };
    (line, Ok(row))
}

/// A username for a seed without usernames: the e-mail's local part in this server's
/// alphabet (`[a-z0-9_.-]`, 3–32), the seed's id appended when it is too short.
fn username_of(email: &str, id: i64) -> String {
    let local = email.split('@').next().unwrap_or_default();
    let mut name: String = local
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(32)
        .collect();
    if name.chars().count() < 3 {
        name = format!("{name}_{id}").chars().take(32).collect();
    }
    name
}

/// Creates the roles of `names` that this database lacks, with no permissions; their names.
async fn ensure_roles(
    tx: &impl db::GenericClient,
    names: &BTreeSet<String>,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let wanted: Vec<String> = names.iter().cloned().collect();
    let have: BTreeSet<String> = db::roles::get_many(tx, &wanted)
        .await?
        .into_iter()
        .map(|r| r.name)
        .collect();
    let mut created = Vec::new();
    for name in wanted.into_iter().filter(|n| !have.contains(n)) {
        let role = RoleView {
            name: name.clone(),
            description: "imported from the seed database".into(),
            permissions: Vec::new(),
            builtin: false,
        };
        db::roles::insert(tx, &role).await?;
        created.push(name);
    }
    Ok(created)
}

fn add(total: &mut Summary, part: &Summary) {
    total.rows += part.rows;
    total.created += part.created;
    total.updated += part.updated;
    total.skipped += part.skipped;
    total.failed += part.failed;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_username_is_made_from_the_address_in_this_alphabet() {
        assert_eq!(username_of("Ann.Lee+x@example.com", 7), "ann.lee_x");
        assert_eq!(username_of("a@example.com", 42), "a_42");
        let long = format!("{}@example.com", "b".repeat(40));
        assert_eq!(username_of(&long, 1).len(), 32);
    }

    #[test]
    fn a_seed_without_the_optional_columns_reads_defaults() {
        let sql = select(&Columns::default());
        assert!(sql.contains("NULL::text AS username"), "{sql}");
        assert!(sql.contains("true AS is_active"), "{sql}");
        let sql = select(&Columns {
            verified: Some("is_verified"),
            ..Columns::default()
        });
        assert!(
            sql.contains("COALESCE(u.is_verified, false) AS verified"),
            "{sql}"
        );
    }
}

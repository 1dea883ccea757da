//! Importing accounts (SPEC §10), with no HTTP in it: rows as another system had them, each
//! validated on its own (a bad row fails only itself), hashes taken as they are (bounded, see
//! [`crate::legacy_hash`]), plaintext passwords checked by the policy and hashed on the pool,
//! then written in one transaction with a savepoint per row.
//!
//! `mode=insert` skips an address that has an account; `mode=upsert` brings that account up
//! to the row (a changed password, active flag or role set ends its sessions). A dry run does
//! everything but hashing and rolls back.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use users_core::fields::{DisplayName, Email, Username};
use users_core::password::{self, Identity};
use users_core::perms::{Permission, USER_ROLE};
use users_core::problem::FieldProblem;
use users_core::text;
use uuid::Uuid;

use crate::accounts::revoke_sessions;
use crate::db::{self, audit::Ctx, audit::Event, imports::Imported};
use crate::fields::Check;
use crate::hashing::HashError;
use crate::legacy_hash;
use crate::state::AppState;
use crate::write::Write;

/// Most rows in one request.
pub const ROWS_MAX: usize = 1000;
/// Most rows of one request with a plaintext `password` (each costs a hash).
pub const PASSWORDS_MAX: usize = 100;
/// Longest `external_id`.
pub const EXTERNAL_ID_MAX: usize = 255;

/// One row: an account as another system had it.
#[derive(Debug, Default, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Row {
    /// Ignored (the id an export gives each account): an account keeps, or gets, its own.
    #[schema(value_type = Option<String>)]
    pub id: Option<serde_json::Value>,
    #[schema(pattern = "^[A-Za-z0-9_.-]{3,32}$")]
    pub username: Option<String>,
    #[schema(format = Email, max_length = 254)]
    pub email: Option<String>,
    #[schema(max_length = 100)]
    pub display_name: Option<String>,
    /// Default `["user"]`; every role must exist and be grantable by the importer.
    pub roles: Option<Vec<String>>,
    /// Default `true`.
    pub is_active: Option<bool>,
    /// Default `false`.
    pub email_verified: Option<bool>,
    /// RFC 3339; on insert only (default: now).
    #[schema(format = DateTime)]
    pub created_at: Option<String>,
    /// The account's id in the system it comes from (unique).
    #[schema(max_length = 255)]
    pub external_id: Option<String>,
    /// A hash in a supported format (taken as it is, within the cost bounds); or `password`.
    pub password_hash: Option<String>,
    /// A plaintext password (the password policy applies; at most 100 rows per request).
    #[schema(min_length = 15, max_length = 128)]
    pub password: Option<String>,
}

/// What a row does to an account that exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// It is left as it is (`skipped`).
    Insert,
    /// It is brought up to the row (`updated`).
    Upsert,
}

/// What became of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Created,
    Updated,
    Skipped,
    Failed,
}

/// The report line of a row.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Line {
    /// The row's line in the body (NDJSON) or its position in the array, from 1.
    pub line: usize,
    pub outcome: Outcome,
    /// The account (created, updated or skipped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    /// Why the row failed, field by field as in a `422`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldProblem>,
}

/// The counts of a whole import.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Summary {
    pub rows: usize,
    pub created: usize,
    pub updated: usize,
    pub skipped: usize,
    pub failed: usize,
    pub dry_run: bool,
}

/// A row as read from the body: its line, and the row or why it could not be read.
pub type Input = (usize, Result<Row, Vec<FieldProblem>>);

/// Who imports.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub id: Uuid,
    pub perms: &'a BTreeSet<Permission>,
    pub ctx: &'a Ctx,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Query(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Hash(#[from] HashError),
}

/// A valid row.
#[derive(Debug)]
pub struct Valid {
    username: Username,
    email: Email,
    display_name: Option<DisplayName>,
    roles: Vec<String>,
    is_active: bool,
    email_verified: bool,
    created_at: Option<OffsetDateTime>,
    external_id: Option<String>,
    /// The hash to store (`None`: a plaintext password not hashed yet, or a dry run).
    hash: Option<String>,
    password: Option<String>,
}

fn failed(line: usize, errors: Vec<FieldProblem>) -> Line {
    Line {
        line,
        outcome: Outcome::Failed,
        id: None,
        errors,
    }
}

/// Validates `row` alone.
fn validate(row: Row) -> Result<Valid, Vec<FieldProblem>> {
    let mut check = Check::default();
    let username = check
        .required("username", row.username.as_deref())
        .and_then(|u| check.field("username", Username::parse(u)));
    let email = check
        .required("email", row.email.as_deref())
        .and_then(|e| check.field("email", Email::parse(e)));
    let display_name = match row.display_name.as_deref() {
        Some(d) => check.field("display_name", DisplayName::parse(d)).map(Some),
        None => Some(None),
    };
    let created_at = match row.created_at.as_deref() {
        Some(t) => check
            .field(
                "created_at",
                OffsetDateTime::parse(t, &Rfc3339).map_err(|_| "must be an RFC 3339 date-time"),
            )
            .map(Some),
        None => Some(None),
    };
    if let Some(id) = &row.external_id
        && (id.is_empty() || id.len() > EXTERNAL_ID_MAX || text::storable(id).is_err())
    {
        check.fail(
            "external_id",
            format!("must be 1 to {EXTERNAL_ID_MAX} bytes of text"),
        );
    }
    let hash = match (&row.password_hash, &row.password) {
        (Some(_), Some(_)) => {
            check.fail(
                "password",
                "give either password_hash or password, not both",
            );
            None
        }
        (None, None) => {
            check.fail("password_hash", "password_hash or password is required");
            None
        }
        (Some(hash), None) => match legacy_hash::check(hash) {
            Ok(_) => Some(hash.clone()),
            Err(e) => {
                check.fail("password_hash", e);
                None
            }
        },
        (None, Some(password)) => {
            let identity = Identity {
                username: username.as_ref().map_or("", Username::as_str),
                email: email.as_ref().map_or("", Email::as_str),
                display_name: None,
            };
            check.field("password", password::check(password, identity));
            None
        }
    };
    let mut roles = row.roles.unwrap_or_else(|| vec![USER_ROLE.to_owned()]);
    roles.sort();
    roles.dedup();
    check.finish().map_err(|e| e.0)?;
    match (username, email, display_name, created_at) {
        (Some(username), Some(email), Some(display_name), Some(created_at)) => Ok(Valid {
            username,
            email,
            display_name,
            roles,
            is_active: row.is_active.unwrap_or(true),
            email_verified: row.email_verified.unwrap_or(false),
            created_at,
            external_id: row.external_id,
            hash,
            password: row.password,
        }),
        _ => Err(vec![FieldProblem::new("body", "is incomplete")]),
    }
}

/// Why `roles` cannot be granted by the importer, if they cannot: unknown roles, or roles
/// carrying permissions it does not hold.
fn role_problem(
    roles: &[String],
    known: &BTreeMap<String, Vec<Permission>>,
    held: &BTreeSet<Permission>,
) -> Option<FieldProblem> {
    for name in roles {
        match known.get(name) {
            None => return Some(FieldProblem::new("roles", format!("unknown role {name:?}"))),
            Some(perms) if perms.iter().any(|p| !held.contains(p)) => {
                return Some(FieldProblem::new(
                    "roles",
                    format!(
                        "you cannot grant the role {name:?}: it carries permissions you do not hold"
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    None
}

/// The field a unique violation of an import is about.
fn conflict_of(e: &tokio_postgres::Error) -> Option<FieldProblem> {
    let db = e.as_db_error()?;
    if *db.code() != tokio_postgres::error::SqlState::UNIQUE_VIOLATION {
        return None;
    }
    Some(match db.constraint() {
        Some("users_username_key") => FieldProblem::new("username", "is already taken"),
        Some("users_email_key") => FieldProblem::new("email", "is already registered"),
        Some("users_external_id_key") => {
            FieldProblem::new("external_id", "belongs to another account")
        }
        _ => FieldProblem::new("body", "conflicts with an existing account"),
    })
}

/// Validates `rows` and hashes their plaintext passwords (not in a dry run), before any
/// database work: the valid rows, and the report lines of the others.
pub async fn prepare(
    state: &AppState,
    rows: Vec<Input>,
    dry_run: bool,
) -> Result<(Vec<(usize, Valid)>, Vec<Line>), ImportError> {
    let mut valid = Vec::new();
    let mut lines = Vec::new();
    let mut passwords = 0;
    for (line, row) in rows {
        match row.and_then(validate) {
            Ok(v) if v.password.is_some() && passwords >= PASSWORDS_MAX => lines.push(failed(
                line,
                vec![FieldProblem::new(
                    "password",
                    format!("at most {PASSWORDS_MAX} rows of a request may carry a plaintext password; send password_hash"),
                )],
            )),
            Ok(v) => {
                passwords += usize::from(v.password.is_some());
                valid.push((line, v));
            }
            Err(errors) => lines.push(failed(line, errors)),
        }
    }
    if !dry_run {
        // A few at a time: the pool's queue stays open to logins.
        let width = (state.hasher.capacity() / 4).max(1);
        let passwords: Vec<Option<String>> =
            valid.iter().map(|(_, v)| v.password.clone()).collect();
        let hashes: Vec<Result<Option<String>, HashError>> = futures::stream::iter(passwords)
            .map(|password| hash_of(state, password))
            .buffered(width)
            .collect()
            .await;
        for ((_, v), hash) in valid.iter_mut().zip(hashes) {
            if let Some(hash) = hash? {
                v.hash = Some(hash);
            }
        }
    }
    Ok((valid, lines))
}

async fn hash_of(state: &AppState, password: Option<String>) -> Result<Option<String>, HashError> {
    match password {
        Some(p) => state.hasher.hash(p).await.map(Some),
        None => Ok(None),
    }
}

/// Writes the valid rows in `write`'s transaction, each under a savepoint; the report lines
/// (with those of `prepare`'s failures, in input order) and the summary. The caller commits,
/// or rolls back a dry run.
pub async fn write_rows(
    write: &mut Write<'_>,
    actor: Actor<'_>,
    (valid, mut lines): (Vec<(usize, Valid)>, Vec<Line>),
    mode: Mode,
    dry_run: bool,
) -> Result<(Vec<Line>, Summary), ImportError> {
    let names: Vec<String> = valid
        .iter()
        .flat_map(|(_, v)| v.roles.iter().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let known: BTreeMap<String, Vec<Permission>> = db::roles::get_many(&write.tx, &names)
        .await?
        .into_iter()
        .map(|r| (r.name, r.permissions))
        .collect();
    for (line, v) in valid {
        if let Some(problem) = role_problem(&v.roles, &known, actor.perms) {
            lines.push(failed(line, vec![problem]));
            continue;
        }
        let sp = write.tx.savepoint("import_row").await?;
        let done = write_row(&sp, &v, actor, mode).await;
        match done {
            Ok((outcome, id, invalidate)) => {
                sp.commit().await?;
                if let Some(version) = invalidate {
                    write.invalidate(id, version);
                }
                lines.push(Line {
                    line,
                    outcome,
                    id: Some(id),
                    errors: Vec::new(),
                });
            }
            Err(e) => {
                let Some(problem) = conflict_of(&e) else {
                    return Err(e.into());
                };
                sp.rollback().await?;
                lines.push(failed(line, vec![problem]));
            }
        }
    }
    lines.sort_by_key(|l| l.line);
    let mut summary = Summary {
        rows: lines.len(),
        dry_run,
        ..Summary::default()
    };
    for l in &lines {
        match l.outcome {
            Outcome::Created => summary.created += 1,
            Outcome::Updated => summary.updated += 1,
            Outcome::Skipped => summary.skipped += 1,
            Outcome::Failed => summary.failed += 1,
        }
    }
    let event = Event::new("users.imported", Some(actor.id), None).with(
        json!({"created": summary.created, "updated": summary.updated,
                     "skipped": summary.skipped, "failed": summary.failed, "dry_run": dry_run}),
    );
    db::audit::record(&write.tx, actor.ctx, event).await?;
    Ok((lines, summary))
}

/// One row: its outcome, its account, and the version to invalidate the cache at.
async fn write_row(
    db: &impl db::GenericClient,
    v: &Valid,
    actor: Actor<'_>,
    mode: Mode,
) -> Result<(Outcome, Uuid, Option<i64>), tokio_postgres::Error> {
    let imported = Imported {
        username: v.username.as_str(),
        email: v.email.as_str(),
        display_name: v.display_name.as_ref().map(DisplayName::as_str),
        password_hash: v.hash.as_deref(),
        is_active: v.is_active,
        email_verified: v.email_verified,
        created_at: v.created_at,
        external_id: v.external_id.as_deref(),
    };
    let existing = db::users::get_by_email(db, v.email.as_str()).await?;
    let (outcome, id, invalidate) = match (existing, mode) {
        (Some(user), Mode::Insert) => return Ok((Outcome::Skipped, user.id, None)),
        (Some(user), Mode::Upsert) => {
            let Some((version, security)) = db::imports::update(db, user.id, &imported).await?
            else {
                return Ok((Outcome::Skipped, user.id, None));
            };
            let roles_changed = user.roles != v.roles;
            if roles_changed {
                db::users::set_roles(db, user.id, &v.roles).await?;
            }
            if security || roles_changed {
                revoke_sessions(db, user.id).await?;
            }
            (Outcome::Updated, user.id, Some(version))
        }
        (None, _) => {
            let id = db::imports::insert(db, &imported).await?;
            db::users::set_roles(db, id, &v.roles).await?;
            (Outcome::Created, id, None)
        }
    };
    let details = json!({"outcome": outcome, "format": v.hash.as_deref()
        .and_then(legacy_hash::Format::of).map(legacy_hash::Format::name)});
    let event = Event::new("user.imported", Some(actor.id), Some(id)).with(details);
    db::audit::record(db, actor.ctx, event).await?;
    Ok((outcome, id, invalidate))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(extra: serde_json::Value) -> Row {
        let mut base = json!({"username": "ann", "email": "ann@example.com",
                              "password_hash": "$2b$05$jM/bPVicsBDxCEFWeE6ChuUphkt10Vupc1UAxtmgxPcEYSvsLjlYC"});
        for (k, v) in extra.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    fn fields(r: Result<Valid, Vec<FieldProblem>>) -> Vec<String> {
        r.err()
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.field)
            .collect()
    }

    #[test]
    fn a_row_with_a_hash_in_bounds_is_valid() {
        let v = validate(row(json!({}))).unwrap();
        assert_eq!(v.roles, ["user"]);
        assert!(v.is_active && !v.email_verified && v.hash.is_some());
    }

    #[test]
    fn each_bad_field_is_named() {
        let over = "$2b$13$jM/bPVicsBDxCEFWeE6ChuUphkt10Vupc1UAxtmgxPcEYSvsLjlYC";
        assert_eq!(
            fields(validate(row(json!({"password_hash": over})))),
            ["password_hash"]
        );
        assert_eq!(
            fields(validate(row(json!({"password_hash": "plain"})))),
            ["password_hash"]
        );
        assert_eq!(
            fields(validate(row(json!({"username": "a b", "email": "nope"})))),
            ["username", "email"]
        );
        assert_eq!(
            fields(validate(row(json!({"created_at": "yesterday"})))),
            ["created_at"]
        );
        assert_eq!(
            fields(validate(row(json!({"external_id": ""})))),
            ["external_id"]
        );
        assert_eq!(
            fields(validate(row(
                json!({"password": "correct horse battery staple"})
            ))),
            ["password"],
            "both a hash and a password"
        );
        let mut none = row(json!({}));
        none.password_hash = None;
        assert_eq!(fields(validate(none)), ["password_hash"]);
        let mut weak = row(json!({"password": "short"}));
        weak.password_hash = None;
        assert_eq!(fields(validate(weak)), ["password"]);
    }

    #[test]
    fn roles_must_exist_and_be_grantable() {
        let known = BTreeMap::from([
            ("user".to_owned(), vec![]),
            ("admin".to_owned(), vec![Permission::UsersDelete]),
        ]);
        let held = BTreeSet::from([Permission::UsersCreate]);
        assert!(role_problem(&["user".into()], &known, &held).is_none());
        assert!(role_problem(&["admin".into()], &known, &held).is_some());
        assert!(role_problem(&["ghost".into()], &known, &held).is_some());
    }
}

//! Importing accounts (SPEC §10), with no HTTP in it: rows as another system had them, each
//! validated on its own (a bad row fails only itself), hashes taken as they are (bounded, see
//! [`crate::legacy_hash`]), plaintext passwords checked by the policy and hashed on the pool,
//! then written in one transaction with a savepoint per row.
//!
//! `mode=insert` skips an address that has an account; `mode=upsert` brings that account up
//! to the row (a changed password, active flag or role set ends its sessions). A dry run does
//! everything but hashing and rolls back.

mod row;
pub mod seed;

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt as _;
use serde::Serialize;
use serde_json::json;
use users_core::fields::DisplayName;
use users_core::perms::Permission;
use users_core::problem::FieldProblem;
use uuid::Uuid;

pub use row::{EXTERNAL_ID_MAX, Row, Valid};
use row::{role_problem, validate};

use crate::accounts::revoke_sessions;
use crate::db::{self, audit::Ctx, audit::Event, imports::Imported, imports::Keep};
use crate::hashing::HashError;
use crate::legacy_hash;
use crate::state::AppState;
use crate::write::Write;

/// Most rows in one request.
pub const ROWS_MAX: usize = 1000;
/// Most rows of one request with a plaintext `password` (each costs a hash).
pub const PASSWORDS_MAX: usize = 100;

/// What a row does to an account that exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// It is left as it is (`skipped`).
    Insert,
    /// It is brought up to the row (`updated`; `skipped` when nothing differs).
    Upsert,
    /// A rerun of a migration from another system: as `Upsert`, but the account keeps the
    /// roles it has that are not among these (the roles the other system has: those are
    /// its to give and take), and its hash unless the other system's changed since the last
    /// import (a rehash at login, or a new password here, is not undone).
    Sync(BTreeSet<String>),
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
    /// `None`: the operator, from the command line.
    pub id: Option<Uuid>,
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

fn failed(line: usize, errors: Vec<FieldProblem>) -> Line {
    Line {
        line,
        outcome: Outcome::Failed,
        id: None,
        errors,
    }
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
    mode: &Mode,
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
    let event = Event::new("users.imported", actor.id, None).with(
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
    mode: &Mode,
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
        (Some(user), Mode::Upsert | Mode::Sync(_)) => {
            let roles = match mode {
                Mode::Sync(theirs) => kept_roles(&user.roles, &v.roles, theirs),
                _ => v.roles.clone(),
            };
            let roles_changed = sorted(&user.roles) != sorted(&roles);
            let keep = Keep {
                roles_changed,
                hash_unless_changed: matches!(mode, Mode::Sync(_)),
            };
            let Some((version, security)) =
                db::imports::update(db, user.id, &imported, keep).await?
            else {
                return Ok((Outcome::Skipped, user.id, None));
            };
            if roles_changed {
                db::users::set_roles(db, user.id, &roles).await?;
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
    let event = Event::new("user.imported", actor.id, Some(id)).with(details);
    db::audit::record(db, actor.ctx, event).await?;
    Ok((outcome, id, invalidate))
}

/// The roles of a synced account: the row's, and those it has here that the other system
/// does not manage.
fn kept_roles(here: &[String], row: &[String], theirs: &BTreeSet<String>) -> Vec<String> {
    let mut roles: BTreeSet<String> = here
        .iter()
        .filter(|r| !theirs.contains(*r))
        .cloned()
        .collect();
    roles.extend(row.iter().cloned());
    roles.into_iter().collect()
}

fn sorted(roles: &[String]) -> BTreeSet<&str> {
    roles.iter().map(String::as_str).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_sync_keeps_the_roles_the_other_system_does_not_manage() {
        let theirs: BTreeSet<String> = names(&["editor", "admin"]).into_iter().collect();
        // "auditor" was granted here; "admin" was taken away there.
        let kept = kept_roles(
            &names(&["admin", "auditor", "user"]),
            &names(&["editor", "user"]),
            &theirs,
        );
        assert_eq!(kept, names(&["auditor", "editor", "user"]));
    }
}

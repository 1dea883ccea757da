//! The `users` and `user_roles` tables.

use std::sync::LazyLock;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use users_core::cursor::{Cursor, CursorKey, Sort};
use users_core::model::{PendingConfirmations, UserView};
use uuid::Uuid;

use super::GenericClient;
use super::grants::{Grants, PERMS, grants_of, perms_without_mfa};

const COLUMNS: &str = "u.id, u.username, u.email, u.email_verified, u.pending_email, \
     u.pending_current_confirmed, u.pending_new_confirmed, u.display_name, u.is_active, \
     u.mfa_enabled, u.security_version, u.version, u.created_at, u.updated_at, \
     ARRAY(SELECT ur.role_name FROM user_roles ur WHERE ur.user_id = u.id ORDER BY ur.role_name) AS roles";

/// A user row (without the password hash).
#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub email_verified: bool,
    /// A change of address waiting for its confirmations, with which sides confirmed it
    /// (current, new).
    pub pending_email: Option<String>,
    pub pending_confirmed: (bool, bool),
    pub display_name: Option<String>,
    pub is_active: bool,
    pub mfa_enabled: bool,
    pub security_version: i64,
    pub version: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub roles: Vec<String>,
}

impl From<Row> for UserRow {
    fn from(r: Row) -> Self {
        Self {
            id: r.get("id"),
            username: r.get("username"),
            email: r.get("email"),
            email_verified: r.get("email_verified"),
            pending_email: r.get("pending_email"),
            pending_confirmed: (
                r.get("pending_current_confirmed"),
                r.get("pending_new_confirmed"),
            ),
            display_name: r.get("display_name"),
            is_active: r.get("is_active"),
            mfa_enabled: r.get("mfa_enabled"),
            security_version: r.get("security_version"),
            version: r.get("version"),
            created_at: r.get("created_at"),
            updated_at: r.get("updated_at"),
            roles: r.get("roles"),
        }
    }
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

impl UserRow {
    pub fn view(&self) -> UserView {
        UserView {
            id: self.id,
            username: self.username.clone(),
            email: self.email.clone(),
            email_verified: self.email_verified,
            pending_email: self.pending_email.clone(),
            pending_email_confirmations: self.pending_email.as_ref().map(|_| {
                PendingConfirmations {
                    current: self.pending_confirmed.0,
                    new: self.pending_confirmed.1,
                }
            }),
            display_name: self.display_name.clone(),
            roles: self.roles.clone(),
            is_active: self.is_active,
            mfa_enabled: self.mfa_enabled,
            created_at: rfc3339(self.created_at),
            updated_at: rfc3339(self.updated_at),
            version: self.version,
        }
    }
}

pub async fn get(
    db: &impl GenericClient,
    id: Uuid,
) -> Result<Option<UserRow>, tokio_postgres::Error> {
    static SQL: LazyLock<String> =
        LazyLock::new(|| format!("SELECT {COLUMNS} FROM users u WHERE u.id = $1"));
    let statement = db.prepare_cached(&SQL).await?;
    Ok(db.query_opt(&statement, &[&id]).await?.map(UserRow::from))
}

/// Locks the row for the rest of the transaction.
pub async fn get_for_update(
    db: &impl GenericClient,
    id: Uuid,
) -> Result<Option<UserRow>, tokio_postgres::Error> {
    let sql = format!("SELECT {COLUMNS} FROM users u WHERE u.id = $1 FOR UPDATE");
    Ok(db.query_opt(&sql, &[&id]).await?.map(UserRow::from))
}

/// An account found by a login identifier.
#[derive(Debug)]
pub struct Credentials {
    pub user: UserRow,
    pub password_hash: String,
    /// What its roles grant now, for the access token a successful login signs.
    pub grants: Grants,
}

/// A user with the password hash and permissions, found by username or email
/// (case-insensitively), in one round trip.
pub async fn get_by_login(
    db: &impl GenericClient,
    login: &str,
    mfa_roles: &[String],
) -> Result<Option<Credentials>, tokio_postgres::Error> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT {COLUMNS}, u.password_hash, {PERMS}, {} FROM users u \
             WHERE u.username = lower($1) OR lower(u.email) = lower($1) LIMIT 1",
            perms_without_mfa(2)
        )
    });
    let statement = db.prepare_cached(&SQL).await?;
    Ok(db
        .query_opt(&statement, &[&login, &mfa_roles])
        .await?
        .map(|r| {
            let password_hash: String = r.get("password_hash");
            let grants = grants_of(&r);
            Credentials {
                user: UserRow::from(r),
                password_hash,
                grants,
            }
        }))
}

pub async fn get_by_email(
    db: &impl GenericClient,
    email: &str,
) -> Result<Option<UserRow>, tokio_postgres::Error> {
    let sql = format!("SELECT {COLUMNS} FROM users u WHERE lower(u.email) = lower($1)");
    Ok(db.query_opt(&sql, &[&email]).await?.map(UserRow::from))
}

pub async fn password_hash(
    db: &impl GenericClient,
    id: Uuid,
) -> Result<Option<String>, tokio_postgres::Error> {
    Ok(db
        .query_opt("SELECT password_hash FROM users WHERE id = $1", &[&id])
        .await?
        .map(|r| r.get(0)))
}

/// A new account.
#[derive(Debug)]
pub struct NewUser<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub display_name: Option<&'a str>,
    pub password_hash: &'a str,
    pub is_active: bool,
}

pub async fn insert(
    db: &impl GenericClient,
    new: &NewUser<'_>,
) -> Result<Uuid, tokio_postgres::Error> {
    let id = Uuid::now_v7();
    db.execute(
        "INSERT INTO users (id, username, email, display_name, password_hash, is_active) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &id,
            &new.username,
            &new.email,
            &new.display_name,
            &new.password_hash,
            &new.is_active,
        ],
    )
    .await?;
    Ok(id)
}

/// Replaces the user's roles with `roles`.
pub async fn set_roles(
    db: &impl GenericClient,
    id: Uuid,
    roles: &[String],
) -> Result<(), tokio_postgres::Error> {
    db.execute(
        "DELETE FROM user_roles WHERE user_id = $1 AND NOT (role_name = ANY($2))",
        &[&id, &roles],
    )
    .await?;
    db.execute(
        "INSERT INTO user_roles (user_id, role_name) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
        &[&id, &roles],
    )
    .await?;
    Ok(())
}

/// The mutable fields of a user, as they should be after an update.
#[derive(Debug)]
pub struct Update<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub display_name: Option<&'a str>,
    pub is_active: bool,
    pub password_hash: Option<&'a str>,
}

pub async fn update(
    db: &impl GenericClient,
    id: Uuid,
    u: &Update<'_>,
) -> Result<(), tokio_postgres::Error> {
    db.execute(
        "UPDATE users SET username = $2, email = $3, display_name = $4, is_active = $5, \
         password_hash = COALESCE($6, password_hash), \
         version = version + 1, updated_at = now() WHERE id = $1",
        &[
            &id,
            &u.username,
            &u.email,
            &u.display_name,
            &u.is_active,
            &u.password_hash,
        ],
    )
    .await?;
    Ok(())
}

/// Marks a change that is not a column of `users` (roles): a new version.
pub async fn touch(db: &impl GenericClient, id: Uuid) -> Result<(), tokio_postgres::Error> {
    db.execute(
        "UPDATE users SET version = version + 1, updated_at = now() WHERE id = $1",
        &[&id],
    )
    .await?;
    Ok(())
}

/// Revokes every access token of the user (their `sv` becomes stale).
pub async fn bump_security(db: &impl GenericClient, id: Uuid) -> Result<(), tokio_postgres::Error> {
    db.execute(
        "UPDATE users SET security_version = security_version + 1 WHERE id = $1",
        &[&id],
    )
    .await?;
    Ok(())
}

/// How many accounts have a password hash that is not Argon2id with parameters `argon2`
/// (`m=…,t=…,p=…`, as the PHC string writes them).
pub async fn count_legacy_hashes(
    db: &impl GenericClient,
    argon2: &str,
) -> Result<i64, tokio_postgres::Error> {
    let row = db
        .query_one(
            "SELECT count(*) FROM users WHERE password_hash NOT LIKE '$argon2id$v=19$' || $1 || '$%'",
            &[&argon2],
        )
        .await?;
    Ok(row.get(0))
}

/// How many accounts there are, and of those whose hash is not Argon2id: each shape (the
/// hash without its salt and digest) with how many have it and one hash of that shape.
pub async fn hash_shapes(
    db: &impl GenericClient,
) -> Result<(i64, Vec<(i64, String)>), tokio_postgres::Error> {
    let all: i64 = db
        .query_one("SELECT count(*) FROM users", &[])
        .await?
        .get(0);
    let rows = db
        .query(
            "SELECT count(*), min(password_hash) FROM users \
             WHERE password_hash NOT LIKE '$argon2id$%' \
             GROUP BY regexp_replace(password_hash, \
                 '^(\\$2[aby]\\$[0-9]+\\$).*$|^(.*)\\$[^$]*\\$[^$]*$', '\\1\\2')",
            &[],
        )
        .await?;
    Ok((all, rows.iter().map(|r| (r.get(0), r.get(1))).collect()))
}

pub async fn set_password(
    db: &impl GenericClient,
    id: Uuid,
    hash: &str,
) -> Result<(), tokio_postgres::Error> {
    db.execute(
        "UPDATE users SET password_hash = $2 WHERE id = $1",
        &[&id, &hash],
    )
    .await?;
    Ok(())
}

/// Deletes the account with its roles, sessions and reset tokens (cascade), its queued mail,
/// and the identifiers typed in earlier failed logins against it.
pub async fn delete(
    db: &impl GenericClient,
    user: &UserRow,
) -> Result<bool, tokio_postgres::Error> {
    db.execute(
        "DELETE FROM mail_outbox WHERE lower(recipient) = lower($1)",
        &[&user.email],
    )
    .await?;
    db.execute(
        "UPDATE audit_log SET details = details - 'login' \
         WHERE details ? 'login' AND lower(details->>'login') IN (lower($1), lower($2))",
        &[&user.username, &user.email],
    )
    .await?;
    Ok(db
        .execute("DELETE FROM users WHERE id = $1", &[&user.id])
        .await?
        == 1)
}

/// Active holders of a role other than `except`.
pub async fn count_other_active_with_role(
    db: &impl GenericClient,
    role: &str,
    except: Uuid,
) -> Result<i64, tokio_postgres::Error> {
    let row = db
        .query_one(
            "SELECT count(*) FROM user_roles ur JOIN users u ON u.id = ur.user_id \
             WHERE ur.role_name = $1 AND u.is_active AND u.id <> $2",
            &[&role, &except],
        )
        .await?;
    Ok(row.get(0))
}

/// Filters of `GET /users`.
#[derive(Debug, Default)]
pub struct Filter {
    pub email: Option<String>,
    pub username: Option<String>,
    pub q: Option<String>,
    pub role: Option<String>,
    pub is_active: Option<bool>,
    pub created_after: Option<OffsetDateTime>,
    pub created_before: Option<OffsetDateTime>,
}

fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// One page of users in `sort` order, after `cursor`; returns up to `limit + 1` rows so the
/// caller knows whether another page follows.
pub async fn list(
    db: &impl GenericClient,
    filter: &Filter,
    sort: Sort,
    cursor: Option<&Cursor>,
    limit: i64,
) -> Result<Vec<UserRow>, tokio_postgres::Error> {
    let mut conds: Vec<String> = Vec::new();
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let mut push = |cond: &str,
                    value: Box<dyn ToSql + Sync + Send>,
                    params: &mut Vec<Box<dyn ToSql + Sync + Send>>| {
        params.push(value);
        conds.push(cond.replace('?', &format!("${}", params.len())));
    };
    if let Some(email) = &filter.email {
        push(
            "lower(u.email) = lower(?)",
            Box::new(email.clone()),
            &mut params,
        );
    }
    if let Some(username) = &filter.username {
        push(
            "u.username = lower(?)",
            Box::new(username.clone()),
            &mut params,
        );
    }
    if let Some(q) = &filter.q {
        let pattern = format!("%{}%", like_escape(&q.to_lowercase()));
        push(
            "(u.username || ' ' || lower(u.email) || ' ' || lower(coalesce(u.display_name, ''))) LIKE ?",
            Box::new(pattern),
            &mut params,
        );
    }
    if let Some(role) = &filter.role {
        push(
            "EXISTS (SELECT 1 FROM user_roles ur WHERE ur.user_id = u.id AND ur.role_name = ?)",
            Box::new(role.clone()),
            &mut params,
        );
    }
    if let Some(active) = filter.is_active {
        push("u.is_active = ?", Box::new(active), &mut params);
    }
    if let Some(after) = filter.created_after {
        push("u.created_at > ?", Box::new(after), &mut params);
    }
    if let Some(before) = filter.created_before {
        push("u.created_at < ?", Box::new(before), &mut params);
    }
    let (key_col, dir, cmp) = match sort {
        Sort::CreatedAsc => ("u.created_at", "ASC", ">"),
        Sort::CreatedDesc => ("u.created_at", "DESC", "<"),
        Sort::UsernameAsc => ("u.username", "ASC", ">"),
        Sort::UsernameDesc => ("u.username", "DESC", "<"),
    };
    if let Some(c) = cursor {
        match &c.key {
            CursorKey::Micros(us) => {
                let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(*us) * 1000)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH);
                params.push(Box::new(at));
            }
            CursorKey::Text(name) => params.push(Box::new(name.clone())),
        }
        params.push(Box::new(c.id));
        let n = params.len();
        conds.push(format!("({key_col}, u.id) {cmp} (${}, ${n})", n - 1));
    }
    params.push(Box::new(limit + 1));
    let where_clause = if conds.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conds.join(" AND "))
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM users u {where_clause} ORDER BY {key_col} {dir}, u.id {dir} LIMIT ${}",
        params.len()
    );
    let refs: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    Ok(db
        .query(&sql, &refs)
        .await?
        .into_iter()
        .map(UserRow::from)
        .collect())
}

/// The cursor that resumes after `row`.
pub fn cursor_after(row: &UserRow, sort: Sort) -> Cursor {
    let key = match sort {
        Sort::CreatedAsc | Sort::CreatedDesc => CursorKey::Micros(
            i64::try_from(row.created_at.unix_timestamp_nanos() / 1000).unwrap_or_default(),
        ),
        Sort::UsernameAsc | Sort::UsernameDesc => CursorKey::Text(row.username.clone()),
    };
    Cursor {
        sort,
        key,
        id: row.id,
    }
}

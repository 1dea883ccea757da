//! Account rules, with no HTTP in them: what a new account must satisfy, which roles an actor
//! may grant, the last-administrator guard, reading a user through the cache, and the one way
//! to revoke every session of a user.

use std::collections::BTreeSet;
use std::sync::Arc;

use users_core::fields::{DisplayName, Email, Username};
use users_core::model::UserView;
use users_core::password::{self, Identity};
use users_core::perms::{ADMIN_ROLE, Permission};
use uuid::Uuid;

use crate::db::{self, GenericClient, users::UserRow};
use crate::fields::{Check, Invalid};
use crate::hashing::HashError;
use crate::memo::ViewBytes;
use crate::state::AppState;

/// Why an account operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Field problems (`422`).
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The actor may not do this (`403`); the text says why.
    #[error("{0}")]
    Forbidden(String),
    /// The change would leave no active administrator (`409`).
    #[error("This is the last active administrator.")]
    LastAdmin,
    #[error(transparent)]
    Query(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error(transparent)]
    Hash(#[from] HashError),
    /// A view could not be written as JSON.
    #[error("encoding a view: {0}")]
    Encode(serde_json::Error),
}

/// Validated identity fields of a new account.
pub struct NewIdentity {
    pub username: Username,
    pub email: Email,
    pub display_name: Option<DisplayName>,
    pub password: String,
}

impl std::fmt::Debug for NewIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewIdentity")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Validates the fields every new account has, listing every problem at once.
pub fn validate_new(
    username: Option<&str>,
    email: Option<&str>,
    password: Option<&str>,
    display_name: Option<&str>,
) -> Result<NewIdentity, Invalid> {
    let mut check = Check::default();
    let new = collect_new(&mut check, username, email, password, display_name);
    check.finish()?;
    new.ok_or_else(|| Invalid::field("body", "is incomplete"))
}

impl NewIdentity {
    /// Inserts the account with `roles`; returns its id.
    pub async fn insert(
        &self,
        db: &impl GenericClient,
        password_hash: &str,
        is_active: bool,
        roles: &[String],
    ) -> Result<Uuid, tokio_postgres::Error> {
        let new = db::users::NewUser {
            username: self.username.as_str(),
            email: self.email.as_str(),
            display_name: self.display_name.as_ref().map(DisplayName::as_str),
            password_hash,
            is_active,
        };
        let id = db::users::insert(db, &new).await?;
        db::users::set_roles(db, id, roles).await?;
        Ok(id)
    }
}

fn collect_new(
    check: &mut Check,
    username: Option<&str>,
    email: Option<&str>,
    password: Option<&str>,
    display_name: Option<&str>,
) -> Option<NewIdentity> {
    let username = check
        .required("username", username)
        .and_then(|u| check.field("username", Username::parse(u)));
    let email = check
        .required("email", email)
        .and_then(|e| check.field("email", Email::parse(e)));
    let display_name = display_name.map(|d| check.field("display_name", DisplayName::parse(d)));
    let password = check.required("password", password);
    if let Some(password) = password {
        // Checked even when other fields are invalid, so one answer lists every problem.
        let identity = Identity {
            username: username.as_ref().map_or("", Username::as_str),
            email: email.as_ref().map_or("", Email::as_str),
            display_name: display_name
                .as_ref()
                .and_then(|d| d.as_ref().map(DisplayName::as_str)),
        };
        check.field("password", password::check(password, identity))?;
    }
    let (username, email, password) = (username?, email?, password?);
    let display_name = match display_name {
        Some(d) => Some(d?),
        None => None,
    };
    Some(NewIdentity {
        username,
        email,
        display_name,
        password: password.to_owned(),
    })
}

/// Refuses granting roles whose permissions the actor (holding `held`) does not hold itself;
/// returns the roles' names.
pub async fn check_grantable(
    db: &impl GenericClient,
    held: &BTreeSet<Permission>,
    roles: &[String],
) -> Result<Vec<String>, AccountError> {
    let found = db::roles::get_many(db, roles).await?;
    let mut check = Check::default();
    for name in roles {
        if !found.iter().any(|r| &r.name == name) {
            check.fail("roles", format!("unknown role {name:?}"));
        }
    }
    check.finish()?;
    if let Some(role) = found
        .iter()
        .find(|r| r.permissions.iter().any(|p| !held.contains(p)))
    {
        return Err(AccountError::Forbidden(format!(
            "You cannot grant the role {:?}: it carries permissions you do not hold.",
            role.name
        )));
    }
    Ok(found.into_iter().map(|r| r.name).collect())
}

/// Refuses a change that would leave no active administrator.
pub async fn guard_last_admin(db: &impl GenericClient, user: &UserRow) -> Result<(), AccountError> {
    let is_admin = user.roles.iter().any(|r| r == ADMIN_ROLE);
    if is_admin
        && user.is_active
        && db::users::count_other_active_with_role(db, ADMIN_ROLE, user.id).await? == 0
    {
        return Err(AccountError::LastAdmin);
    }
    Ok(())
}

/// Revokes every session of `user_id`: its outstanding access tokens (a new security version,
/// which the edges learn from the revocation feed), every refresh token and every session
/// row. Returns how many sessions were live.
pub async fn revoke_sessions(
    db: &impl GenericClient,
    user_id: Uuid,
) -> Result<u64, tokio_postgres::Error> {
    db::users::bump_security(db, user_id).await?;
    db::tokens::revoke_all_refresh(db, user_id).await?;
    db::sessions::close_all(db, user_id).await
}

/// The view of `id` as a response body. While the replica follows the change notifications:
/// from its memory, else from PostgreSQL (then remembered, and stored in the shared cache for
/// replicas that do not follow). Otherwise from the shared cache or PostgreSQL.
pub async fn cached_view(
    state: &AppState,
    id: Uuid,
) -> Result<Option<Arc<ViewBytes>>, AccountError> {
    let memo = &state.follower.memo;
    if let Some(bytes) = memo.view(id) {
        state.metrics.cache_hits.inc();
        state.metrics.memo.view_memory.inc();
        return Ok(Some(bytes));
    }
    state.metrics.memo.view_shared.inc();
    let view = match memo.ticket(id, None) {
        Some(ticket) => {
            state.metrics.cache_misses.inc();
            let client = state.db.get().await?;
            let Some(user) = db::users::get(&client, id).await? else {
                return Ok(None);
            };
            drop(client);
            let view = user.view();
            let bytes = view_bytes(&view)?;
            memo.fill_view(ticket, id, bytes.clone());
            state.cache.store(&view).await;
            return Ok(Some(Arc::new(bytes)));
        }
        None => shared_view(state, id).await?,
    };
    view.map(|v| view_bytes(&v).map(Arc::new)).transpose()
}

/// A view as the body of a response.
fn view_bytes(view: &UserView) -> Result<ViewBytes, AccountError> {
    Ok(ViewBytes {
        version: view.version,
        etag: view.etag(),
        body: serde_json::to_vec(view)
            .map_err(AccountError::Encode)?
            .into(),
    })
}

/// The view of `id` from the shared cache, or from PostgreSQL (then cached).
async fn shared_view(state: &AppState, id: Uuid) -> Result<Option<UserView>, AccountError> {
    if let Some(view) = state.cache.get(id).await {
        state.metrics.cache_hits.inc();
        return Ok(Some(view));
    }
    state.metrics.cache_misses.inc();
    let client = state.db.get().await?;
    let Some(user) = db::users::get(&client, id).await? else {
        return Ok(None);
    };
    let view = user.view();
    state.cache.store(&view).await;
    Ok(Some(view))
}

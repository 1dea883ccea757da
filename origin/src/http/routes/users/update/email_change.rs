//! The e-mail part of `PUT`/`PATCH /users/{id}` (SPEC §6): who may set `email` and
//! `email_verified` directly, the current password a self-service change needs, and handing
//! the change to [`crate::verification`].
//!
//! - Without `users:update`, a new address does not replace `email`: it becomes
//!   `pending_email` until both addresses confirm (`POST /auth/email/verify`).
//! - With `users:update`, `email` is set at once, and `email_verified` may be set too; a new
//!   address without `email_verified` is unverified and gets a verification mail.

use serde_json::{Map, Value};
use users_core::fields::Email;
use uuid::Uuid;

use crate::db::{self, users::UserRow};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::Auth;
use crate::state::AppState;
use crate::verification::{self, AdminSet};
use users_core::perms::Permission;

/// How an update treats the address it asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailEdit {
    /// The same mailbox (perhaps another spelling of its case): written as given.
    Same,
    /// A self-service change: it waits for both confirmations.
    Pending,
    /// An administrator's change: written at once.
    Direct,
}

/// Whether two spellings name the same mailbox (addresses are unique case-insensitively).
fn same_address(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

/// How `auth`'s request for `to` on an account whose address is `from` is handled.
pub fn edit_of(auth: &Auth, from: &str, to: &Email) -> EmailEdit {
    if same_address(from, to.as_str()) {
        EmailEdit::Same
    } else if auth.has(Permission::UsersUpdate) {
        EmailEdit::Direct
    } else {
        EmailEdit::Pending
    }
}

/// Checks the account's current password, given as `current_password`, before a change that
/// needs it (`what`: "to change your password"): missing → `422`, wrong → `403`.
pub async fn verify_current_password(
    state: &AppState,
    id: Uuid,
    current_password: Option<String>,
    what: &str,
) -> ApiResult<()> {
    let Some(current_password) = current_password else {
        return Err(ApiError::validation(
            "current_password",
            format!("is required {what}"),
        ));
    };
    let stored = db::users::password_hash(&state.db.get().await?, id).await?;
    if !state.hasher.verify(current_password, stored).await?.ok {
        return Err(ApiError::forbidden("The current password is incorrect."));
    }
    Ok(())
}

/// The `email_verified` a request body states (`None`: not stated, or `null`).
pub fn stated_verified(body: &Map<String, Value>) -> Option<bool> {
    body.get("email_verified").and_then(Value::as_bool)
}

/// What an update of `locked` to `to` does about the address, in the update's transaction,
/// once the other fields are written; `true` when mail was queued. `password_checked`: the
/// request proved the current password (a pending change needs it).
#[derive(Debug)]
pub struct Apply<'a> {
    pub auth: &'a Auth,
    pub locked: &'a UserRow,
    pub to: &'a Email,
    pub stated_verified: Option<bool>,
    pub password_checked: bool,
}

impl Apply<'_> {
    /// The address the update writes to `email`.
    pub fn stored_email(&self) -> &str {
        match edit_of(self.auth, &self.locked.email, self.to) {
            EmailEdit::Pending => &self.locked.email,
            EmailEdit::Same | EmailEdit::Direct => self.to.as_str(),
        }
    }

    pub async fn run(&self, db: &impl db::GenericClient, state: &AppState) -> ApiResult<bool> {
        let (config, ctx) = (&state.config, &self.auth.ctx);
        match edit_of(self.auth, &self.locked.email, self.to) {
            EmailEdit::Pending if !self.password_checked => Err(ApiError::Conflict(
                "The account changed while the request was checked; send it again.".into(),
            )),
            EmailEdit::Pending => {
                verification::request_change(db, config, ctx, self.locked, self.to).await?;
                Ok(true)
            }
            EmailEdit::Same | EmailEdit::Direct => {
                let set = AdminSet {
                    actor: self.auth.user_id,
                    before: self.locked,
                    email: self.to.as_str(),
                    verified: self.stated_verified,
                };
                if !set.changes_anything() {
                    return Ok(false);
                }
                Ok(set.apply(db, config, ctx).await?)
            }
        }
    }
}

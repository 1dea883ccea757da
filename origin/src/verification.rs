//! E-mail verification and e-mail changes (SPEC §6), with no HTTP in them: the mailed tokens,
//! the mails themselves, the per-account mail throttle, and what spending a token does.
//!
//! - A `verify` token proves the account's address: the first proof revokes every session
//!   and access token the account held before (someone who registered the address before its
//!   owner, then waited, loses their foothold).
//! - A self-service change waits in `pending_email` until both sides confirm with their
//!   `change_current`/`change_new` tokens (the current side is taken as confirmed when it was
//!   never verified); the commit keeps the sessions, since the change needed the password.
//! - Verification mails and "someone tried to register" notices share one throttle per
//!   account (`EMAIL_RESEND_INTERVAL`): nobody can flood a mailbox through the API.
//!
//! Mail is written to the outbox in the transaction of the change that causes it; callers wake
//! the sender (`AppState::mail_ready`) after their commit.

use serde_json::json;
use users_core::fields::Email;
use uuid::Uuid;

use crate::accounts::revoke_sessions;
use crate::config::Config;
use crate::db::email::{self as queries, Purpose, Spent};
use crate::db::{self, GenericClient, audit::Ctx, audit::Event, users::UserRow};
use crate::state::AppState;
use crate::tokens;
use crate::write::Write;

/// The longest token worth looking up: mailed tokens are 43 characters.
pub const MAX_TOKEN_LEN: usize = 128;

/// Why spending a token or starting a change failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Unknown, spent, expired, or no longer matching the account: one answer for all.
    #[error("invalid e-mail token")]
    InvalidToken,
    /// The address belongs to another account.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Query(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Pool(#[from] deadpool_postgres::PoolError),
}

const TAKEN: &str = "The email is already registered.";

/// The mail of a fresh token: its link and its line.
fn token_mail(config: &Config, greeting: &str, what: &str, token: &str) -> String {
    let link = format!("{}/auth/email/verify?token={token}", config.public_url);
    let hours = (config.email.verify_ttl + 3599) / 3600;
    format!(
        "Hello {greeting},\n\n{what}\n\nOpen this link within {hours} hours, or send the token \
         (HTTP POST {}/auth/email/verify with {{\"token\": \"...\"}}):\n\n{link}\n\n\
         Verification token: {token}\n\nIf you did not ask for this, ignore this message.\n",
        config.public_url
    )
}

/// One token to mail.
struct Link<'a> {
    user_id: Uuid,
    username: &'a str,
    purpose: Purpose,
    /// Where the mail goes.
    recipient: &'a str,
    /// The address the token is about (its `email`): the account's for `verify`, the pending
    /// one for both sides of a change.
    address: &'a str,
    subject: &'a str,
    what: &'a str,
}

impl Link<'_> {
    /// Stores a fresh token and queues its mail.
    async fn queue(
        &self,
        db: &impl GenericClient,
        config: &Config,
    ) -> Result<(), tokio_postgres::Error> {
        let (token, digest) = tokens::generate();
        let ttl = config.email.verify_ttl;
        queries::insert_token(db, self.user_id, self.purpose, self.address, &digest, ttl).await?;
        let body = token_mail(config, self.username, self.what, &token);
        db::outbox::enqueue(db, self.recipient, self.subject, &body).await
    }
}

/// Queues a verification mail for the account's address `email`, if its mail slot is free
/// (see [`queries::claim_mail_slot`]); `true` when a mail was queued.
pub async fn queue_verification(
    db: &impl GenericClient,
    config: &Config,
    user_id: Uuid,
    username: &str,
    email: &str,
) -> Result<bool, tokio_postgres::Error> {
    if !queries::claim_mail_slot(db, user_id, config.email.resend_interval).await? {
        return Ok(false);
    }
    queue_verify_token(db, config, user_id, username, email).await?;
    Ok(true)
}

/// Queues a verification mail for `email` whatever the throttle says.
async fn queue_verify_token(
    db: &impl GenericClient,
    config: &Config,
    user_id: Uuid,
    username: &str,
    email: &str,
) -> Result<(), tokio_postgres::Error> {
    let link = Link {
        user_id,
        username,
        purpose: Purpose::Verify,
        recipient: email,
        address: email,
        subject: "Confirm your e-mail address",
        what: "Please confirm that this address belongs to your account.",
    };
    link.queue(db, config).await
}

/// `POST /auth/email/verify/resend`: a new verification mail to the account with `email`,
/// unless it is unknown, inactive, already verified or was mailed within the interval. Runs
/// after the answer, so nothing about the account shows.
pub async fn resend(state: &AppState, email: &Email) -> Result<(), VerifyError> {
    let mut client = state.db.get().await?;
    let Some(user) = db::users::get_by_email(&client, email.as_str())
        .await?
        .filter(|u| u.is_active && !u.email_verified)
    else {
        return Ok(());
    };
    let tx = client.transaction().await?;
    let queued =
        queue_verification(&tx, &state.config, user.id, &user.username, &user.email).await?;
    tx.commit().await?;
    if queued {
        state.mail_ready.notify_one();
    }
    Ok(())
}

/// Tells the owner of `email` that someone tried to register with it (throttled like
/// [`resend`]). Runs after the `409` is answered.
pub async fn notify_registration_attempt(
    state: &AppState,
    email: &Email,
) -> Result<(), VerifyError> {
    let mut client = state.db.get().await?;
    let Some(user) = db::users::get_by_email(&client, email.as_str()).await? else {
        return Ok(());
    };
    let tx = client.transaction().await?;
    if !queries::claim_mail_slot(&tx, user.id, state.config.email.resend_interval).await? {
        return Ok(());
    }
    let body = format!(
        "Hello {},\n\nSomeone tried to register a new account with this e-mail address, which \
         already belongs to your account. No account was created.\n\nIf it was you, log in \
         instead, or reset your password if you forgot it. Otherwise you need not do anything.\n",
        user.username
    );
    db::outbox::enqueue(
        &tx,
        &user.email,
        "Someone tried to register with your address",
        &body,
    )
    .await?;
    tx.commit().await?;
    state.mail_ready.notify_one();
    Ok(())
}

/// `POST /auth/email/verify`: spends `token` and does what it proves.
pub async fn verify(state: &AppState, ctx: &Ctx, token: &str) -> Result<(), VerifyError> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(VerifyError::InvalidToken);
    }
    let digest = tokens::digest(token);
    let mut client = state.db.get().await?;
    let mut write = Write::begin(&mut client, &state.cache).await?;
    let spent = queries::spend_token(&write.tx, &digest)
        .await?
        .ok_or(VerifyError::InvalidToken)?;
    // The row lock orders confirmations of one change: exactly one of them sees both sides.
    let user = db::users::get_for_update(&write.tx, spent.user_id)
        .await?
        .ok_or(VerifyError::InvalidToken)?;
    let mailed = match spent.purpose {
        Purpose::Verify => {
            prove_address(&write.tx, ctx, &user, &spent).await?;
            false
        }
        Purpose::ChangeCurrent | Purpose::ChangeNew => {
            confirm_change(&write.tx, ctx, &user, &spent).await?
        }
    };
    if let Some(after) = db::users::get(&write.tx, user.id).await? {
        write.store(after.view());
    }
    write.commit().await?;
    if mailed {
        state.mail_ready.notify_one();
    }
    Ok(())
}

fn same_address(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

/// A `verify` token: the address it went to must still be the account's.
async fn prove_address(
    db: &impl GenericClient,
    ctx: &Ctx,
    user: &UserRow,
    spent: &Spent,
) -> Result<(), VerifyError> {
    if !same_address(&spent.email, &user.email) {
        return Err(VerifyError::InvalidToken);
    }
    if user.email_verified {
        return Ok(());
    }
    queries::set_verified(db, user.id, true).await?;
    // Pre-hijacking defence: whoever held the account before its address was proven is out.
    revoke_sessions(db, user.id).await?;
    let event = Event::new("email.verified", Some(user.id), Some(user.id))
        .with(json!({"email": user.email}));
    db::audit::record(db, ctx, event).await?;
    Ok(())
}

/// A `change_current`/`change_new` token: records that side; commits the change when both
/// sides confirmed. `true` when a notice was queued.
async fn confirm_change(
    db: &impl GenericClient,
    ctx: &Ctx,
    user: &UserRow,
    spent: &Spent,
) -> Result<bool, VerifyError> {
    let Some(pending) = user
        .pending_email
        .as_deref()
        .filter(|p| same_address(p, &spent.email))
    else {
        return Err(VerifyError::InvalidToken);
    };
    let (current, new) = match spent.purpose {
        Purpose::ChangeCurrent => (true, user.pending_confirmed.1),
        _ => (user.pending_confirmed.0, true),
    };
    if !(current && new) {
        queries::confirm_pending(db, user.id, spent.purpose).await?;
        return Ok(false);
    }
    if queries::taken(db, pending, user.id).await? {
        return Err(VerifyError::Conflict(TAKEN.to_owned()));
    }
    queries::commit_pending(db, user.id).await?;
    spend_address_tokens(db, user.id).await?;
    let body = format!(
        "Hello {},\n\nThe e-mail address of your account was changed from this address to \
         {pending}. Mail for the account now goes there.\n\nIf you did not ask for this, \
         contact support at once.\n",
        user.username
    );
    db::outbox::enqueue(db, &user.email, "Your e-mail address was changed", &body).await?;
    let event = Event::new("email.changed", Some(user.id), Some(user.id))
        .with(json!({"from": user.email, "to": pending}));
    db::audit::record(db, ctx, event).await?;
    Ok(true)
}

/// Spends every link mailed for the account's old address: e-mail tokens and reset tokens.
async fn spend_address_tokens(
    db: &impl GenericClient,
    user_id: Uuid,
) -> Result<(), tokio_postgres::Error> {
    let all = [Purpose::Verify, Purpose::ChangeCurrent, Purpose::ChangeNew];
    queries::spend_outstanding(db, user_id, &all).await?;
    queries::spend_resets(db, user_id).await
}

/// A self-service change of `user`'s (locked) address to `to`: pending until both sides
/// confirm. Replaces an older pending change. Mails `to`, and the current address when it is
/// verified.
pub async fn request_change(
    db: &impl GenericClient,
    config: &Config,
    ctx: &Ctx,
    user: &UserRow,
    to: &Email,
) -> Result<(), VerifyError> {
    if queries::taken(db, to.as_str(), user.id).await? {
        return Err(VerifyError::Conflict(TAKEN.to_owned()));
    }
    let changes = [Purpose::ChangeCurrent, Purpose::ChangeNew];
    queries::spend_outstanding(db, user.id, &changes).await?;
    queries::set_pending(db, user.id, to.as_str(), !user.email_verified).await?;
    let new_side = Link {
        user_id: user.id,
        username: &user.username,
        purpose: Purpose::ChangeNew,
        recipient: to.as_str(),
        address: to.as_str(),
        subject: "Confirm your new e-mail address",
        what: "Please confirm that this address should become the address of your account.",
    };
    new_side.queue(db, config).await?;
    if user.email_verified {
        let what = format!(
            "Someone asked to change the address of your account from this one to {}. \
             Please confirm the change. The address stays as it is until both addresses confirm.",
            to.as_str()
        );
        let current_side = Link {
            purpose: Purpose::ChangeCurrent,
            recipient: &user.email,
            subject: "Confirm the change of your e-mail address",
            what: &what,
            ..new_side
        };
        current_side.queue(db, config).await?;
    }
    let event = Event::new("email.change_requested", Some(user.id), Some(user.id))
        .with(json!({"from": user.email, "to": to.as_str()}));
    db::audit::record(db, ctx, event).await?;
    Ok(())
}

/// An administrator's direct setting of `before`'s address and verification state (the
/// address already written by the update). Without an explicit `verified`, a new address is
/// unverified. An unverified result gets a verification mail; a new address drops the pending
/// change and the links mailed for the old one.
#[derive(Debug)]
pub struct AdminSet<'a> {
    pub actor: Uuid,
    pub before: &'a UserRow,
    pub email: &'a str,
    pub verified: Option<bool>,
}

impl AdminSet<'_> {
    /// Whether this changes the address or its verification state.
    pub fn changes_anything(&self) -> bool {
        !same_address(self.email, &self.before.email)
            || self
                .verified
                .is_some_and(|v| v != self.before.email_verified)
    }

    /// Applies it in `db` (the update's transaction); `true` when mail was queued.
    pub async fn apply(
        &self,
        db: &impl GenericClient,
        config: &Config,
        ctx: &Ctx,
    ) -> Result<bool, VerifyError> {
        let user = self.before;
        let moved = !same_address(self.email, &user.email);
        let verified = self.verified.unwrap_or(!moved && user.email_verified);
        if moved {
            queries::clear_pending(db, user.id).await?;
            spend_address_tokens(db, user.id).await?;
        }
        queries::set_verified(db, user.id, verified).await?;
        let event = Event::new("email.set_by_admin", Some(self.actor), Some(user.id))
            .with(json!({"from": user.email, "to": self.email, "verified": verified}));
        db::audit::record(db, ctx, event).await?;
        if verified {
            return Ok(false);
        }
        // An administrator's change is not throttled: the new address needs its link now.
        queries::claim_mail_slot(db, user.id, 0).await?;
        queue_verify_token(db, config, user.id, &user.username, self.email).await?;
        Ok(true)
    }
}

//! Second factors (SPEC §8), with no HTTP in them: enrolling a TOTP factor, proving it (or a
//! recovery code) at login and for the changes that need it, disabling it, new recovery codes,
//! and the admin reset.
//!
//! - Secrets are sealed with [`crate::mfa_keys::MfaKeys`] (bound to the factor's id);
//!   recovery codes are stored as keyed hashes and spent atomically.
//! - Every proof runs in one transaction under the account's row lock
//!   ([`db::mfa::lock_account`]): an accepted time step is refused afterwards (two
//!   simultaneous proofs of one code: exactly one passes), and the account's budget of wrong
//!   codes (10, one back per 6 minutes) is exact. A wrong code is recorded and committed
//!   before the refusal is returned.
//! - Login step-up: [`challenge`] issues the single-use `mfa_token` (5 minutes, stored as its
//!   digest, dead after 5 wrong codes); [`verify_login`] spends it for the usual tokens.
//!
//! - [`totp`]: RFC 6238 as SPEC §8 fixes it. [`recovery`]: the codes and their normal form.

pub mod recovery;
pub mod totp;

use serde_json::json;
use users_core::model::TokenResponse;
use users_core::token::{AMR_OTP, AMR_PASSWORD, AMR_RECOVERY_CODE};
use uuid::Uuid;

use crate::accounts::revoke_sessions;
use crate::clock;
use crate::db::mfa::{self as queries, FAILURE_BUDGET, FAILURE_REFILL_SECS, FactorRow};
use crate::db::{self, GenericClient, audit::Ctx, audit::Event, sessions::Origin};
use crate::hashing::HashError;
use crate::mfa_keys::Sealed;
use crate::state::AppState;
use crate::tokens;
use crate::write::Write;

/// Seconds a pending factor waits for its first code (SPEC §8).
pub const ENROL_TTL: i64 = 600;
/// Seconds an `mfa_token` lives (SPEC §8).
pub const CHALLENGE_TTL: i64 = 300;
/// The methods a step-up accepts, as the challenge names them.
pub const METHODS: [&str; 2] = ["totp", "recovery_code"];
/// The longest `mfa_token` worth looking up (issued ones are 43 characters).
pub const MAX_TOKEN_LEN: usize = 128;

/// Why a second-factor operation failed.
#[derive(Debug, thiserror::Error)]
pub enum MfaError {
    /// The code or recovery code is wrong, spent, or its step was already accepted.
    #[error("invalid second-factor code")]
    InvalidCode,
    /// The `mfa_token` is unknown, spent, expired or dead from wrong codes.
    #[error("invalid mfa token")]
    InvalidToken,
    /// The account spent its budget of wrong codes: retry after this many seconds.
    #[error("too many wrong codes")]
    Guessing(i64),
    /// The current password is wrong.
    #[error("The current password is incorrect.")]
    WrongPassword,
    /// The account already has a confirmed factor.
    #[error("A second factor is already enabled; disable it first.")]
    AlreadyEnabled,
    /// No such pending factor, or no factor to act on.
    #[error("not found")]
    NotFound,
    /// Deleted or deactivated meanwhile.
    #[error("account gone")]
    AccountGone,
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Query(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("{0}")]
    Internal(String),
}

/// What a user presents as the second factor.
#[derive(Debug, Clone)]
pub enum Proof {
    Code(String),
    RecoveryCode(String),
}

/// A pending factor, as its owner sees it once.
#[derive(Debug)]
pub struct Enrolment {
    pub id: Uuid,
    pub secret: String,
    pub otpauth_uri: String,
    pub expires_in: i64,
}

fn sealed(factor: &FactorRow) -> Sealed {
    Sealed {
        key_id: factor.key_id.clone(),
        bytes: factor.sealed_secret.clone(),
    }
}

fn secret_of(state: &AppState, factor: &FactorRow) -> Result<Vec<u8>, MfaError> {
    state
        .mfa_keys
        .open(factor.id.as_bytes(), &sealed(factor))
        .ok_or_else(|| {
            MfaError::Internal(format!(
                "the secret of factor {} does not open with the configured MFA keys (key {})",
                factor.id, factor.key_id
            ))
        })
}

fn unix_now() -> u64 {
    clock::now().max(0) as u64
}

/// Starts enrolment for `user_id` (`username` names the account in the app): checks the
/// password and stores a pending factor, valid [`ENROL_TTL`] seconds.
pub async fn enrol(
    state: &AppState,
    ctx: &Ctx,
    user_id: Uuid,
    username: &str,
    current_password: String,
) -> Result<Enrolment, MfaError> {
    state.hasher.admit()?;
    let stored = db::users::password_hash(&state.db.get().await?, user_id).await?;
    if !state.hasher.verify(current_password, stored).await?.ok {
        return Err(MfaError::WrongPassword);
    }
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    if !queries::lock_account(&tx, user_id).await? {
        return Err(MfaError::AccountGone);
    }
    if queries::confirmed(&tx, user_id).await?.is_some() {
        return Err(MfaError::AlreadyEnabled);
    }
    let id = Uuid::now_v7();
    let secret = totp::new_secret();
    let sealed = state.mfa_keys.seal(id.as_bytes(), &secret);
    queries::insert_pending(&tx, id, user_id, &sealed.key_id, &sealed.bytes, ENROL_TTL).await?;
    let event = Event::own("mfa.enrolment_started", user_id).with(json!({"factor_id": id}));
    db::audit::record(&tx, ctx, event).await?;
    tx.commit().await?;
    let otpauth_uri = totp::otpauth_uri(&secret, &state.config.mfa.issuer, username)
        .ok_or_else(|| MfaError::Internal("could not build the otpauth URI".into()))?;
    Ok(Enrolment {
        id,
        secret: totp::base32(&secret),
        otpauth_uri,
        expires_in: ENROL_TTL,
    })
}

/// A fresh set of recovery codes for `user_id`, stored (as keyed hashes) in place of the old.
async fn new_codes(
    state: &AppState,
    db: &impl GenericClient,
    user_id: Uuid,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let codes = recovery::generate();
    let hashes: Vec<Vec<u8>> = codes
        .iter()
        .filter_map(|c| recovery::normalise(c))
        .map(|c| state.mfa_keys.code_hash(&c))
        .collect();
    queries::replace_codes(db, user_id, &hashes).await?;
    Ok(codes)
}

/// The outcome of checking a proof, already written to the transaction.
enum Checked {
    /// Accepted, as this `amr` method.
    Accepted(&'static str),
    /// Wrong (counted against the account's budget).
    Wrong,
    /// The budget is spent: retry after this many seconds.
    Limited(i64),
}

/// Seconds until one wrong code is refunded to a budget of `budget`.
fn refill_wait(budget: f64) -> i64 {
    ((1.0 - budget) * FAILURE_REFILL_SECS).ceil().max(1.0) as i64
}

/// Checks `proof` for `user_id` against `factor` (a recovery code needs none), in a
/// transaction that holds the account's lock. A TOTP code's step is consumed, a recovery code
/// spent; a wrong one costs the account one from its budget.
async fn check(
    state: &AppState,
    db: &impl GenericClient,
    ctx: &Ctx,
    user_id: Uuid,
    factor: &FactorRow,
    proof: &Proof,
) -> Result<Checked, MfaError> {
    let budget = queries::budget(db, user_id).await?;
    if budget < 1.0 {
        return Ok(Checked::Limited(refill_wait(budget)));
    }
    let accepted = match proof {
        Proof::Code(code) => {
            let secret = secret_of(state, factor)?;
            match totp::matching_step(&secret, code.trim(), unix_now(), factor.last_step) {
                Some(step) if factor.confirmed => queries::accept_step(db, factor.id, step)
                    .await?
                    .then_some(AMR_OTP),
                Some(step) => {
                    queries::confirm(db, user_id, factor.id, step).await?;
                    Some(AMR_OTP)
                }
                None => None,
            }
        }
        Proof::RecoveryCode(typed) => match recovery::normalise(typed) {
            Some(code) => {
                let hashes = state.mfa_keys.code_hashes(&code);
                queries::spend_code(db, user_id, &hashes)
                    .await?
                    .then_some(AMR_RECOVERY_CODE)
            }
            None => None,
        },
    };
    if let Some(method) = accepted {
        return Ok(Checked::Accepted(method));
    }
    queries::spend_budget(db, user_id).await?;
    let event = Event::own("mfa.code_rejected", user_id).with(json!({
        "method": match proof { Proof::Code(_) => "totp", Proof::RecoveryCode(_) => "recovery_code" },
        "budget_left": (budget - 1.0).floor().max(0.0),
    }));
    db::audit::record(db, ctx, event).await?;
    Ok(Checked::Wrong)
}

/// Confirms the pending factor `factor_id` of `user_id` with its first code: MFA is on, the
/// user's other sessions end (`keep` stays), and the returned recovery codes are the only
/// time they are shown.
pub async fn confirm(
    state: &AppState,
    ctx: &Ctx,
    user_id: Uuid,
    factor_id: Uuid,
    keep: Option<Uuid>,
    code: &str,
) -> Result<Vec<String>, MfaError> {
    let mut client = state.db.get().await?;
    let mut write = Write::begin(&mut client, &state.cache).await?;
    if !queries::lock_account(&write.tx, user_id).await? {
        return Err(MfaError::AccountGone);
    }
    if queries::confirmed(&write.tx, user_id).await?.is_some() {
        return Err(MfaError::AlreadyEnabled);
    }
    let factor = queries::pending(&write.tx, user_id, factor_id)
        .await?
        .ok_or(MfaError::NotFound)?;
    let proof = Proof::Code(code.to_owned());
    match check(state, &write.tx, ctx, user_id, &factor, &proof).await? {
        Checked::Accepted(_) => {}
        Checked::Wrong => {
            write.commit().await?;
            return Err(MfaError::InvalidCode);
        }
        Checked::Limited(secs) => return Err(MfaError::Guessing(secs)),
    }
    let codes = new_codes(state, &write.tx, user_id).await?;
    queries::set_enabled(&write.tx, user_id, true).await?;
    let ended = db::sessions::revoke_others(&write.tx, user_id, keep).await?;
    let event = Event::own("mfa.enabled", user_id)
        .with(json!({"factor_id": factor_id, "sessions_ended": ended}));
    db::audit::record(&write.tx, ctx, event).await?;
    store_view(&mut write, user_id).await?;
    write.commit().await?;
    Ok(codes)
}

/// After the commit, the cache holds the user's new view (`mfa_enabled` changed).
async fn store_view(write: &mut Write<'_>, user_id: Uuid) -> Result<(), tokio_postgres::Error> {
    if let Some(user) = db::users::get(&write.tx, user_id).await? {
        write.store(user.view());
    }
    Ok(())
}

/// Proves `proof` for `user_id`'s confirmed factor inside `write` (the caller's transaction,
/// already holding the account's lock). A wrong proof is committed, then refused.
async fn prove_in<'c>(
    state: &AppState,
    write: Write<'c>,
    ctx: &Ctx,
    user_id: Uuid,
    proof: &Proof,
) -> Result<(Write<'c>, &'static str), MfaError> {
    let factor = queries::confirmed(&write.tx, user_id)
        .await?
        .ok_or(MfaError::NotFound)?;
    match check(state, &write.tx, ctx, user_id, &factor, proof).await? {
        Checked::Accepted(method) => Ok((write, method)),
        Checked::Wrong => {
            write.commit().await?;
            Err(MfaError::InvalidCode)
        }
        Checked::Limited(secs) => Err(MfaError::Guessing(secs)),
    }
}

/// Disables MFA of `user_id` with a code or a recovery code: the factor and the codes go.
pub async fn disable(
    state: &AppState,
    ctx: &Ctx,
    user_id: Uuid,
    proof: &Proof,
) -> Result<(), MfaError> {
    let mut client = state.db.get().await?;
    let write = Write::begin(&mut client, &state.cache).await?;
    if !queries::lock_account(&write.tx, user_id).await? {
        return Err(MfaError::AccountGone);
    }
    let (mut write, method) = prove_in(state, write, ctx, user_id, proof).await?;
    queries::remove_all(&write.tx, user_id).await?;
    queries::set_enabled(&write.tx, user_id, false).await?;
    let event = Event::own("mfa.disabled", user_id).with(json!({"method": method}));
    db::audit::record(&write.tx, ctx, event).await?;
    store_view(&mut write, user_id).await?;
    write.commit().await?;
    Ok(())
}

/// A new set of recovery codes for `user_id`, proved with a TOTP code; the old set dies.
pub async fn regenerate_codes(
    state: &AppState,
    ctx: &Ctx,
    user_id: Uuid,
    code: &str,
) -> Result<Vec<String>, MfaError> {
    let mut client = state.db.get().await?;
    let write = Write::begin(&mut client, &state.cache).await?;
    if !queries::lock_account(&write.tx, user_id).await? {
        return Err(MfaError::AccountGone);
    }
    let proof = Proof::Code(code.to_owned());
    let (write, _) = prove_in(state, write, ctx, user_id, &proof).await?;
    let codes = new_codes(state, &write.tx, user_id).await?;
    let event = Event::own("mfa.recovery_codes_regenerated", user_id);
    db::audit::record(&write.tx, ctx, event).await?;
    write.commit().await?;
    Ok(codes)
}

/// The subject of the mail an admin reset sends.
pub const RESET_SUBJECT: &str = "Your second factor was removed";

/// An admin (`actor`) removes `user_id`'s second factor: every session ends, the user is
/// mailed, and it is audited. `NotFound` when the account has none.
pub async fn reset(
    state: &AppState,
    ctx: &Ctx,
    actor: Uuid,
    user_id: Uuid,
) -> Result<(), MfaError> {
    let mut client = state.db.get().await?;
    let mut write = Write::begin(&mut client, &state.cache).await?;
    if !queries::lock_account(&write.tx, user_id).await? {
        return Err(MfaError::NotFound);
    }
    let Some(user) = db::users::get(&write.tx, user_id).await? else {
        return Err(MfaError::NotFound);
    };
    if !user.mfa_enabled && queries::confirmed(&write.tx, user_id).await?.is_none() {
        return Err(MfaError::NotFound);
    }
    queries::remove_all(&write.tx, user_id).await?;
    queries::set_enabled(&write.tx, user_id, false).await?;
    let ended = revoke_sessions(&write.tx, user_id).await?;
    let body = format!(
        "Hello {},\n\nan administrator removed the second factor of your account, and every \
         session of it was ended. Log in with your password and enrol a new authenticator.\n\n\
         If you did not ask for this, contact your administrator.\n",
        user.username
    );
    db::outbox::enqueue(&write.tx, &user.email, RESET_SUBJECT, &body).await?;
    let event =
        Event::new("mfa.reset", Some(actor), Some(user_id)).with(json!({"sessions_ended": ended}));
    db::audit::record(&write.tx, ctx, event).await?;
    store_view(&mut write, user_id).await?;
    write.commit().await?;
    state.mail_ready.notify_one();
    Ok(())
}

/// The login step-up: a single-use `mfa_token` for `user_id`, whose password was just proved.
pub async fn challenge(
    db: &impl GenericClient,
    ctx: &Ctx,
    user_id: Uuid,
) -> Result<String, tokio_postgres::Error> {
    let (token, digest) = tokens::generate();
    queries::insert_challenge(db, &digest, user_id, CHALLENGE_TTL).await?;
    db::audit::record(db, ctx, Event::own("login.mfa_required", user_id)).await?;
    Ok(token)
}

/// Spends the login challenge `mfa_token` with `proof`: the usual token response, for a new
/// session with `amr` `pwd` and `otp` or `rc`. A wrong proof counts against the challenge (it
/// dies after 5) and the account's budget.
pub async fn verify_login(
    state: &AppState,
    ctx: &Ctx,
    mfa_token: &str,
    proof: &Proof,
    origin: &Origin,
) -> Result<TokenResponse, MfaError> {
    if mfa_token.len() > MAX_TOKEN_LEN {
        return Err(MfaError::InvalidToken);
    }
    let digest = tokens::digest(mfa_token);
    let user_id = queries::challenge(&state.db.get().await?, &digest)
        .await?
        .ok_or(MfaError::InvalidToken)?;
    let mut client = state.db.get().await?;
    let write = Write::begin(&mut client, &state.cache).await?;
    if !queries::lock_account(&write.tx, user_id).await? {
        return Err(MfaError::InvalidToken);
    }
    // Under the lock: a concurrent verify of the same token may have spent it meanwhile.
    if queries::challenge(&write.tx, &digest).await?.is_none() {
        return Err(MfaError::InvalidToken);
    }
    let factor = queries::confirmed(&write.tx, user_id)
        .await?
        .ok_or(MfaError::InvalidToken)?;
    let method = match check(state, &write.tx, ctx, user_id, &factor, proof).await? {
        Checked::Accepted(method) => method,
        Checked::Wrong => {
            queries::challenge_failed(&write.tx, &digest).await?;
            write.commit().await?;
            return Err(MfaError::InvalidCode);
        }
        Checked::Limited(secs) => return Err(MfaError::Guessing(secs)),
    };
    queries::spend_challenge(&write.tx, &digest).await?;
    let user = db::users::get(&write.tx, user_id)
        .await?
        .filter(|u| u.is_active)
        .ok_or(MfaError::InvalidToken)?;
    let grants = db::grants::grants(&write.tx, user_id, &state.config.mfa.required_roles).await?;
    let amr = [AMR_PASSWORD, method];
    let details = json!({"method": method});
    let opened =
        tokens::open_session(state, &write.tx, ctx, &user, &grants, &amr, origin, details).await?;
    let Some(tokens) = opened else {
        return Err(MfaError::InvalidToken);
    };
    write.commit().await?;
    Ok(tokens)
}

/// The published bound on guessing (README): the chance that an attacker who knows the
/// password guesses a code for one account in one day, spending the whole budget.
pub fn guessing_bound_per_day() -> f64 {
    // Each wrong guess hits one of the 2 accepted codes out of 10^6.
    let guesses = FAILURE_BUDGET + 86_400.0 / FAILURE_REFILL_SECS;
    guesses * 2.0 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_guessing_bound_is_what_the_limits_allow() {
        // 10 at once, then 240 refills a day: 250 guesses, 2 accepted codes among 10^6 each.
        assert!((guessing_bound_per_day() - 5e-4).abs() < 1e-12);
    }

    #[test]
    fn a_spent_budget_waits_for_one_refill() {
        assert_eq!(refill_wait(0.0), 360);
        assert_eq!(refill_wait(0.5), 180);
        assert_eq!(refill_wait(0.999_999), 1);
    }
}

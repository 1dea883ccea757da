//! Shared application state, handed to handlers through `State<AppState>`.

use std::sync::Arc;

use deadpool_postgres::Pool;
use tokio::sync::Notify;
use users_core::token::Expectations;

use crate::cache::UserCache;
use crate::config::Config;
use crate::hashing::Hasher;
use crate::keys::Keys;
use crate::listen::Follower;
use crate::metrics::Metrics;
use crate::mfa_keys::MfaKeys;
use crate::ratelimit::Limiter;
use crate::redis_store::Redis;

#[derive(Debug, Clone)]
pub struct AppState {
    pub db: Pool,
    pub config: Arc<Config>,
    pub hasher: Arc<Hasher>,
    pub keys: Arc<Keys>,
    /// The keys of second factors.
    pub mfa_keys: Arc<MfaKeys>,
    pub expect: Arc<Expectations>,
    pub metrics: Arc<Metrics>,
    /// Present when `REDIS_URL` is set.
    pub redis: Option<Redis>,
    pub cache: Arc<UserCache>,
    /// The replica's memory of principals, sessions, tokens and views, and the notifications
    /// that keep it right (SPEC §11).
    pub follower: Arc<Follower>,
    pub limiter: Arc<Limiter>,
    /// Woken when mail is written to the outbox.
    pub mail_ready: Arc<Notify>,
}

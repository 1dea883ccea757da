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

/// What every handler shares, behind one reference count: cloning the state per layer and
/// extractor then costs one atomic increment rather than one per part (on two threads, that
/// contended counter traffic was a fifth of a cached read's CPU).
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
#[derive(Debug)]
pub struct Shared {
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

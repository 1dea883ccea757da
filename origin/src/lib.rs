//! `users-origin`: the origin tier of the user-management API.
//!
//! An axum service over PostgreSQL. [`Application::build`] reads a [`Config`], applies the
//! migrations, loads or creates the token keys, ensures the bootstrap admin and binds; then
//! [`Application::run_until_stopped`] serves until SIGTERM.
//!
//! Layers, each importing only the ones below it (`scripts/check-imports.py` checks this):
//! - [`startup`]: building and running the service.
//! - [`http`]: everything that knows HTTP: router, middleware, extractors, routes, errors.
//! - Domain services, without HTTP: [`accounts`] (account rules, revoking sessions),
//!   [`tokens`] (issuing and verifying), [`write`] (transactions with their cache updates),
//!   [`mail`] (the outbox sender), [`monitor`] (readiness, Redis fallback and outbox gauges),
//!   [`verification`] (e-mail verification and e-mail changes), [`mfa`] (second factors).
//! - [`state`]: the shared state handed to handlers.
//! - Infrastructure, each with its own error type: [`hashing`] (Argon2id in a bounded pool),
//!   [`cache`], [`ratelimit`], [`redis_store`], [`metrics`] (the registry), [`keys`],
//!   [`mfa_keys`] (sealing second factors); and
//!   [`db`], the queries, one module per table.
//! - [`config`], [`clock`] (the only clock read) and [`fields`] (collecting field problems).

pub mod accounts;
pub mod cache;
pub mod clock;
pub mod config;
pub mod db;
pub mod export;
pub mod fields;
pub mod hashing;
pub mod http;
pub mod idempotency;
pub mod import;
pub mod keys;
pub mod legacy_hash;
pub mod listen;
pub mod mail;
pub mod memo;
pub mod metrics;
pub mod mfa;
pub mod mfa_keys;
pub mod monitor;
pub mod ratelimit;
pub mod redis_store;
pub mod stand_ins;
pub mod startup;
pub mod state;
pub mod tokens;
pub mod verification;
pub mod write;

pub use config::Config;
pub use startup::Application;

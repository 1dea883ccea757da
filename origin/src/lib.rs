//! `users-origin`: the origin tier of the user-management API.
//!
//! An axum service over PostgreSQL. [`Application::build`] reads a [`Config`], applies the
//! migrations, loads or creates the token keys, ensures the bootstrap admin and binds; then
//! [`Application::run_until_stopped`] serves until SIGTERM.
//!
//! - [`routes`]: one module per resource (`auth`, `users`, `roles`, `ops`).
//! - [`db`]: queries, one module per table.
//! - [`extract`]: extractors that turn hostile input into typed values or problems.
//! - [`error`]: the one error type and its RFC 9457 rendering.
//! - [`hashing`]: Argon2id in a bounded pool; [`keys`]: signing keys; [`mail`]: the outbox sender.

pub mod cache;
pub mod client;
pub mod config;
pub mod db;
pub mod edge_feed;
pub mod error;
pub mod extract;
pub mod hashing;
pub mod keys;
pub mod mail;
pub mod metrics;
pub mod openapi;
pub mod ratelimit;
pub mod redis_store;
pub mod routes;
pub mod startup;
pub mod state;

pub use config::Config;
pub use startup::Application;

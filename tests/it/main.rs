//! End-to-end tests of the origin: each test starts the real service in-process on a random
//! port, against a fresh PostgreSQL database cloned from a migrated template, with an in-process
//! SMTP sink catching its mail.
//!
//! - [`helpers`]: the harness (`spawn_app`, `TestApp`, `TestUser`, problem and JWT helpers).
//! - [`smtp`]: the SMTP sink and reset-token extraction from mail.
//! - one module per area: [`auth`] (register, login, refresh, logout), [`tokens`] (forged and
//!   rotated access tokens), [`users`] (self-service and admin CRUD), [`access`] (BOLA and
//!   privilege escalation), [`revocation`], [`roles`], [`reset`] (password reset by mail),
//!   [`pagination`] (keyset pages and filters), [`concurrency`], [`errors`] (the problem
//!   vocabulary, pinned with snapshots), [`audit`] and [`ops`] (probes, config, bootstrap,
//!   sabotage).
//!
//! Every test runs in its own process under cargo-nextest and owns its database, so tests are
//! independent of order and of each other.

mod access;
mod audit;
mod auth;
mod concurrency;
mod errors;
mod helpers;
mod ops;
mod pagination;
mod reset;
mod revocation;
mod roles;
mod smtp;
mod tokens;
mod users;

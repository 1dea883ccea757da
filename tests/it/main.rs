//! End-to-end tests of the origin: each test starts the real service in-process on a random
//! port, against a fresh PostgreSQL database cloned from a migrated template, with an in-process
//! SMTP sink catching its mail.
//!
//! - [`helpers`]: the harness (`spawn_app`, `TestApp`, `TestUser`) and the request API every
//!   suite and the edge scenarios share: `app.as_user(&user).get_user(id).await` gives a
//!   [`helpers::Reply`] with its assertions (`expect_json(200)`, `assert_problem(404, …)`).
//! - [`testdb`]: per-test databases cloned from the migrated template, and Redis prefixes
//!   (over `users-harness`).
//! - [`smtp`]: the SMTP sink and reset-token extraction from mail.
//! - [`jwt`]: decoding and hand-signing JWTs for the forgery tests.
//! - one module per area: [`register`]; [`auth`] (login, refresh, logout); [`tokens`] (forged
//!   and rotated access tokens); [`users`] (read, create, delete); [`updates`] (PATCH, PUT,
//!   password change); [`access`] (BOLA, privilege escalation); [`revocation`]; [`roles`];
//!   [`reset`] (password reset by mail); [`email`] (e-mail verification, resend, e-mail
//!   change); [`pagination`] (keyset pages; its filters);
//!   [`concurrency`]; [`errors`] (the problem vocabulary, pinned with snapshots); [`hostile`]
//!   (NUL, undecodable strings and every parameter swept with hostile values; security
//!   headers); [`audit`];
//!   [`ops`] (probes, config, bootstrap, replicas, sabotage); [`nginx`] (the committed nginx
//!   config in front of two replicas: spreading, request ids, body limit, failover).
//! - [`cache`] (the user-view cache across replicas and races); [`ratelimit`] (quotas,
//!   login lock-outs; trusted client addresses), both also on a Redis Cluster; [`cluster`] (an
//!   origin whose cluster is down at start, comes up, goes and returns); [`observability`]
//!   (metrics, the `/v1` alias, request ids); [`faults`] (Redis and PostgreSQL cut, hanging or
//!   killed, through the TCP [`proxy`]); [`scrape`] reads `/metrics`; [`alerting`] (the
//!   committed alerting rules in a real Prometheus scraping an origin whose Redis is cut).
//! - [`edge`]: the edge tier (the Cloudflare Worker under `wrangler dev`, the Spin component
//!   in the wasmtime test host) in front of a real origin; the scenarios are written once for
//!   every edge runtime.
//!
//! Every test runs in its own process under cargo-nextest and owns its database, so tests are
//! independent of order and of each other.

mod access;
mod alerting;
mod audit;
mod auth;
mod cache;
mod cluster;
mod concurrency;
mod edge;
mod email;
mod errors;
mod export;
mod faults;
mod helpers;
mod hostile;
mod idempotency;
mod import;
mod jwt;
mod leases;
mod legacy;
mod mfa;
mod nginx;
mod oauth;
mod observability;
mod ops;
mod pagination;
mod proxy;
mod ratelimit;
mod register;
mod replicas;
mod reset;
mod revocation;
mod roles;
mod scrape;
mod seed;
mod sessions;
mod smtp;
mod testdb;
mod tokens;
mod updates;
mod users;

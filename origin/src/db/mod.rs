//! Queries, one module per table. Each query is a small free function over
//! `&impl GenericClient`, so it serves a pooled client and a transaction alike.

pub mod audit;
pub mod events;
pub mod outbox;
pub mod roles;
pub mod tokens;
pub mod users;

pub use deadpool_postgres::GenericClient;

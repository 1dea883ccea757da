//! Queries, one module per table. Each query is a small free function over
//! `&impl GenericClient`, so it serves a pooled client and a transaction alike. The queries on
//! hot paths (authorising a request, reading a user, logging in) use statements prepared once
//! per connection (`prepare_cached`): one round trip per query instead of two, and no
//! re-planning.

pub mod audit;
pub mod email;
pub mod events;
pub mod export;
pub mod grants;
pub mod idempotency;
pub mod imports;
pub mod mfa;
pub mod outbox;
pub mod principals;
pub mod roles;
pub mod sessions;
pub mod tokens;
pub mod users;

pub use deadpool_postgres::GenericClient;

//! The test side of the throw-away stack in `users-harness`: a database cloned per test from
//! the template migrated once per migration set, and the per-test Redis key prefixes, whose
//! keys are deleted with the database ([`Cleanup`]). The server URLs come from
//! `TEST_DATABASE_URL` and `TEST_REDIS_URL` (defaults: the local servers); a server that does
//! not answer fails the test here, with what was tried.

pub use users_harness::Cleanup;
pub use users_harness::keys::redis_url;
pub use users_harness::postgres::database_url;

/// Creates a fresh database `users_test_<uuid>` from the template; returns its name.
pub async fn create_test_database() -> String {
    users_harness::postgres::clone_template("users_test_")
        .await
        .unwrap_or_else(|e| panic!("create the test database from the template: {e:#}"))
}

/// Connects to database `name` on the test server.
pub async fn connect(name: &str) -> tokio_postgres::Client {
    users_harness::postgres::connect(name)
        .await
        .unwrap_or_else(|e| panic!("connect to database {name}: {e:#}"))
}

/// A connection to the test Redis.
pub async fn redis_connection() -> redis::aio::MultiplexedConnection {
    users_harness::keys::connection(&redis_url())
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
}

/// Every key on the test Redis that starts with `prefix`.
pub async fn redis_keys(conn: &mut redis::aio::MultiplexedConnection, prefix: &str) -> Vec<String> {
    users_harness::keys::keys(conn, prefix)
        .await
        .expect("SCAN the test Redis")
}

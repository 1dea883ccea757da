//! The stack the end-to-end tests (`users-tests`) and the load benchmarks (`users-bench`) run
//! against, written once. Dev-only: nothing here ships.
//!
//! - [`postgres`]: the server (`TEST_DATABASE_URL`), connections, creating and dropping
//!   databases, the migrated template and fresh databases cloned from it and [`Cleanup`], which removes them.
//! - [`keys`]: the Redis server (`TEST_REDIS_URL`) and deleting the keys under a prefix.
//! - [`origin`]: the origin in-process on a given runtime ([`InProcessOrigin`]), configured
//!   from a map of its variables.
//! - [`process`]: a child process leading its own process group, stopped as a group (the edge
//!   runtimes of the tests and the benchmarks).

pub mod keys;
pub mod origin;
pub mod postgres;
pub mod process;

pub use origin::InProcessOrigin;
pub use postgres::Cleanup;

//! The load benchmarks of the users service, shared by the binaries: `users-bench` (the
//! origin: [`origin_bench`]), `users-bench-edge` (the edge runtimes in front of it:
//! [`edge_bench`]) and `users-bench-transfer` (import and export: [`transfer_bench`]). `scripts/bench.sh` runs them.
//!
//! Lower layers first; each module imports only those above it in this list:
//! - [`figures`]: rounding and medians.
//! - [`section`]: a marked section of a markdown report, rewritten in place.
//! - [`cpu`]: where the CPU went during a run, from `/proc`.
//! - [`load`]: the HTTP load generator (closed and open loop) and the figures of a run.
//! - [`host`]: the machine and the checkout: cores, tokio runtimes and how a run ends (finished,
//!   panicked, interrupted), and what the reports say of the machine.
//! - [`stack`]: PostgreSQL, Redis, the in-process origin and the edge processes, and what a
//!   run creates in them and removes at the end.
//! - [`seed`]: the seeded users.
//! - [`origin_bench`], [`edge_bench`] and [`transfer_bench`]: the benchmarks, none using
//!   another.

pub mod cpu;
pub mod edge_bench;
pub mod figures;
pub mod host;
pub mod load;
pub mod origin_bench;
pub mod section;
pub mod seed;
pub mod stack;
pub mod transfer_bench;

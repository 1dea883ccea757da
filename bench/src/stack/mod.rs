//! The stack a benchmark runs against: the PostgreSQL server and Redis on this machine, with the
//! database, Redis prefix and data directory one run creates and removes at the end
//! ([`services`]); the origin started in-process ([`origin`], which uses `services`); the edge
//! runtimes started as child processes ([`edge`], which stands alone); the seed's stack, for
//! the comparison ([`seed_stack`], which uses `services`).

pub mod edge;
pub mod origin;
pub mod seed_stack;
pub mod services;

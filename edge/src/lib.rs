//! `users-edge`: the edge tier of the user-management API.
//!
//! [`pipeline::Edge`] turns an `http::Request<Bytes>` into an `http::Response<Bytes>`:
//! request id → header hygiene → CORS → token verification (the `users-core` verifier, keys
//! from configuration or the origin's JWKS) → revocation check → rate limit → cached profile
//! read → forward to the origin. It talks to the world only through the small traits in
//! [`ports`], so everything but SDK glue runs in host tests against in-memory fakes.
//!
//! Adapters are selected by target: `wasm32-unknown-unknown` builds the Cloudflare Worker
//! ([`cloudflare`]), `wasm32-wasip2` the Spin component (`spin`); a host build compiles the
//! pipeline alone.

pub mod config;
pub mod pipeline;
pub mod ports;

#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
pub mod cloudflare;

#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
pub mod spin;

pub use config::EdgeConfig;
pub use pipeline::Edge;

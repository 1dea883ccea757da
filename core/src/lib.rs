//! `users-core`: the shared domain of the user-management API.
//!
//! Everything here is pure: no I/O, no clock, no async runtime, so it builds for the host,
//! `wasm32-unknown-unknown` (Cloudflare) and `wasm32-wasip2` (Spin), and both tiers agree on
//! what a valid username is, what a token means and how an error looks.
//!
//! - [`fields`]: newtypes that parse once (username, email, display name, role name).
//! - [`password`]: the password policy (length, not derived from identity, zxcvbn strength).
//! - [`perms`]: permissions and the built-in roles.
//! - [`token`]: access-token claims, signing and verification (EdDSA, algorithm pinned).
//! - [`problem`]: the error vocabulary with stable codes and the RFC 9457 body.
//! - [`patch`]: JSON Merge Patch (RFC 7396).
//! - [`cursor`]: opaque keyset-pagination cursors.
//! - [`model`]: the JSON views of users and roles.
//! - [`ratelimit`]: GCRA quotas and login-failure lock-outs.
//! - [`text`]: the NUL and UTF-8 rules for untrusted strings, and strict query decoding.
//! - [`wire`]: the edge↔origin contract: header names, body limit, request-id and bearer rules,
//!   rate-limit headers, the revocation echo and feed.

pub mod cursor;
pub mod fields;
pub mod model;
#[cfg(feature = "password-policy")]
pub mod password;
pub mod patch;
pub mod perms;
pub mod problem;
pub mod ratelimit;
pub mod text;
pub mod token;
pub mod wire;

/// Seconds since the Unix epoch. Time is always passed in, never read, inside `core`.
pub type UnixSeconds = i64;

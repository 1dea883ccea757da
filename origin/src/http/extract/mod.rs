//! Request extractors that turn hostile input into typed values or problem responses.
//!
//! - [`body`]: JSON bodies ([`JsonBody`], [`OptionalJsonBody`]) and the raw readers under them.
//! - [`auth`]: [`Auth`], the authenticated caller, and its permission checks.
//! - [`path`]: [`UserId`], a typed `{id}`, and [`RoleNamePath`], a typed `{name}`.
//! - [`meta`]: the request's id and client address ([`crate::db::audit::Ctx`]), and
//!   [`FromEdge`] / [`ClientIp`] set by the client middleware.

pub mod auth;
pub mod body;
pub mod meta;
pub mod path;

pub use auth::Auth;
pub use body::{
    BODY_LIMIT, JsonBody, OptionalJsonBody, from_value, media_type, parse_json, parse_json_uniform,
    read_body,
};
pub use meta::{ClientIp, FromEdge, LoginOrigin, login_origin};
pub use path::{FactorIdPath, RoleNamePath, SessionIdPath, UserId};

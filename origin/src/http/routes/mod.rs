//! The routes, one module per resource, each with its `router()` and its OpenAPI `Docs`;
//! [`crate::http::router`] merges them.

pub mod admin;
pub mod auth;
pub mod internal;
pub mod ops;
pub mod roles;
pub mod users;

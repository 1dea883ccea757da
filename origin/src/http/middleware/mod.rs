//! The middleware of the layer stack in [`crate::http::router`], one file each.

pub mod client;
pub mod deadline;
pub mod metrics;
pub mod problem;
pub mod request_id;
pub mod revocations;
pub mod security;
pub mod settle;

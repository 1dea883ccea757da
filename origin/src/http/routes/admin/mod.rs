//! `/admin/*`: moving accounts in (SPEC §10).
//!
//! - [`import`]: `POST /admin/users/import`, NDJSON or a JSON array of accounts.
//! - [`export`]: `GET /admin/users/export`, every account as NDJSON.

pub mod export;
pub mod import;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use users_core::wire;

use crate::state::AppState;

/// The OpenAPI description of these routes.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    paths(import::import_users, export::export_users),
    components(schemas(
        crate::import::Row,
        crate::import::Line,
        crate::import::Outcome,
        crate::import::Summary,
        import::SummaryLine,
        import::ReportLine
    ))
)]
pub struct Docs;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            wire::IMPORT_PATH,
            post(import::import_users).layer(DefaultBodyLimit::max(wire::IMPORT_BODY_MAX)),
        )
        .route("/admin/users/export", get(export::export_users))
}

//! `/admin/*`: moving accounts in (SPEC §10).
//!
//! - [`import`]: `POST /admin/users/import`, NDJSON or a JSON array of accounts.

pub mod import;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::post;
use users_core::wire;

use crate::state::AppState;

/// The OpenAPI description of these routes.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    paths(import::import_users),
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
    Router::new().route(
        wire::IMPORT_PATH,
        post(import::import_users).layer(DefaultBodyLimit::max(wire::IMPORT_BODY_MAX)),
    )
}

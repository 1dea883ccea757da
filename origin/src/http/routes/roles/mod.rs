//! `/roles`: role-based access control with custom roles. Built-in roles are fixed.
//!
//! - [`read`]: `GET /roles`, `GET /roles/{name}` (`roles:read`).
//! - [`write`]: create, merge-patch and delete (`roles:manage`); a change of a role's
//!   permissions revokes its holders' access tokens.

pub mod read;
pub mod write;

use axum::Router;
use axum::routing::get;

use crate::state::AppState;

/// The OpenAPI description of these routes.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    paths(
        read::list_roles,
        read::get_role,
        write::create_role,
        write::update_role,
        write::delete_role
    ),
    components(schemas(read::RoleList))
)]
pub struct Docs;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/roles", get(read::list_roles).post(write::create_role))
        .route(
            "/roles/{name}",
            get(read::get_role)
                .patch(write::update_role)
                .delete(write::delete_role),
        )
}

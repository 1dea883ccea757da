//! `GET /admin/users/export` (`users:read`): every account as NDJSON import rows, from one
//! snapshot, streamed with constant memory ([`crate::export`]). `include=password_hash` adds
//! the hashes (`users:export_secrets`); every export is audited (`users.exported`).

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use users_core::perms::Permission;

use crate::db::{self, audit::Event};
use crate::export;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::Auth;
use crate::http::routes::admin::import::NDJSON;
use crate::http::validate::non_empty_query;
use crate::state::AppState;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// `password_hash`: each line carries the account's hash (needs `users:export_secrets`).
    #[param(pattern = "^password_hash$")]
    include: Option<String>,
}

/// `GET /admin/users/export`.
#[utoipa::path(
    get, path = "/admin/users/export", tag = "admin", security(("bearer" = [])),
    params(ExportQuery),
    responses((status = 200, description = "One import row per account (NDJSON), in creation order, from one snapshot",
        body = Vec<crate::import::Row>, content_type = "application/x-ndjson"))
)]
pub async fn export_users(
    State(state): State<AppState>,
    auth: Auth,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    auth.require(Permission::UsersRead)?;
    let query: ExportQuery = non_empty_query(raw.as_deref())?;
    let with_hash = match query.include.as_deref() {
        None => false,
        Some("password_hash") => true,
        Some(_) => return Err(ApiError::validation("include", "must be password_hash")),
    };
    if with_hash {
        auth.require(Permission::UsersExportSecrets)?;
    }
    let event = Event::new("users.exported", Some(auth.user_id), None)
        .with(json!({"password_hash": with_hash}));
    db::audit::record(&state.db.get().await?, &auth.ctx, event).await?;
    let client = state.db.get().await?;
    export::begin(&client).await?;
    let body = Body::from_stream(export::stream(client, with_hash));
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, NDJSON)], body).into_response())
}

//! Operations: liveness, readiness, the public keys and the authorization server metadata.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use users_core::wire;

use crate::http::error::ApiError;
use crate::monitor;
use crate::state::AppState;

/// The OpenAPI description of these routes.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    paths(healthz, readyz, jwks, server_metadata, scrape, openapi_json),
    components(schemas(ServerMetadata))
)]
pub struct Docs;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route(wire::JWKS_PATH, get(jwks))
        .route(wire::OAUTH_METADATA_PATH, get(server_metadata))
        .route("/metrics", get(scrape))
}

/// Alive: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive", body = Object)))]
async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready: PostgreSQL answers within two seconds and, when configured, so does Redis.
/// `checks.notifications` says whether the replica follows the change notifications
/// (`following`: reads from memory) or checks every request against PostgreSQL (`fallback: why`).
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "Ready", body = Object)))]
async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    monitor::check_postgres(&state)
        .await
        .map_err(|e| ApiError::Unavailable(format!("postgres: {e}")))?;
    let mut checks = json!({"postgres": "ok"});
    if let Some(redis) = &state.redis {
        if !redis.ping().await {
            return Err(ApiError::Unavailable("redis: no answer".into()));
        }
        checks["redis"] = json!("ok");
    }
    // Still ready while not following: every request is checked against PostgreSQL instead.
    checks["notifications"] = match state.follower.memo.fallback_reason() {
        None => json!("following"),
        Some(reason) => json!(format!("fallback: {reason}")),
    };
    Ok(Json(json!({"status": "ready", "checks": checks})))
}

#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth", responses((status = 200, description = "Public keys that verify access tokens", body = Object)))]
async fn jwks(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CACHE_CONTROL, "public, max-age=300")],
        Json(state.keys.verify.to_jwks()),
    )
}

/// What an OAuth2 client needs to know of this server (RFC 8414 §2).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ServerMetadata {
    /// The `iss` of every access token.
    issuer: String,
    /// `POST /auth/login`, the token endpoint.
    token_endpoint: String,
    /// The public keys that verify access tokens.
    jwks_uri: String,
    /// `password` and `refresh_token`.
    grant_types_supported: Vec<&'static str>,
    /// `none`: every client is public.
    token_endpoint_auth_methods_supported: Vec<&'static str>,
    /// Empty: there is no authorization endpoint.
    response_types_supported: Vec<&'static str>,
    /// The interactive docs.
    service_documentation: String,
}

/// `GET /.well-known/oauth-authorization-server`: the authorization server metadata, its
/// addresses under `PUBLIC_URL`.
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "auth", responses((status = 200, description = "RFC 8414 authorization server metadata", body = ServerMetadata)))]
async fn server_metadata(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    let base = state.config.public_url.trim_end_matches('/');
    let metadata = ServerMetadata {
        issuer: state.config.tokens.issuer.clone(),
        token_endpoint: format!("{base}{}", wire::TOKEN_PATH),
        jwks_uri: format!("{base}{}", wire::JWKS_PATH),
        grant_types_supported: vec!["password", "refresh_token"],
        token_endpoint_auth_methods_supported: vec!["none"],
        response_types_supported: vec![],
        service_documentation: format!("{base}/docs"),
    };
    (
        [(axum::http::header::CACHE_CONTROL, "public, max-age=300")],
        Json(metadata),
    )
}

/// `GET /openapi.json`: this document (served by the docs' router; described here).
#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
#[allow(dead_code)]
fn openapi_json() {}

/// `GET /metrics`: the Prometheus text exposition, with the hashing-queue and pool gauges read
/// now. The edge does not forward it: scrape each origin replica directly.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text exposition format 0.0.4", body = String, content_type = "text/plain")))]
async fn scrape(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    let m = &state.metrics;
    m.hash_queue_depth.set(state.hasher.in_flight() as i64);
    let pool = state.db.status();
    m.db_pool_connections.set(pool.size as i64);
    m.db_pool_available.set(pool.available as i64);
    m.db_pool_waiters.set(pool.waiting as i64);
    // Accounts still to be rehashed; unchanged when PostgreSQL does not answer.
    let hashing = &state.config.hashing;
    let current = format!("m={},t={},p={}", hashing.m_kib, hashing.t, hashing.p);
    if let Ok(client) = state.db.get().await
        && let Ok(n) = crate::db::users::count_legacy_hashes(&client, &current).await
    {
        m.legacy_hashes.set(n);
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.render(),
    )
}

//! Operations: liveness, readiness and the public keys.

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
#[openapi(paths(healthz, readyz, jwks))]
pub struct Docs;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route(wire::JWKS_PATH, get(jwks))
        .route("/metrics", get(scrape))
}

/// Alive: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive", body = Object)))]
async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready: PostgreSQL answers within two seconds and, when configured, so does Redis.
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
    Ok(Json(json!({"status": "ready", "checks": checks})))
}

#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth", responses((status = 200, description = "Public keys that verify access tokens", body = Object)))]
async fn jwks(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CACHE_CONTROL, "public, max-age=300")],
        Json(state.keys.verify.to_jwks()),
    )
}

/// `GET /metrics`: the Prometheus text exposition, with the hashing-queue and pool gauges read
/// now.
async fn scrape(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    let m = &state.metrics;
    m.hash_queue_depth.set(state.hasher.in_flight() as i64);
    let pool = state.db.status();
    m.db_pool_connections.set(pool.size as i64);
    m.db_pool_available.set(pool.available as i64);
    m.db_pool_waiters.set(pool.waiting as i64);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.render(),
    )
}

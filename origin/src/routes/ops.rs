//! Operations: liveness, readiness and the public keys.

use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/.well-known/jwks.json", get(jwks))
}

/// Alive: the process answers.
async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready: PostgreSQL answers within two seconds.
async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let check = async {
        let client = state.db.get().await?;
        client.query_one("SELECT 1", &[]).await?;
        Ok::<_, ApiError>(())
    };
    match tokio::time::timeout(Duration::from_secs(2), check).await {
        Ok(Ok(())) => Ok(Json(
            json!({"status": "ready", "checks": {"postgres": "ok"}}),
        )),
        Ok(Err(e)) => Err(ApiError::Unavailable(format!("postgres: {e}"))),
        Err(_) => Err(ApiError::Unavailable("postgres: timed out".into())),
    }
}

async fn jwks(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CACHE_CONTROL, "public, max-age=300")],
        Json(state.keys.verify.to_jwks()),
    )
}

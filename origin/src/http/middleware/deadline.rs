//! The request deadline: `503` + `Retry-After` when a request runs past `REQUEST_TIMEOUT_MS`.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::http::error::ApiError;
use crate::state::AppState;

/// Answers `503` + `Retry-After` when a request runs past `REQUEST_TIMEOUT_MS`.
pub async fn deadline(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limit = std::time::Duration::from_millis(state.config.request_timeout_ms);
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => ApiError::Unavailable("request deadline exceeded".into()).into_response(),
    }
}

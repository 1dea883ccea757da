//! Everything that knows HTTP (axum): the router and its layer stack, extractors, middleware,
//! the error type and its rendering, the OpenAPI document, and one module of routes per
//! resource. Nothing below this module knows a request or a status code.

pub mod error;
pub mod extract;
pub mod idempotency;
pub mod middleware;
pub mod openapi;
pub mod respond;
pub mod routes;
pub mod validate;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderName;
use axum::response::IntoResponse;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use users_core::wire;

use crate::http::error::ApiError;
use crate::http::extract::BODY_LIMIT;
use crate::http::middleware::{
    client, deadline, metrics, problem, request_id, revocations, security, settle,
};
use crate::state::AppState;

/// The whole API. Layers are listed innermost first: a request passes them bottom-up, its
/// answer top-down.
pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static(wire::REQUEST_ID);
    let api = Router::new()
        .merge(routes::auth::router())
        .merge(routes::admin::router())
        .merge(routes::users::router())
        .merge(routes::roles::router())
        .merge(routes::ops::router())
        .merge(routes::internal::router())
        .merge(openapi::router());
    // Every route also answers under /v1; the unversioned paths are the v1 alias.
    Router::new()
        .merge(api.clone())
        .nest("/v1", api)
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        // Bodies over the limit are refused (413) before a handler reads them.
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        // Framework rejections become problem bodies.
        .layer(axum::middleware::map_response(problem::problem_for_every_error))
        // A panicking handler answers a 500 problem; the process keeps serving.
        .layer(CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
            ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()
        }))
        // One span per request, carrying its request id.
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            let id = req.headers().get(wire::REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default();
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        // REQUEST_TIMEOUT_MS: a request running longer answers 503.
        .layer(axum::middleware::from_fn_with_state(state.clone(), deadline::deadline))
        // A request that may have written answers once this replica's memory heard its changes.
        .layer(axum::middleware::from_fn_with_state(state.clone(), settle::settle_writes))
        // Revocations an edge request caused are echoed to that edge.
        .layer(axum::middleware::from_fn_with_state(state.clone(), revocations::echo_revocations))
        // Client address, edge secret, early overload refusal and the per-IP limit on /auth/*.
        .layer(axum::middleware::from_fn_with_state(state.clone(), client::client_context))
        // Request counts and latency by route template.
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        // The request id is echoed on the answer ...
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        // ... generated when absent ...
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        // ... and a malformed client id is dropped first.
        .layer(axum::middleware::map_request(request_id::drop_malformed_request_id))
        // Security headers and `no-store` on every answer, refusals of the layers above included.
        .layer(axum::middleware::from_fn(security::security_headers))
        .with_state(state)
}

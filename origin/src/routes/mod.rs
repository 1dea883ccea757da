//! HTTP routes: one `router()` per resource, merged in [`router`].

pub mod auth;
pub mod ops;
pub mod roles;
pub mod users;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use users_core::problem::FieldProblem;

use crate::error::ApiError;
use crate::extract::BODY_LIMIT;
use crate::state::AppState;

/// The whole API.
pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let api = Router::new()
        .merge(auth::router())
        .merge(users::router())
        .merge(roles::router())
        .merge(ops::router())
        .merge(crate::openapi::router())
        .merge(crate::edge_feed::router());
    // Every route also answers under /v1; the unversioned paths are the v1 alias.
    Router::new()
        .merge(api.clone())
        .nest("/v1", api)
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::map_response(problem_for_every_error))
        .layer(CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
            ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()
        }))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(axum::middleware::from_fn_with_state(state.clone(), deadline))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::edge_feed::echo_revocations))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::client::client_context))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::metrics::track))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(axum::middleware::map_request(drop_malformed_request_id))
        .with_state(state)
}

/// Answers `503` + `Retry-After` when a request runs past `REQUEST_TIMEOUT_MS`.
async fn deadline(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let limit = std::time::Duration::from_millis(state.config.request_timeout_ms);
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => ApiError::Unavailable("request deadline exceeded".into()).into_response(),
    }
}

/// Longest client-supplied request id kept.
const REQUEST_ID_MAX: usize = 128;

/// Drops a client `X-Request-Id` that is not well-formed (1–128 of `[A-Za-z0-9._:-]`), so
/// one is generated instead and logs never carry hostile text.
async fn drop_malformed_request_id(mut req: axum::extract::Request) -> axum::extract::Request {
    let well_formed = req.headers().get("x-request-id").is_some_and(|v| {
        let b = v.as_bytes();
        !b.is_empty()
            && b.len() <= REQUEST_ID_MAX
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-'))
    });
    if !well_formed {
        req.headers_mut().remove("x-request-id");
    }
    req
}

/// Rewrites any error response that is not already a problem (framework rejections, such as
/// an undecodable path segment) into one, so clients only ever see RFC 9457 bodies.
async fn problem_for_every_error(res: Response) -> Response {
    let status = res.status();
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == users_core::problem::PROBLEM_JSON.as_bytes());
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return res;
    }
    let error = match status.as_u16() {
        404 => ApiError::NotFound,
        405 => ApiError::MethodNotAllowed,
        413 => ApiError::PayloadTooLarge,
        415 => ApiError::UnsupportedMediaType("Unsupported media type.".into()),
        422 => ApiError::validation("body", "could not be processed"),
        400..=499 => ApiError::Malformed("The request could not be read.".into()),
        _ => ApiError::Internal(anyhow::anyhow!(
            "error response {status} without a problem body"
        )),
    };
    error.into_response()
}

/// Collects field problems so one response lists every bad field.
#[derive(Debug, Default)]
pub struct Check {
    errors: Vec<FieldProblem>,
}

impl Check {
    /// A required field.
    pub fn required<'a>(&mut self, name: &str, value: Option<&'a str>) -> Option<&'a str> {
        if value.is_none() {
            self.errors.push(FieldProblem::new(name, "is required"));
        }
        value
    }

    /// Keeps the parsed value, or records why it failed.
    pub fn field<T, E: std::fmt::Display>(
        &mut self,
        name: &str,
        result: Result<T, E>,
    ) -> Option<T> {
        result
            .map_err(|e| self.errors.push(FieldProblem::new(name, e)))
            .ok()
    }

    pub fn fail(&mut self, name: &str, detail: impl std::fmt::Display) {
        self.errors.push(FieldProblem::new(name, detail));
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}

/// A JSON response with an `ETag` (and optional `Location`).
pub fn with_etag(
    status: axum::http::StatusCode,
    etag: &str,
    body: impl serde::Serialize,
) -> Response {
    let mut res = (status, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(etag) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res
}

/// Whether an `If-None-Match` / `If-Match` header value lists `etag` (or `*`).
pub fn etag_matches(header_value: &str, etag: &str) -> bool {
    header_value
        .split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_lists_are_matched() {
        assert!(etag_matches("\"a-1\"", "\"a-1\""));
        assert!(etag_matches("\"x\", W/\"a-1\"", "\"a-1\""));
        assert!(etag_matches("*", "\"a-1\""));
        assert!(!etag_matches("\"a-2\"", "\"a-1\""));
    }
}

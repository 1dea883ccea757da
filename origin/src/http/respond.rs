//! Building answers: JSON with an `ETag`, `201 Created` with `Location`, conditional reads
//! (`304 Not Modified`), `202 Accepted` with work after the answer, and the `RateLimit-*`
//! headers of a quota decision.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use users_core::model::UserView;
use users_core::ratelimit::{Decision, Quota};
use users_core::wire;

use crate::memo::ViewBytes;
use crate::ratelimit::Scope;

/// `202 {"detail": detail}` for a request whose work (`work`, when the request named
/// something to work on) runs on its own task after the answer, so the answer's body and
/// timing say nothing about what the work found. A failure is logged as `what` failed.
pub fn accepted_then<F, E>(detail: &'static str, what: &'static str, work: Option<F>) -> Response
where
    F: std::future::Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    if let Some(work) = work {
        spawn_after(what, work);
    }
    accepted(detail)
}

/// `202 {"detail": detail}`.
pub fn accepted(detail: &'static str) -> Response {
    let body = serde_json::json!({ "detail": detail });
    (StatusCode::ACCEPTED, axum::Json(body)).into_response()
}

/// Runs `work` on its own task; a failure is logged as `what` failed.
pub fn spawn_after<F, E>(what: &'static str, work: F)
where
    F: std::future::Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    tokio::spawn(async move {
        if let Err(e) = work.await {
            tracing::warn!(error = %e, "{what} failed");
        }
    });
}

/// A token answer (RFC 6749 §5.1): the pair as JSON, `Cache-Control: no-store` and
/// `Pragma: no-cache`.
#[derive(Debug)]
pub struct TokenAnswer(pub users_core::model::TokenResponse);

impl IntoResponse for TokenAnswer {
    fn into_response(self) -> Response {
        let mut res = axum::Json(self.0).into_response();
        let h = res.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        res
    }
}

/// A JSON response with an `ETag`.
pub fn with_etag(status: StatusCode, etag: &str, body: impl serde::Serialize) -> Response {
    let mut res = (status, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(etag) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res
}

pub use users_core::wire::etag_matches;

/// `201 Created` with `Location` and `ETag`.
pub fn created(view: &UserView) -> Response {
    let mut res = with_etag(StatusCode::CREATED, &view.etag(), view);
    if let Ok(v) = HeaderValue::from_str(&format!("/users/{}", view.id)) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// A read of `view`: `304` when `If-None-Match` lists its `ETag`, else `200`; never stored by
/// shared caches.
pub fn read_response(view: &ViewBytes, headers: &HeaderMap) -> Response {
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| etag_matches(v, &view.etag));
    let mut res = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = (StatusCode::OK, view.body.clone()).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    };
    if let Ok(v) = HeaderValue::from_str(&view.etag) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(wire::PROFILE_CACHE_CONTROL),
    );
    res
}

/// Writes `RateLimit-Policy` and `RateLimit` (IETF httpapi draft) for a quota decision, and
/// `Retry-After` when it refused.
pub fn quota_headers(headers: &mut HeaderMap, scope: Scope, quota: Quota, d: &Decision) {
    let policy = wire::rate_limit_policy(scope.as_str(), quota);
    let state = wire::rate_limit(scope.as_str(), d);
    if let (Ok(p), Ok(s)) = (
        HeaderValue::from_str(&policy),
        HeaderValue::from_str(&state),
    ) {
        headers.insert(wire::RATELIMIT_POLICY, p);
        headers.insert(wire::RATELIMIT, s);
    }
    if !d.allowed {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(d.retry_after_secs()));
    }
}

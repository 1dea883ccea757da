//! Problem responses made at the edge: byte-for-byte the bodies the origin sends.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use users_core::problem::{ErrorCode, PROBLEM_JSON, Problem};

/// A problem response.
pub fn problem(code: ErrorCode, status: StatusCode) -> Response<Bytes> {
    let body =
        serde_json::to_vec(&Problem::new(code, status.as_u16(), code.detail())).unwrap_or_default();
    let mut res = Response::new(Bytes::from(body));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    res
}

pub fn invalid_token() -> Response<Bytes> {
    let mut res = problem(ErrorCode::InvalidToken, StatusCode::UNAUTHORIZED);
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Bearer error="invalid_token""#),
    );
    res
}

pub fn unavailable() -> Response<Bytes> {
    let mut res = problem(ErrorCode::Unavailable, StatusCode::SERVICE_UNAVAILABLE);
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    res
}

pub fn rate_limited(retry_after_secs: i64) -> Response<Bytes> {
    let detail = format!("Too many requests; retry in {retry_after_secs} s.");
    let body =
        serde_json::to_vec(&Problem::new(ErrorCode::RateLimited, 429, detail)).unwrap_or_default();
    let mut res = Response::new(Bytes::from(body));
    *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    res.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(retry_after_secs.max(1)),
    );
    res
}

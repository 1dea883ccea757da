//! Problem responses made at the edge: byte-for-byte the bodies the origin sends.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use users_core::problem::{ErrorCode, PROBLEM_JSON, Problem};
use users_core::wire;

/// A problem response of kind `code`, with its fixed detail.
pub fn problem(code: ErrorCode) -> Response<Bytes> {
    with_detail(code, code.detail().to_owned())
}

/// A problem response of kind `code` with `detail`, answered with [`ErrorCode::status`].
fn with_detail(code: ErrorCode, detail: String) -> Response<Bytes> {
    let status = code.status();
    let body = serde_json::to_vec(&Problem::new(code, status, detail)).unwrap_or_default();
    let mut res = Response::new(Bytes::from(body));
    *res.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    if let Some(challenge) = wire::www_authenticate(code) {
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
    }
    if let Some(secs) = wire::retry_after_secs(code) {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    res
}

pub fn invalid_token() -> Response<Bytes> {
    problem(ErrorCode::InvalidToken)
}

pub fn unavailable() -> Response<Bytes> {
    problem(ErrorCode::Unavailable)
}

pub fn rate_limited(retry_after_secs: i64) -> Response<Bytes> {
    let detail = wire::rate_limited_detail(retry_after_secs);
    let mut res = with_detail(ErrorCode::RateLimited, detail);
    res.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(retry_after_secs.max(1)),
    );
    res
}

//! Every error answer is a problem: framework rejections (such as an undecodable path segment)
//! are rewritten into RFC 9457 bodies, so clients never see anything else.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use users_core::problem::PROBLEM_JSON;

use crate::http::error::ApiError;

/// Rewrites any error response that is not already a problem into one.
pub async fn problem_for_every_error(res: Response) -> Response {
    let status = res.status();
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
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

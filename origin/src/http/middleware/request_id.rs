//! Client-supplied request ids: kept only when well-formed (`wire::is_valid_request_id`), so
//! logs never carry hostile text.

use axum::extract::Request;
use users_core::wire;

/// Drops a client `X-Request-Id` that is not well-formed, so one is generated instead.
pub async fn drop_malformed_request_id(mut req: Request) -> Request {
    let well_formed = req
        .headers()
        .get(wire::REQUEST_ID)
        .is_some_and(|v| wire::is_valid_request_id(v.as_bytes()));
    if !well_formed {
        req.headers_mut().remove(wire::REQUEST_ID);
    }
    req
}

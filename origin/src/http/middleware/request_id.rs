//! Client-supplied request ids: kept only when well-formed, so logs never carry hostile text.

use axum::extract::Request;

/// Longest client-supplied request id kept.
const REQUEST_ID_MAX: usize = 128;

/// Drops a client `X-Request-Id` that is not well-formed (1–128 of `[A-Za-z0-9._:-]`), so
/// one is generated instead.
pub async fn drop_malformed_request_id(mut req: Request) -> Request {
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

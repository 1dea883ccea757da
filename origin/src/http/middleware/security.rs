//! Security headers on every answer, the same as the edge adds (`users_core::wire`):
//! `nosniff`, framing and referrer rules, HSTS, a Content-Security-Policy (the strict docs
//! policy on pages, nothing-loads on everything else) and `Cache-Control: no-store` unless the
//! route chose its own (the JWKS is public and cacheable).

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use users_core::wire;

/// Middleware: [`apply`] to the answer.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    apply(res.headers_mut());
    res
}

/// Adds the security headers to an answer's headers.
pub fn apply(h: &mut HeaderMap) {
    let content_type = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let headers: Vec<_> = wire::security_headers(content_type).collect();
    for (name, value, how) in headers {
        if how == wire::Apply::Replace || !h.contains_key(name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(content_type: Option<&str>, cache: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(t) = content_type {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(t).unwrap());
        }
        if let Some(c) = cache {
            h.insert(header::CACHE_CONTROL, HeaderValue::from_str(c).unwrap());
        }
        apply(&mut h);
        h
    }

    #[test]
    fn every_answer_carries_the_shared_security_headers() {
        let h = answer(Some("application/json"), None);
        for (name, value) in wire::SECURITY_HEADERS {
            assert_eq!(h.get(name).unwrap(), value, "{name}");
        }
        assert_eq!(h.get("x-content-type-options").unwrap(), "nosniff");
        assert_eq!(
            h.get(header::CONTENT_SECURITY_POLICY).unwrap(),
            wire::API_CSP
        );
        assert_eq!(h.get(header::CACHE_CONTROL).unwrap(), "no-store");
    }

    #[test]
    fn pages_get_the_docs_policy_and_chosen_caching_is_kept() {
        let h = answer(
            Some("text/html; charset=utf-8"),
            Some("public, max-age=300"),
        );
        assert_eq!(
            h.get(header::CONTENT_SECURITY_POLICY).unwrap(),
            wire::DOCS_CSP
        );
        assert_eq!(h.get(header::CACHE_CONTROL).unwrap(), "public, max-age=300");
    }
}

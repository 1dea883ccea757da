//! Security headers on every answer, the same as the edge adds (`users_core::wire`):
//! `nosniff`, framing and referrer rules, HSTS, a Content-Security-Policy (the strict docs
//! policy on pages, nothing-loads on everything else) and `Cache-Control: no-store` unless the
//! route chose its own (the JWKS is public and cacheable).

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
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
    let csp =
        wire::content_security_policy(h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()));
    for (name, value) in wire::SECURITY_HEADERS {
        h.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(csp));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static(wire::NO_STORE));
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

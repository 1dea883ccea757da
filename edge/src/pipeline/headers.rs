//! Header hygiene: what comes in from clients, what goes to the origin, what goes back.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, header};
use users_core::ratelimit::{Decision, Quota};
use users_core::wire::{self, Revocation};

use crate::config::EdgeConfig;

/// Headers a client may not set: the edge sets them itself.
const INTERNAL: [&str; 6] = [
    wire::EDGE_SECRET,
    wire::REVOKED,
    wire::EDGE_COUNTRY,
    wire::FORWARDED_FOR,
    "x-real-ip",
    "forwarded",
];
/// Hop-by-hop headers (RFC 9110 §7.6.1) and the ones the platform sets.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// A well-formed client request id ([`wire::is_valid_request_id`]), if any.
pub fn request_id(h: &HeaderMap) -> Option<String> {
    let v = h.get(wire::REQUEST_ID)?.to_str().ok()?;
    wire::is_valid_request_id(v.as_bytes()).then(|| v.to_owned())
}

/// The bearer token ([`wire::bearer_token`]), if the request has one.
pub fn bearer(h: &HeaderMap) -> Option<String> {
    let v = h.get(header::AUTHORIZATION)?.to_str().ok()?;
    wire::bearer_token(v).ok().map(str::to_owned)
}

/// The request as it goes to the origin: internal and hop-by-hop headers replaced.
pub fn to_origin(
    req: Request<Bytes>,
    cfg: &EdgeConfig,
    (ip, country): (&str, Option<&str>),
    request_id: &str,
) -> Request<Bytes> {
    let (mut parts, body) = req.into_parts();
    for name in INTERNAL.iter().chain(HOP_BY_HOP.iter()) {
        parts.headers.remove(*name);
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    if let Ok(uri) = format!("{}{path}", cfg.origin_url).parse() {
        parts.uri = uri;
    }
    set(&mut parts.headers, wire::FORWARDED_FOR, ip);
    if let Some(country) = country.and_then(wire::country_code) {
        set(&mut parts.headers, wire::EDGE_COUNTRY, &country);
    }
    set(&mut parts.headers, wire::REQUEST_ID, request_id);
    set(&mut parts.headers, wire::EDGE_SECRET, &cfg.edge_secret);
    Request::from_parts(parts, body)
}

/// A GET the edge itself sends to the origin.
pub fn internal_get(cfg: &EdgeConfig, path: &str) -> Request<Bytes> {
    let mut req = Request::new(Bytes::new());
    *req.method_mut() = Method::GET;
    if let Ok(uri) = format!("{}{path}", cfg.origin_url).parse() {
        *req.uri_mut() = uri;
    }
    set(req.headers_mut(), wire::EDGE_SECRET, &cfg.edge_secret);
    req
}

fn set(h: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(HeaderName::from_static(name), v);
    }
}

/// Removes and parses the origin's revocation echo ([`wire::parse_revoked`]).
pub fn take_revocations(h: &mut HeaderMap) -> Vec<Revocation> {
    let out = h
        .get_all(wire::REVOKED)
        .iter()
        .flat_map(|value| wire::parse_revoked(value.to_str().unwrap_or_default()))
        .collect();
    h.remove(wire::REVOKED);
    out
}

/// Drops hop-by-hop headers from an origin response.
pub fn from_origin(res: &mut Response<Bytes>) {
    for name in HOP_BY_HOP {
        res.headers_mut().remove(name);
    }
}

/// `RateLimit-Policy` / `RateLimit` ([`wire::rate_limit_policy`], [`wire::rate_limit`]).
pub fn quota(res: &mut Response<Bytes>, scope: &str, quota: Quota, d: &Decision) {
    let policy = wire::rate_limit_policy(scope, quota);
    let state = wire::rate_limit(scope, d);
    if let (Ok(p), Ok(s)) = (
        HeaderValue::from_str(&policy),
        HeaderValue::from_str(&state),
    ) {
        res.headers_mut().insert(wire::RATELIMIT_POLICY, p);
        res.headers_mut().insert(wire::RATELIMIT, s);
    }
}

/// The `Origin` to allow, if the request's is configured.
pub fn allowed_origin(h: &HeaderMap, allowed: &[String]) -> Option<String> {
    let origin = h.get(header::ORIGIN)?.to_str().ok()?;
    allowed
        .iter()
        .any(|a| a == "*" || a == origin)
        .then(|| origin.to_owned())
}

/// Answer to a CORS preflight (the `Access-Control-Allow-Origin` is added by [`finish`]).
pub fn preflight() -> Response<Bytes> {
    let mut res = Response::new(Bytes::new());
    *res.status_mut() = http::StatusCode::NO_CONTENT;
    let h = res.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(
            "authorization, content-type, if-match, if-none-match, x-request-id",
        ),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    res
}

/// Request id, security headers (`wire::SECURITY_HEADERS`, the CSP, `no-store` unless the
/// answer says otherwise: the same as the origin's) and CORS on every answer.
pub fn finish(res: &mut Response<Bytes>, request_id: &str, cors_origin: Option<&str>) {
    let content_type = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let added: Vec<_> = wire::security_headers(content_type).collect();
    let h = res.headers_mut();
    set(h, wire::REQUEST_ID, request_id);
    for (name, value, how) in added {
        if how == wire::Apply::Replace || !h.contains_key(name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    }
    if let Some(origin) = cors_origin.and_then(|o| HeaderValue::from_str(o).ok()) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.append(header::VARY, HeaderValue::from_static("Origin"));
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(
                "ETag, Location, Link, Retry-After, RateLimit, RateLimit-Policy, X-Request-Id",
            ),
        );
    }
}

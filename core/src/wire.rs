//! The edge↔origin wire contract, written once for both tiers.
//!
//! Whatever one tier writes and the other reads, or whatever both must answer alike, is named
//! here: the body limit, the header names, which client request ids are kept, how a bearer
//! token is read from `Authorization`, the rate-limit headers and the `429` detail, the
//! revocation echo, the revocation feed's path and page size, and `If-None-Match` matching.
//! The status of each error code is [`ErrorCode::status`].
//!
//! Only `&str`, numbers and pure functions: no `http` types, so this builds wherever `core`
//! does. Header names are lower case, as `http::HeaderName::from_static` requires.

use uuid::Uuid;

use crate::problem::ErrorCode;
use crate::ratelimit::{Decision, Quota};

/// Largest request body either tier accepts, in bytes: 64 KiB (SPEC §4, "body over 64 KiB
/// `413`"). The origin's body limit; the edge refuses larger bodies before buffering them.
pub const BODY_MAX: usize = 64 * 1024;

/// `X-Request-Id`: the request id, kept from the client when well-formed (see
/// [`is_valid_request_id`]), generated otherwise, sent on to the origin and echoed on every
/// response (SPEC §4, Observability).
pub const REQUEST_ID: &str = "x-request-id";
/// `X-Edge-Secret`: the edge's shared secret (`EDGE_SHARED_SECRET`), by which the origin
/// knows a request came through the edge. Clients may not set it: the edge replaces it.
pub const EDGE_SECRET: &str = "x-edge-secret";
/// `X-Forwarded-For`: the client address the edge saw. The origin believes it only from a
/// trusted proxy or with [`EDGE_SECRET`] (SPEC §4, Rate limits).
pub const FORWARDED_FOR: &str = "x-forwarded-for";
/// `X-Users-Revoked`: the revocations a request through the edge caused, echoed by the origin
/// as [`revoked_value`] and stripped by the edge before it answers (SPEC §4, Access tokens).
pub const REVOKED: &str = "x-users-revoked";
/// `RateLimit-Policy` (IETF httpapi `ratelimit-headers` draft): see [`rate_limit_policy`].
pub const RATELIMIT_POLICY: &str = "ratelimit-policy";
/// `RateLimit` (IETF httpapi `ratelimit-headers` draft): see [`rate_limit`].
pub const RATELIMIT: &str = "ratelimit";
/// `X-Edge-Cache`: how the edge answered a profile read: `hit`, `miss` or `stale`.
pub const EDGE_CACHE: &str = "x-edge-cache";
/// The `Cache-Control` of every answer that does not say otherwise, from either tier: tokens
/// (RFC 6749 §5.1), sessions, users and problems are kept by no cache (RFC 9111 §5.2.2.5).
pub const NO_STORE: &str = "no-store";
/// The `Cache-Control` of a profile read, from either tier: it holds a user, so no cache keeps
/// it; `ETag` and `If-None-Match` still answer `304` to a client that asks.
pub const PROFILE_CACHE_CONTROL: &str = NO_STORE;

/// The security headers both tiers put on every answer, as (name, value).
pub const SECURITY_HEADERS: [(&str, &str); 4] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    (
        "strict-transport-security",
        "max-age=63072000; includeSubDomains",
    ),
];
/// The `Content-Security-Policy` of every answer that is not a page: it may load nothing and
/// be framed by nothing.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
/// The `Content-Security-Policy` of the interactive docs (`/docs`, the only pages served):
/// scripts, styles, fonts and the document come from this origin only, nothing inline runs
/// (Swagger UI's components set style attributes, hence `'unsafe-inline'` for styles only),
/// and nothing may frame them.
pub const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                            img-src 'self' data:; font-src 'self'; connect-src 'self'; \
                            base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Whether a header of [`security_headers`] replaces a value the answer has, or only fills in
/// a missing one (a route may choose its own policy or caching).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Apply {
    Replace,
    IfAbsent,
}

/// Every header both tiers add to an answer whose `Content-Type` is `content_type`: the
/// [`SECURITY_HEADERS`], the [`content_security_policy`] and [`NO_STORE`] caching.
pub fn security_headers(
    content_type: Option<&str>,
) -> impl Iterator<Item = (&'static str, &'static str, Apply)> {
    SECURITY_HEADERS
        .into_iter()
        .map(|(name, value)| (name, value, Apply::Replace))
        .chain([
            (
                "content-security-policy",
                content_security_policy(content_type),
                Apply::IfAbsent,
            ),
            ("cache-control", NO_STORE, Apply::IfAbsent),
        ])
}

/// The `Content-Security-Policy` of an answer, by whether its media type is `text/html`.
pub fn content_security_policy(content_type: Option<&str>) -> &'static str {
    let html = content_type.is_some_and(|t| {
        t.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/html"))
    });
    if html { DOCS_CSP } else { API_CSP }
}

/// Longest client request id kept, in bytes (the README's `X-Request-Id` rule: 1–128).
pub const REQUEST_ID_MAX: usize = 128;

/// Whether a client's `X-Request-Id` is kept: 1–[`REQUEST_ID_MAX`] bytes of
/// `[A-Za-z0-9._:-]`, so logs never carry hostile text. Otherwise a fresh one is generated.
pub fn is_valid_request_id(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= REQUEST_ID_MAX
        && value
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-'))
}

/// Why an `Authorization` value holds no bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    /// No space between a scheme and credentials (the origin answers `invalid-token`).
    #[error("the Authorization header is not a scheme followed by credentials")]
    Malformed,
    /// Another scheme, such as `Basic` (the origin answers `unauthenticated`).
    #[error("the Authorization scheme is not Bearer")]
    NotBearer,
}

/// The token of an `Authorization: Bearer <token>` value (RFC 6750 §2.1): the scheme is
/// matched without regard to case (RFC 9110 §11.1), the token is what follows the first
/// space, trimmed. An empty token is returned as such: verifying it fails.
pub fn bearer_token(authorization: &str) -> Result<&str, BearerError> {
    let (scheme, token) = authorization
        .split_once(' ')
        .ok_or(BearerError::Malformed)?;
    if scheme.eq_ignore_ascii_case("bearer") {
        Ok(token.trim())
    } else {
        Err(BearerError::NotBearer)
    }
}

/// The `WWW-Authenticate` challenge of a `401` (RFC 6750 §3): a bare `Bearer` when no
/// credentials came, `error="invalid_token"` (RFC 6750 §3.1) when the token was refused.
pub fn www_authenticate(code: ErrorCode) -> Option<&'static str> {
    match code {
        ErrorCode::Unauthenticated => Some("Bearer"),
        ErrorCode::InvalidToken => Some(r#"Bearer error="invalid_token""#),
        _ => None,
    }
}

/// `Retry-After` of a `503` (overloaded or a dependency away), in seconds: a short wait,
/// since both conditions clear as soon as a slot or the dependency is back.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u32 = 1;

/// The fixed `Retry-After` every answer of `code` carries, if it has one: both `503` codes.
/// (A `429` carries its limit's own wait instead.)
pub fn retry_after_secs(code: ErrorCode) -> Option<u32> {
    matches!(code, ErrorCode::Overloaded | ErrorCode::Unavailable)
        .then_some(UNAVAILABLE_RETRY_AFTER_SECS)
}

/// The rate-limit scope of `/auth/*`, per client IP (SPEC §4, Rate limits).
pub const SCOPE_AUTH_IP: &str = "auth-ip";
/// The rate-limit scope of authenticated routes, per user (SPEC §4, Rate limits).
pub const SCOPE_USER: &str = "user";

/// The `RateLimit-Policy` value of a quota: `"<scope>";q=<limit>;w=<window in seconds>`
/// (IETF httpapi `ratelimit-headers` draft, §2).
pub fn rate_limit_policy(scope: &str, quota: Quota) -> String {
    format!("\"{scope}\";q={};w={}", quota.limit, quota.window_secs())
}

/// The `RateLimit` value after a decision: `"<scope>";r=<remaining>;t=<seconds to reset>`
/// (IETF httpapi `ratelimit-headers` draft, §3).
pub fn rate_limit(scope: &str, decision: &Decision) -> String {
    format!(
        "\"{scope}\";r={};t={}",
        decision.remaining,
        decision.reset_secs()
    )
}

/// The `detail` of a `429` problem, whichever tier or limit refused the request.
pub fn rate_limited_detail(retry_after_secs: i64) -> String {
    format!("Too many requests; retry in {retry_after_secs} s.")
}

/// Whether an `If-None-Match` / `If-Match` value lists `etag` or is `*` (RFC 9110 §13.1.1-2):
/// members are comma-separated, a weak `W/` prefix is ignored (weak comparison).
pub fn etag_matches(header_value: &str, etag: &str) -> bool {
    header_value
        .split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == etag)
}

/// One revocation, as the feed and the echo carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Revocation {
    /// Tokens of `user` whose `sv` is below `sv` are revoked (logout-all, password change, …).
    Version { user: Uuid, sv: i64 },
    /// Tokens of session `sid` (their `sid` claim) are revoked; none of them lives past
    /// `until` (Unix seconds), so the entry may be forgotten then (SPEC §7).
    Session { user: Uuid, sid: Uuid, until: i64 },
}

impl Revocation {
    /// The revocation a feed event describes: with `session_id` and `until`, that session;
    /// otherwise the user's tokens below `security_version`.
    pub fn of_event(
        user: Uuid,
        security_version: i64,
        session_id: Option<Uuid>,
        until: Option<i64>,
    ) -> Self {
        match (session_id, until) {
            (Some(sid), Some(until)) => Self::Session { user, sid, until },
            _ => Self::Version {
                user,
                sv: security_version,
            },
        }
    }

    /// The user whose tokens it revokes.
    pub fn user(&self) -> Uuid {
        match self {
            Self::Version { user, .. } | Self::Session { user, .. } => *user,
        }
    }
}

/// The [`REVOKED`] value: per revocation `<user id>:<security version>` or
/// `<user id>:<session id>@<until>`, joined by `", "`.
pub fn revoked_value(revocations: impl IntoIterator<Item = Revocation>) -> String {
    revocations
        .into_iter()
        .map(|r| match r {
            Revocation::Version { user, sv } => format!("{user}:{sv}"),
            Revocation::Session { user, sid, until } => format!("{user}:{sid}@{until}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The revocations in one [`REVOKED`] value; members that do not parse are skipped.
pub fn parse_revoked(value: &str) -> impl Iterator<Item = Revocation> + '_ {
    value.split(',').filter_map(|item| {
        let (id, rest) = item.trim().split_once(':')?;
        let user = Uuid::parse_str(id).ok()?;
        match rest.split_once('@') {
            Some((sid, until)) => Some(Revocation::Session {
                user,
                sid: Uuid::parse_str(sid).ok()?,
                until: until.parse().ok()?,
            }),
            None => Some(Revocation::Version {
                user,
                sv: rest.parse().ok()?,
            }),
        }
    })
}

/// `X-Edge-Country`: the client's country (ISO 3166-1 alpha-2) as the edge's platform knows it
/// (Cloudflare's `request.cf.country`). The origin believes it only with [`EDGE_SECRET`]; the
/// edge drops whatever a client sent under this name.
pub const EDGE_COUNTRY: &str = "x-edge-country";

/// Whether `value` is a country code worth keeping: two ASCII letters (Cloudflare also sends
/// `T1` for Tor, kept as such). Stored upper-case.
pub fn country_code(value: &str) -> Option<String> {
    let v = value.trim();
    (v.len() == 2 && v.bytes().all(|b| b.is_ascii_alphanumeric())).then(|| v.to_ascii_uppercase())
}

/// The origin's public keys (RFC 8615 well-known location of a JWK set, RFC 7517 §5).
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// The import route (SPEC §10), whose body may be larger than others'.
pub const IMPORT_PATH: &str = "/admin/users/import";

/// Largest body of [`IMPORT_PATH`]: 10 MiB.
pub const IMPORT_BODY_MAX: usize = 10 * 1024 * 1024;

/// The largest body a request to `path` (`/v1` alias included) may have.
pub fn body_max(path: &str) -> usize {
    let path = path.strip_prefix("/v1").unwrap_or(path);
    if path == IMPORT_PATH {
        IMPORT_BODY_MAX
    } else {
        BODY_MAX
    }
}

/// The authorization server metadata (RFC 8414 §3).
pub const OAUTH_METADATA_PATH: &str = "/.well-known/oauth-authorization-server";

/// The token endpoint (RFC 6749 §3.2): the login route.
pub const TOKEN_PATH: &str = "/auth/login";
/// The origin's revocation feed, for edges only: `?since=<cursor>&limit=<n>` answers
/// `{"events": [{"seq", "user_id", "security_version", "session_id"?, "until"?}, …],
/// "next": <cursor>}`: an event with `session_id` revokes that session until `until` (Unix
/// seconds), one without revokes the user's tokens below `security_version`.
pub const REVOCATIONS_PATH: &str = "/internal/revocations";
/// Most events in one page of the revocation feed: a page of UUIDs and numbers stays well
/// under 100 KB; an edge asks for this many and reads a full page as "there may be more".
pub const REVOCATION_PAGE_MAX: i64 = 1000;

/// Path and query of the feed page after `since`, asking for a full page.
pub fn revocations_page_path(since: i64) -> String {
    format!("{REVOCATIONS_PATH}?since={since}&limit={REVOCATION_PAGE_MAX}")
}

#[cfg(test)]
mod tests;

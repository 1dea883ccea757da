//! Host tests of the pipeline against in-memory fakes of every port.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::IpAddr;

use bytes::Bytes;
use futures::executor::block_on;
use http::{Method, Request, Response, StatusCode};
use users_core::perms::Permission;
use users_core::problem::{ErrorCode, Problem};
use users_core::ratelimit::{Decision, Quota, gcra};
use users_core::token::{AccessClaims, Audience, KeySet, Signer};
use uuid::Uuid;

use super::Edge;
use crate::config::EdgeConfig;
use crate::ports::*;

const NOW: i64 = 1_800_000_000_000;
const SECRET: &str = "edge-secret-0123456789";

/// A scripted origin that records what it was sent.
#[derive(Default)]
struct FakeOrigin {
    down: Cell<bool>,
    sent: RefCell<Vec<Request<Bytes>>>,
    jwks: String,
    feed: RefCell<Vec<(i64, Uuid, i64)>>,
    revoke_on_write: RefCell<Option<(Uuid, i64)>>,
}

impl FakeOrigin {
    fn calls(&self, path: &str) -> usize {
        self.sent
            .borrow()
            .iter()
            .filter(|r| r.uri().path() == path)
            .count()
    }
}

fn reply(status: StatusCode, body: String) -> Response<Bytes> {
    let mut r = Response::new(Bytes::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r
}

impl Origin for FakeOrigin {
    async fn send(&self, req: Request<Bytes>) -> Result<Response<Bytes>, OriginError> {
        self.sent.borrow_mut().push(req.clone());
        if self.down.get() {
            return Err(OriginError("connection refused".into()));
        }
        let path = req.uri().path().to_owned();
        if path == "/.well-known/jwks.json" {
            return Ok(reply(StatusCode::OK, self.jwks.clone()));
        }
        if path == "/internal/revocations" {
            let since: i64 = req
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("since=")))
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let events: Vec<_> = self
                .feed
                .borrow()
                .iter()
                .filter(|e| e.0 > since)
                .map(|e| serde_json::json!({"seq": e.0, "user_id": e.1, "security_version": e.2}))
                .collect();
            let next = self
                .feed
                .borrow()
                .iter()
                .map(|e| e.0)
                .max()
                .unwrap_or(since)
                .max(since);
            return Ok(reply(
                StatusCode::OK,
                serde_json::json!({"events": events, "next": next}).to_string(),
            ));
        }
        let mut r = match path.strip_prefix("/users/") {
            Some(id) => {
                let version = self.calls(&path);
                let mut r = reply(StatusCode::OK, format!(r#"{{"id":"{id}","n":{version}}}"#));
                r.headers_mut()
                    .insert("etag", format!("\"{id}-{version}\"").parse().unwrap());
                r
            }
            None => reply(StatusCode::OK, "{}".into()),
        };
        if req.method() != Method::GET
            && let Some((user, sv)) = *self.revoke_on_write.borrow()
        {
            r.headers_mut()
                .insert("x-users-revoked", format!("{user}:{sv}").parse().unwrap());
        }
        Ok(r)
    }
}

#[derive(Default)]
struct MemLimiter(RefCell<HashMap<String, i64>>);

impl RateLimiter for MemLimiter {
    async fn check(&self, key: &str, quota: Quota, now_ms: i64) -> Decision {
        let d = gcra(self.0.borrow().get(key).copied(), now_ms, quota);
        if d.allowed {
            self.0.borrow_mut().insert(key.to_owned(), d.tat_us);
        }
        d
    }
}

#[derive(Default)]
struct MemCache(RefCell<HashMap<Uuid, CachedProfile>>);

impl ProfileCache for MemCache {
    async fn get(&self, user: Uuid) -> Option<CachedProfile> {
        self.0.borrow().get(&user).cloned()
    }
    async fn put(&self, user: Uuid, profile: &CachedProfile) {
        self.0.borrow_mut().insert(user, profile.clone());
    }
    async fn purge(&self, user: Uuid) {
        self.0.borrow_mut().remove(&user);
    }
}

#[derive(Default)]
struct MemRevocations {
    min: RefCell<HashMap<Uuid, i64>>,
    cursor: Cell<(i64, i64)>,
}

impl RevocationStore for MemRevocations {
    async fn view(&self, user: Uuid) -> RevocationView {
        let (cursor, synced_at_ms) = self.cursor.get();
        RevocationView {
            min_sv: self.min.borrow().get(&user).copied(),
            cursor,
            synced_at_ms,
        }
    }
    async fn record(&self, events: &[(Uuid, i64)], cursor: Option<(i64, i64)>) {
        for (u, sv) in events {
            let mut min = self.min.borrow_mut();
            let e = min.entry(*u).or_insert(*sv);
            *e = (*e).max(*sv);
        }
        if let Some(c) = cursor {
            self.cursor.set(c);
        }
    }
}

struct Clock {
    now: Cell<i64>,
    ids: Cell<u32>,
}

impl Platform for Clock {
    fn now_ms(&self) -> i64 {
        self.now.get()
    }
    fn request_id(&self) -> String {
        self.ids.set(self.ids.get() + 1);
        format!("edge-{}", self.ids.get())
    }
}

type TestEdge = Edge<FakeOrigin, MemLimiter, MemCache, MemRevocations, Clock>;

struct World {
    edge: TestEdge,
    signer: Signer,
}

fn world_with(vars: &[(&str, &str)]) -> World {
    let signer = Signer::from_seed([3; 32]);
    let mut keys = KeySet::new();
    keys.insert(signer.public_key());
    let mut map: HashMap<String, String> = [
        ("ORIGIN_URL", "http://origin.test"),
        ("EDGE_SHARED_SECRET", SECRET),
        ("JWT_ISSUER", "https://id.test"),
        ("RATE_LIMIT_AUTH_IP", "3/60s"),
        ("RATE_LIMIT_USER", "100/60s"),
        ("CORS_ORIGINS", "https://app.test"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in vars {
        map.insert(k.to_string(), v.to_string());
    }
    let config = EdgeConfig::from_lookup(|k| map.get(k).cloned()).unwrap();
    let origin = FakeOrigin {
        jwks: serde_json::to_string(&keys.to_jwks()).unwrap(),
        ..Default::default()
    };
    let clock = Clock {
        now: Cell::new(NOW),
        ids: Cell::new(0),
    };
    let edge = Edge::new(
        config,
        origin,
        MemLimiter::default(),
        MemCache::default(),
        MemRevocations::default(),
        clock,
    );
    World { edge, signer }
}

fn world() -> World {
    world_with(&[])
}

impl World {
    fn token(&self, user: Uuid, sv: i64, perms: Vec<Permission>) -> String {
        let claims = AccessClaims {
            iss: "https://id.test".into(),
            aud: Audience::One("users-api".into()),
            sub: user,
            jti: "j".into(),
            roles: vec![],
            perms,
            sv,
        };
        self.signer
            .sign(claims, self.edge.platform.now.get() / 1000, 900)
    }

    fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Response<Bytes> {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        block_on(self.edge.handle(req.body(Bytes::new()).unwrap(), Some(ip)))
    }

    fn advance(&self, ms: i64) {
        self.edge
            .platform
            .now
            .set(self.edge.platform.now.get() + ms);
    }
}

fn header<'a>(r: &'a Response<Bytes>, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

#[test]
fn health_is_answered_at_the_edge() {
    let w = world();
    let r = w.send(Method::GET, "/edge/health", None, &[]);
    assert_eq!(r.status(), 200);
    assert!(w.edge.origin.sent.borrow().is_empty());
    assert_eq!(header(&r, "x-request-id"), Some("edge-1"));
    assert_eq!(header(&r, "x-content-type-options"), Some("nosniff"));
}

#[test]
fn origin_internal_paths_are_not_reachable_through_the_edge() {
    let w = world();
    for path in [
        "/internal/revocations?since=0",
        "/v1/internal/revocations",
        "/metrics",
    ] {
        let r = w.send(Method::GET, path, None, &[]);
        assert_eq!(r.status(), 404, "{path}");
    }
    assert!(w.edge.origin.sent.borrow().is_empty());
}

#[test]
fn request_ids_are_kept_when_well_formed() {
    let w = world();
    let r = w.send(
        Method::GET,
        "/edge/health",
        None,
        &[("x-request-id", "abc-123")],
    );
    assert_eq!(header(&r, "x-request-id"), Some("abc-123"));
    let r = w.send(
        Method::GET,
        "/edge/health",
        None,
        &[("x-request-id", "bad id <x>")],
    );
    assert_eq!(header(&r, "x-request-id"), Some("edge-1"));
}

#[test]
fn bad_tokens_get_the_origins_401_without_reaching_it() {
    let w = world();
    let r = w.send(Method::GET, "/users/me", Some("not.a.jwt"), &[]);
    assert_eq!(r.status(), 401);
    let body: Problem = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(
        body,
        Problem::new(
            ErrorCode::InvalidToken,
            401,
            ErrorCode::InvalidToken.detail()
        )
    );
    assert_eq!(
        header(&r, "www-authenticate"),
        Some(r#"Bearer error="invalid_token""#)
    );
    assert_eq!(w.edge.origin.calls("/users/me"), 0);
}

#[test]
fn forwarding_replaces_internal_headers() {
    let w = world();
    let r = w.send(
        Method::POST,
        "/auth/login?x=1",
        None,
        &[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-edge-secret", "forged"),
            ("x-users-revoked", "x"),
        ],
    );
    assert_eq!(r.status(), 200);
    let sent = w.edge.origin.sent.borrow();
    let req = sent.last().unwrap();
    assert_eq!(req.uri().to_string(), "http://origin.test/auth/login?x=1");
    assert_eq!(req.headers()["x-forwarded-for"], "203.0.113.7");
    assert_eq!(req.headers()["x-edge-secret"], SECRET);
    assert!(req.headers().get("x-users-revoked").is_none());
    assert_eq!(req.headers()["x-request-id"], "edge-1");
}

#[test]
fn profile_reads_are_cached_per_user_and_authorised_on_every_hit() {
    let w = world();
    let alice = Uuid::from_u128(1);
    let token = w.token(alice, 1, vec![]);
    let first = w.send(Method::GET, "/users/me", Some(&token), &[]);
    assert_eq!(header(&first, "x-edge-cache"), Some("miss"));
    let second = w.send(
        Method::GET,
        &format!("/v1/users/{alice}"),
        Some(&token),
        &[],
    );
    assert_eq!(header(&second, "x-edge-cache"), Some("hit"));
    assert_eq!(second.body(), first.body());
    assert_eq!(header(&second, "cache-control"), Some("private, no-cache"));
    assert_eq!(w.edge.origin.calls("/users/me"), 1);
    assert_eq!(w.edge.origin.calls(&format!("/v1/users/{alice}")), 0);

    let etag = header(&second, "etag").unwrap().to_owned();
    let not_modified = w.send(
        Method::GET,
        "/users/me",
        Some(&token),
        &[("if-none-match", &etag)],
    );
    assert_eq!(not_modified.status(), 304);

    // Bob may not read Alice: never from the cache, the origin decides.
    let bob = w.token(Uuid::from_u128(2), 1, vec![]);
    let r = w.send(Method::GET, &format!("/users/{alice}"), Some(&bob), &[]);
    assert_ne!(header(&r, "x-edge-cache"), Some("hit"));
    assert_eq!(w.edge.origin.calls(&format!("/users/{alice}")), 1);
    // An admin with users:read may.
    let admin = w.token(Uuid::from_u128(3), 1, vec![Permission::UsersRead]);
    let r = w.send(Method::GET, &format!("/users/{alice}"), Some(&admin), &[]);
    assert_eq!(header(&r, "x-edge-cache"), Some("hit"));
}

#[test]
fn writes_through_the_edge_purge_the_profile() {
    let w = world();
    let alice = Uuid::from_u128(1);
    let token = w.token(alice, 1, vec![]);
    w.send(Method::GET, "/users/me", Some(&token), &[]);
    w.send(Method::PATCH, &format!("/users/{alice}"), Some(&token), &[]);
    let r = w.send(Method::GET, "/users/me", Some(&token), &[]);
    assert_eq!(header(&r, "x-edge-cache"), Some("miss"));
    assert_eq!(w.edge.origin.calls("/users/me"), 2);
}

#[test]
fn entries_expire_after_the_ttl() {
    let w = world_with(&[("PROFILE_CACHE_TTL", "10")]);
    let token = w.token(Uuid::from_u128(1), 1, vec![]);
    w.send(Method::GET, "/users/me", Some(&token), &[]);
    w.advance(11_000);
    let token = w.token(Uuid::from_u128(1), 1, vec![]);
    let r = w.send(Method::GET, "/users/me", Some(&token), &[]);
    assert_eq!(header(&r, "x-edge-cache"), Some("miss"));
}

#[test]
fn a_revocation_echoed_by_the_origin_applies_at_once() {
    let w = world();
    let alice = Uuid::from_u128(1);
    let token = w.token(alice, 1, vec![]);
    *w.edge.origin.revoke_on_write.borrow_mut() = Some((alice, 2));
    let r = w.send(Method::POST, "/auth/logout", Some(&token), &[]);
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("x-users-revoked").is_none(),
        "the echo is internal"
    );
    let r = w.send(Method::GET, "/users/me", Some(&token), &[]);
    assert_eq!(r.status(), 401);
    assert_eq!(
        w.send(
            Method::GET,
            "/users/me",
            Some(&w.token(alice, 2, vec![])),
            &[]
        )
        .status(),
        200
    );
}

#[test]
fn revocations_made_elsewhere_apply_within_the_sync_interval() {
    let w = world_with(&[("REVOCATION_SYNC_INTERVAL", "5")]);
    let alice = Uuid::from_u128(1);
    let token = w.token(alice, 1, vec![]);
    assert_eq!(
        w.send(Method::GET, "/users/me", Some(&token), &[]).status(),
        200
    );
    w.edge.origin.feed.borrow_mut().push((7, alice, 2));
    w.advance(1000);
    // Within the interval the edge does not poll.
    assert_eq!(
        w.send(Method::GET, "/users/me", Some(&token), &[]).status(),
        200
    );
    w.advance(5000);
    // The due poll runs beside this request; what it learns applies from the next one.
    w.send(Method::GET, "/users/me", Some(&token), &[]);
    assert_eq!(
        w.send(Method::GET, "/users/me", Some(&token), &[]).status(),
        401
    );
    assert_eq!(w.edge.revocations.cursor.get().0, 7);
}

#[test]
fn auth_routes_are_limited_per_ip() {
    let w = world();
    for _ in 0..3 {
        let r = w.send(Method::POST, "/auth/login", None, &[]);
        assert_eq!(r.status(), 200);
        assert!(header(&r, "ratelimit-policy").is_some_and(|p| p.contains("q=3")));
    }
    let r = w.send(Method::POST, "/auth/login", None, &[]);
    assert_eq!(r.status(), 429);
    assert_eq!(header(&r, "retry-after"), Some("20"));
    assert_eq!(header(&r, "ratelimit"), Some("\"auth-ip\";r=0;t=60"));
    assert_eq!(w.edge.origin.calls("/auth/login"), 3);
}

#[test]
fn with_the_origin_down_cached_reads_go_on_and_writes_get_503() {
    let w = world_with(&[("PROFILE_CACHE_TTL", "10"), ("STALE_IF_ERROR", "60")]);
    let alice = Uuid::from_u128(1);
    let token = w.token(alice, 1, vec![]);
    w.send(Method::GET, "/users/me", Some(&token), &[]);
    w.edge.origin.down.set(true);
    w.advance(30_000);
    let token = w.token(alice, 1, vec![]);
    let r = w.send(Method::GET, "/users/me", Some(&token), &[]);
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-edge-cache"), Some("stale"));
    let r = w.send(Method::PATCH, &format!("/users/{alice}"), Some(&token), &[]);
    assert_eq!(r.status(), 503);
    assert_eq!(header(&r, "retry-after"), Some("1"));
    assert_eq!(header(&r, "content-type"), Some("application/problem+json"));
}

#[test]
fn a_failing_feed_is_not_retried_by_every_request() {
    let w = world_with(&[("REVOCATION_SYNC_INTERVAL", "5")]);
    let token = w.token(Uuid::from_u128(1), 1, vec![]);
    w.send(Method::GET, "/users", Some(&token), &[]);
    w.edge.origin.down.set(true);
    w.advance(6000);
    let token = w.token(Uuid::from_u128(1), 1, vec![]);
    for _ in 0..3 {
        assert_eq!(
            w.send(Method::GET, "/users", Some(&token), &[]).status(),
            503
        );
    }
    assert_eq!(
        w.edge.origin.calls("/internal/revocations"),
        2,
        "one poll while up, one failed poll"
    );
    assert_eq!(w.edge.origin.calls("/users"), 4);
}

#[test]
fn cors_is_answered_for_configured_origins_only() {
    let w = world();
    let r = w.send(
        Method::OPTIONS,
        "/users/me",
        None,
        &[
            ("origin", "https://app.test"),
            ("access-control-request-method", "GET"),
        ],
    );
    assert_eq!(r.status(), 204);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.test")
    );
    let r = w.send(
        Method::GET,
        "/edge/health",
        None,
        &[("origin", "https://evil.test")],
    );
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[test]
fn the_key_set_is_fetched_once_and_cached() {
    let w = world();
    let token = w.token(Uuid::from_u128(1), 1, vec![]);
    for _ in 0..3 {
        w.send(Method::GET, "/users", Some(&token), &[]);
    }
    assert_eq!(w.edge.origin.calls("/.well-known/jwks.json"), 1);
}

#[test]
fn a_declared_length_over_the_body_limit_is_oversized() {
    use super::declares_oversized_body;
    use users_core::wire::BODY_MAX;
    assert!(!declares_oversized_body(None));
    assert!(!declares_oversized_body(Some("0")));
    assert!(!declares_oversized_body(Some(&BODY_MAX.to_string())));
    assert!(declares_oversized_body(Some(&(BODY_MAX + 1).to_string())));
    assert!(declares_oversized_body(Some(" 99999999999 ")));
    // Unparseable lengths are left to the body read (and the platform) to judge.
    assert!(!declares_oversized_body(Some("lots")));
}

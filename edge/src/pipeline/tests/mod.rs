//! Host tests of the pipeline against in-memory fakes of every port.
//!
//! This module holds the fakes and the [`World`] that drives them; the tests live in themed
//! modules: [`hygiene`] (what the edge answers itself, header hygiene), [`tokens`] (verification
//! and revocation), [`cache`] (profile reads) and [`limits`] (rate limits).

mod cache;
mod hygiene;
mod limits;
mod tokens;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::IpAddr;

use bytes::Bytes;
use futures::executor::block_on;
use http::{Method, Request, Response, StatusCode};
use users_core::perms::Permission;
use users_core::ratelimit::{Decision, Quota, gcra};
use users_core::token::{AccessClaims, Audience, KeySet, Signer};
use uuid::Uuid;

use super::{Client, Edge};
use crate::config::EdgeConfig;
use crate::ports::*;
use users_core::wire::Revocation;

const NOW: i64 = 1_800_000_000_000;
const SECRET: &str = "edge-secret-0123456789";

/// A scripted origin that records what it was sent.
#[derive(Default)]
struct FakeOrigin {
    down: Cell<bool>,
    sent: RefCell<Vec<Request<Bytes>>>,
    jwks: String,
    feed: RefCell<Vec<(i64, Uuid, i64)>>,
    /// Revoked sessions in the feed: (seq, user, sid, until in seconds).
    session_feed: RefCell<Vec<(i64, Uuid, Uuid, i64)>>,
    revoke_on_write: RefCell<Option<(Uuid, i64)>>,
    /// A raw `X-Users-Revoked` value echoed on writes.
    echo_on_write: RefCell<Option<String>>,
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
            let mut events: Vec<_> = self
                .feed
                .borrow()
                .iter()
                .filter(|e| e.0 > since)
                .map(|e| {
                    (
                        e.0,
                        serde_json::json!({"seq": e.0, "user_id": e.1, "security_version": e.2}),
                    )
                })
                .collect();
            events.extend(self.session_feed.borrow().iter().filter(|e| e.0 > since).map(|e| {
                let event = serde_json::json!({"seq": e.0, "user_id": e.1, "security_version": 1,
                                               "session_id": e.2, "until": e.3});
                (e.0, event)
            }));
            events.sort_by_key(|e| e.0);
            let next = events.iter().map(|e| e.0).max().unwrap_or(since).max(since);
            let events: Vec<_> = events.into_iter().map(|e| e.1).collect();
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
        if req.method() != Method::GET
            && let Some(value) = self.echo_on_write.borrow().as_deref()
        {
            r.headers_mut()
                .insert("x-users-revoked", value.parse().unwrap());
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
    sessions: RefCell<HashMap<Uuid, i64>>,
    cursor: Cell<(i64, i64)>,
}

impl RevocationStore for MemRevocations {
    async fn view(&self, user: Uuid, sid: Option<Uuid>, now_ms: i64) -> RevocationView {
        let (cursor, synced_at_ms) = self.cursor.get();
        RevocationView {
            min_sv: self.min.borrow().get(&user).copied(),
            session_revoked: sid.is_some_and(|sid| {
                self.sessions
                    .borrow()
                    .get(&sid)
                    .is_some_and(|until| *until > now_ms)
            }),
            cursor,
            synced_at_ms,
        }
    }
    async fn record(&self, events: &[Revocation], cursor: Option<i64>, now_ms: i64) {
        let folded = Folded::of(events, now_ms);
        for (u, sv) in folded.versions {
            let mut min = self.min.borrow_mut();
            let e = min.entry(u).or_insert(sv);
            *e = (*e).max(sv);
        }
        let mut sessions = self.sessions.borrow_mut();
        sessions.retain(|_, until| *until > now_ms);
        sessions.extend(folded.sessions);
        if let Some(c) = cursor {
            self.cursor.set((c, now_ms));
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
        self.session_token(user, sv, perms, None)
    }

    fn session_token(
        &self,
        user: Uuid,
        sv: i64,
        perms: Vec<Permission>,
        sid: Option<Uuid>,
    ) -> String {
        let claims = AccessClaims {
            iss: "https://id.test".into(),
            aud: Audience::One("users-api".into()),
            sub: user,
            jti: "j".into(),
            roles: vec![],
            perms,
            sv,
            sid,
            email_verified: false,
            amr: Vec::new(),
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
        block_on(
            self.edge
                .handle(req.body(Bytes::new()).unwrap(), Client::at(Some(ip))),
        )
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

//! The Cloudflare Workers adapter: SDK glue only.
//!
//! - Origin: `fetch` with a deadline (`ORIGIN_TIMEOUT_MS`, default 5000).
//! - Rate limits: one `RateLimiter` Durable Object per key, state in memory (a quota needs no
//!   durability; an evicted object starts a fresh window).
//! - Revocations: one global `Revocations` Durable Object, strongly consistent, persisted in
//!   its storage.
//! - Profiles: the Cache API of the data centre (`caches.default`), keyed by user id.
//!
//! The pipeline is built once per isolate, so the fetched key set is reused across requests.

#![allow(missing_debug_implementations)] // SDK handles (Env, State) have no useful Debug.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::{Either, select};
use serde::{Deserialize, Serialize};
use users_core::problem::ErrorCode;
use users_core::ratelimit::{Decision, Quota, gcra};
use users_core::wire::body_max;
use uuid::Uuid;
use worker::{
    Cache, Context, Date, Delay, DurableObject, Env, Fetch, Headers, Method, Request, RequestInit,
    Response, Result, State, durable_object, event,
};

use crate::config::EdgeConfig;
use crate::pipeline::{Client, Edge, declares_oversized_body, problem};
use crate::ports::{
    CachedProfile, Folded, Origin, OriginError, Platform, ProfileCache, RateLimiter,
    RevocationStore, RevocationView,
};
use users_core::wire::Revocation;

type CfEdge = Edge<CfOrigin, CfLimiter, CfCache, CfRevocations, CfPlatform>;

thread_local! {
    static EDGE: RefCell<Option<Rc<CfEdge>>> = const { RefCell::new(None) };
}

fn lookup(env: &Env, key: &str) -> Option<String> {
    env.var(key)
        .map(|v| v.to_string())
        .ok()
        .or_else(|| env.secret(key).map(|s| s.to_string()).ok())
}

fn edge(env: &Env) -> std::result::Result<Rc<CfEdge>, String> {
    if let Some(edge) = EDGE.with(|e| e.borrow().clone()) {
        return Ok(edge);
    }
    let config = EdgeConfig::from_lookup(|k| lookup(env, k)).map_err(|e| e.to_string())?;
    let timeout = lookup(env, "ORIGIN_TIMEOUT_MS")
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let edge = Rc::new(Edge::new(
        config,
        CfOrigin {
            timeout_ms: timeout,
        },
        CfLimiter { env: env.clone() },
        CfCache,
        CfRevocations { env: env.clone() },
        CfPlatform,
    ));
    EDGE.with(|e| *e.borrow_mut() = Some(Rc::clone(&edge)));
    Ok(edge)
}

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let edge = match edge(&env) {
        Ok(edge) => edge,
        Err(e) => {
            worker::console_error!("{e}");
            return into_worker(problem::unavailable());
        }
    };
    let client_ip = req
        .headers()
        .get("cf-connecting-ip")?
        .and_then(|ip| ip.parse::<IpAddr>().ok());
    let refuse = |req: &Request, code| {
        let mut headers = http::HeaderMap::new();
        for (name, value) in req.headers().entries() {
            if let (Ok(n), Ok(v)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_str(&value),
            ) {
                headers.append(n, v);
            }
        }
        into_worker(edge.refuse(&headers, problem::problem(code)))
    };
    let limit = body_max(&req.path());
    if declares_oversized_body(&req.path(), req.headers().get("content-length")?.as_deref()) {
        return refuse(&req, ErrorCode::PayloadTooLarge);
    }
    let request = match into_http(&mut req).await {
        Ok(r) if r.body().len() > limit => {
            return refuse(&req, ErrorCode::PayloadTooLarge);
        }
        Ok(r) => r,
        Err(_) => {
            return refuse(&req, ErrorCode::MalformedRequest);
        }
    };
    // The platform's own word on the client's country: never a client's header.
    let country = req.cf().and_then(|cf| cf.country());
    let client = Client {
        ip: client_ip,
        country,
    };
    into_worker(edge.handle(request, client).await)
}

async fn into_http(req: &mut Request) -> Result<http::Request<Bytes>> {
    let url = req.url()?;
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let mut builder = http::Request::builder()
        .method(req.method().as_ref())
        .uri(path);
    for (name, value) in req.headers().entries() {
        builder = builder.header(name, value);
    }
    let body = req.bytes().await.unwrap_or_default();
    builder
        .body(Bytes::from(body))
        .map_err(|e| worker::Error::RustError(e.to_string()))
}

fn into_worker(res: http::Response<Bytes>) -> Result<Response> {
    let headers = Headers::new();
    for (name, value) in res.headers() {
        if let Ok(v) = value.to_str() {
            headers.append(name.as_str(), v)?;
        }
    }
    let status = res.status().as_u16();
    let body = res.into_body();
    let response = if body.is_empty() {
        Response::empty()?
    } else {
        Response::from_bytes(body.to_vec())?
    };
    Ok(response.with_status(status).with_headers(headers))
}

/// The origin over `fetch`.
pub struct CfOrigin {
    timeout_ms: u64,
}

impl Origin for CfOrigin {
    async fn send(
        &self,
        req: http::Request<Bytes>,
    ) -> std::result::Result<http::Response<Bytes>, OriginError> {
        let (method, uri) = (req.method().clone(), req.uri().clone());
        let answer = self.exchange(req).await;
        if let Err(OriginError(why)) = &answer {
            // The path only: a query string may hold a one-time token.
            worker::console_error!("origin unreachable: {method} {}: {why}", uri.path());
        }
        answer
    }
}

impl CfOrigin {
    /// One request and its whole response, within `ORIGIN_TIMEOUT_MS`.
    async fn exchange(
        &self,
        req: http::Request<Bytes>,
    ) -> std::result::Result<http::Response<Bytes>, OriginError> {
        let err = |e: worker::Error| OriginError(e.to_string());
        let headers = Headers::new();
        for (name, value) in req.headers() {
            if let Ok(v) = value.to_str() {
                headers.append(name.as_str(), v).map_err(err)?;
            }
        }
        let method = Method::from(req.method().as_str().to_owned());
        let mut init = RequestInit::new();
        init.with_method(method).with_headers(headers);
        if !req.body().is_empty() {
            init.with_body(Some(js_sys::Uint8Array::from(req.body().as_ref()).into()));
        }
        let request = Request::new_with_init(&req.uri().to_string(), &init).map_err(err)?;
        let sent = Fetch::Request(request);
        let sending = sent.send();
        let deadline = Delay::from(Duration::from_millis(self.timeout_ms));
        let mut res = match select(Box::pin(sending), Box::pin(deadline)).await {
            Either::Left((res, _)) => res.map_err(err)?,
            Either::Right(_) => {
                return Err(OriginError(format!(
                    "no answer within ORIGIN_TIMEOUT_MS ({} ms)",
                    self.timeout_ms
                )));
            }
        };
        let mut builder = http::Response::builder().status(res.status_code());
        for (name, value) in res.headers().entries() {
            builder = builder.header(name, value);
        }
        let body = res.bytes().await.map_err(err)?;
        builder
            .body(Bytes::from(body))
            .map_err(|e| OriginError(e.to_string()))
    }
}

/// JSON through `serde_json`, not JavaScript numbers: security versions are full `i64`s.
async fn parse<T: for<'de> Deserialize<'de>>(req: &mut Request) -> Result<T> {
    serde_json::from_str(&req.text().await?).map_err(|e| worker::Error::RustError(e.to_string()))
}

fn json_response(value: &impl Serialize) -> Result<Response> {
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    Ok(Response::ok(serde_json::to_string(value)?)?.with_headers(headers))
}

async fn call_object<T: for<'de> Deserialize<'de>>(
    env: &Env,
    binding: &str,
    name: &str,
    body: &impl Serialize,
) -> Option<T> {
    let namespace = env.durable_object(binding).ok()?;
    let stub = namespace.id_from_name(name).ok()?.get_stub().ok()?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_body(Some(serde_json::to_string(body).ok()?.into()));
    let req = Request::new_with_init("https://object.internal/", &init).ok()?;
    let mut res = stub.fetch_with_request(req).await.ok()?;
    serde_json::from_str(&res.text().await.ok()?).ok()
}

#[derive(Serialize, Deserialize)]
struct LimitCall {
    quota: Quota,
    now_ms: i64,
}

/// Rate limits in `RateLimiter` Durable Objects, one per key.
pub struct CfLimiter {
    env: Env,
}

impl RateLimiter for CfLimiter {
    async fn check(&self, key: &str, quota: Quota, now_ms: i64) -> Decision {
        match call_object(&self.env, "RATE_LIMITER", key, &LimitCall { quota, now_ms }).await {
            Some(decision) => decision,
            // The limiter is unreachable: let the request through rather than fail it.
            None => gcra(None, now_ms, quota),
        }
    }
}

/// One quota's state.
#[durable_object]
pub struct RateLimiterObject {
    tat: RefCell<Option<i64>>,
}

impl DurableObject for RateLimiterObject {
    fn new(_state: State, _env: Env) -> Self {
        Self {
            tat: RefCell::new(None),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let call: LimitCall = parse(&mut req).await?;
        let decision = gcra(*self.tat.borrow(), call.now_ms, call.quota);
        if decision.allowed {
            *self.tat.borrow_mut() = Some(decision.tat_us);
        }
        json_response(&decision)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum RevocationCall {
    View {
        user: Uuid,
        sid: Option<Uuid>,
        now_ms: i64,
    },
    Record {
        versions: Vec<(Uuid, i64)>,
        sessions: Vec<(Uuid, i64)>,
        cursor: Option<i64>,
        now_ms: i64,
    },
}

/// Revocations in the global `Revocations` Durable Object.
pub struct CfRevocations {
    env: Env,
}

impl RevocationStore for CfRevocations {
    async fn view(&self, user: Uuid, sid: Option<Uuid>, now_ms: i64) -> RevocationView {
        call_object(
            &self.env,
            "REVOCATIONS",
            "global",
            &RevocationCall::View { user, sid, now_ms },
        )
        .await
        .unwrap_or_default()
    }

    async fn record(&self, events: &[Revocation], cursor: Option<i64>, now_ms: i64) {
        let Folded { versions, sessions } = Folded::of(events, now_ms);
        let call = RevocationCall::Record {
            versions,
            sessions,
            cursor,
            now_ms,
        };
        let _: Option<bool> = call_object(&self.env, "REVOCATIONS", "global", &call).await;
    }
}

#[derive(Default, Serialize, Deserialize)]
struct RevocationState {
    min_sv: HashMap<Uuid, i64>,
    /// Revoked sessions, until the last of their tokens expires (ms); pruned on every write.
    #[serde(default)]
    sessions: HashMap<Uuid, i64>,
    cursor: i64,
    synced_at_ms: i64,
}

/// Every revocation the edge knows, and the origin feed's cursor.
#[durable_object]
pub struct Revocations {
    state: State,
    data: RefCell<Option<RevocationState>>,
}

impl Revocations {
    async fn load(&self) -> Result<()> {
        if self.data.borrow().is_none() {
            let stored: Option<RevocationState> =
                self.state.storage().get("state").await.ok().flatten();
            *self.data.borrow_mut() = Some(stored.unwrap_or_default());
        }
        Ok(())
    }
}

impl DurableObject for Revocations {
    fn new(state: State, _env: Env) -> Self {
        Self {
            state,
            data: RefCell::new(None),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        self.load().await?;
        match parse::<RevocationCall>(&mut req).await? {
            RevocationCall::View { user, sid, now_ms } => {
                let view = self.data.borrow().as_ref().map(|d| RevocationView {
                    min_sv: d.min_sv.get(&user).copied(),
                    session_revoked: sid
                        .and_then(|sid| d.sessions.get(&sid))
                        .is_some_and(|until| *until > now_ms),
                    cursor: d.cursor,
                    synced_at_ms: d.synced_at_ms,
                });
                json_response(&view.unwrap_or_default())
            }
            RevocationCall::Record {
                versions,
                sessions,
                cursor,
                now_ms,
            } => {
                let mut changed = false;
                let snapshot = {
                    let mut data = self.data.borrow_mut();
                    let d = data.get_or_insert_with(RevocationState::default);
                    for (user, sv) in versions {
                        let e = d.min_sv.entry(user).or_insert(i64::MIN);
                        if sv > *e {
                            *e = sv;
                            changed = true;
                        }
                    }
                    let before = d.sessions.len();
                    d.sessions.retain(|_, until| *until > now_ms);
                    changed |= d.sessions.len() != before;
                    for (sid, until) in sessions {
                        let e = d.sessions.entry(sid).or_insert(i64::MIN);
                        if until > *e {
                            *e = until;
                            changed = true;
                        }
                    }
                    if let Some(c) = cursor {
                        d.cursor = d.cursor.max(c);
                        d.synced_at_ms = now_ms;
                    }
                    serde_json::to_string(&*d).ok()
                };
                // Storage is written only when a revocation is new: the common poll is free.
                if changed && let Some(snapshot) = snapshot {
                    self.state.storage().put("state", snapshot).await?;
                }
                json_response(&true)
            }
        }
    }
}

/// Profiles in the data centre's Cache API.
pub struct CfCache;

fn cache_key(user: Uuid) -> String {
    format!("https://profile-cache.internal/{}", user.simple())
}

/// How long the Cache API keeps an entry (the pipeline applies the real TTL and staleness).
const CACHE_KEEP_SECS: u32 = 3600;

impl ProfileCache for CfCache {
    async fn get(&self, user: Uuid) -> Option<CachedProfile> {
        let mut res = Cache::default().get(cache_key(user), true).await.ok()??;
        serde_json::from_str(&res.text().await.ok()?).ok()
    }

    async fn put(&self, user: Uuid, profile: &CachedProfile) {
        let Ok(res) = json_response(profile) else {
            return;
        };
        let headers = Headers::new();
        let _ = headers.set("content-type", "application/json");
        let _ = headers.set("cache-control", &format!("max-age={CACHE_KEEP_SECS}"));
        let _ = Cache::default()
            .put(cache_key(user), res.with_headers(headers))
            .await;
    }

    async fn purge(&self, user: Uuid) {
        let _ = Cache::default().delete(cache_key(user), true).await;
    }
}

/// Time and ids from the JavaScript runtime.
pub struct CfPlatform;

impl Platform for CfPlatform {
    fn now_ms(&self) -> i64 {
        Date::now().as_millis() as i64
    }

    fn request_id(&self) -> String {
        let mut bytes = [0u8; 16];
        for b in &mut bytes {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }
}

//! The platform-neutral request pipeline.
//!
//! Order per request: request id → CORS preflight → `/edge/health` → bearer token (verified
//! with the `users-core` verifier) → revocation (synced from the origin's feed at most every
//! `REVOCATION_SYNC_INTERVAL`) → rate limit (per IP on `/auth/*`, per user elsewhere) → cached
//! profile read → forward. Every answer gets the request id, security headers and CORS.

mod headers;
pub mod problem;
mod routes;

use std::net::IpAddr;
use std::sync::Mutex;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use users_core::perms::Permission;
use users_core::token::{Expectations, Jwks, KeySet, TokenError, Verified};
use users_core::wire::{self, Revocation};
use uuid::Uuid;

use crate::config::EdgeConfig;
use crate::ports::{CachedProfile, Origin, Platform, ProfileCache, RateLimiter, RevocationStore};

use routes::{Route, classify};

/// Whether a request to `path` whose `Content-Length` is `content_length` already says its
/// body is over the limit ([`wire::body_max`]): adapters then refuse it with `413` before
/// buffering it.
pub fn declares_oversized_body(path: &str, content_length: Option<&str>) -> bool {
    content_length
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > wire::body_max(path) as u64)
}

/// How soon a key set fetched from the origin may be fetched again because a token named a
/// `kid` it does not hold (key rotation), in ms.
const KEY_REFRESH_MIN_MS: i64 = 30_000;

/// Who sent a request, as the platform tells it: the client's address and, where the platform
/// knows it (Cloudflare's `request.cf.country`), its country.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Client {
    pub ip: Option<IpAddr>,
    pub country: Option<String>,
}

impl Client {
    pub fn at(ip: Option<IpAddr>) -> Self {
        Self { ip, country: None }
    }
}

/// The pipeline over a platform's ports.
#[derive(Debug)]
pub struct Edge<O, L, C, R, P> {
    pub config: EdgeConfig,
    pub origin: O,
    pub limiter: L,
    pub cache: C,
    pub revocations: R,
    pub platform: P,
    keys: Mutex<Option<(KeySet, i64)>>,
}

impl<O, L, C, R, P> Edge<O, L, C, R, P>
where
    O: Origin,
    L: RateLimiter,
    C: ProfileCache,
    R: RevocationStore,
    P: Platform,
{
    pub fn new(
        config: EdgeConfig,
        origin: O,
        limiter: L,
        cache: C,
        revocations: R,
        platform: P,
    ) -> Self {
        Self {
            config,
            origin,
            limiter,
            cache,
            revocations,
            platform,
            keys: Mutex::new(None),
        }
    }

    /// Seeds the key set fetched from the origin's JWKS at `fetched_at_ms`: for platforms that
    /// start a fresh instance per request and keep the keys in their own storage.
    pub fn seed_keys(&self, keys: KeySet, fetched_at_ms: i64) {
        if let Ok(mut slot) = self.keys.lock() {
            *slot = Some((keys, fetched_at_ms));
        }
    }

    /// The key set fetched from the origin, and when (`None` with static keys or before a fetch).
    pub fn fetched_keys(&self) -> Option<(KeySet, i64)> {
        self.keys.lock().ok().and_then(|k| k.clone())
    }

    /// The answer to a request the adapter refused before the pipeline could take it (a body
    /// too large or unreadable), with the headers every answer carries.
    pub fn refuse(
        &self,
        req_headers: &http::HeaderMap,
        mut res: Response<Bytes>,
    ) -> Response<Bytes> {
        let request_id =
            headers::request_id(req_headers).unwrap_or_else(|| self.platform.request_id());
        let cors_origin = headers::allowed_origin(req_headers, &self.config.cors_origins);
        headers::finish(&mut res, &request_id, cors_origin.as_deref());
        res
    }

    /// Handles one request from `client`.
    pub async fn handle(&self, req: Request<Bytes>, client: Client) -> Response<Bytes> {
        let request_id =
            headers::request_id(req.headers()).unwrap_or_else(|| self.platform.request_id());
        let cors_origin = headers::allowed_origin(req.headers(), &self.config.cors_origins);
        let mut res = self.route(req, client, &request_id).await;
        headers::finish(&mut res, &request_id, cors_origin.as_deref());
        res
    }

    async fn route(
        &self,
        req: Request<Bytes>,
        client: Client,
        request_id: &str,
    ) -> Response<Bytes> {
        if req.method() == Method::OPTIONS && req.headers().contains_key(header::ORIGIN) {
            return headers::preflight();
        }
        let now = self.platform.now_ms();
        let route = classify(req.method(), req.uri().path());
        match route {
            Route::Health => return json(StatusCode::OK, r#"{"status":"ok","tier":"edge"}"#),
            // The edge's secret would open these: clients never reach them.
            Route::Internal => return problem::problem(users_core::problem::ErrorCode::NotFound),
            _ => {}
        }
        let principal = match headers::bearer(req.headers()) {
            None => None,
            Some(token) => match self.authenticate(&token, now).await {
                Ok(v) => Some(v),
                Err(res) => return res,
            },
        };
        let ip = client
            .ip
            .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        let limited = match (&route, &principal) {
            (Route::Auth, _) => Some((
                format!("ip:{ip}"),
                self.config.auth_ip_quota,
                wire::SCOPE_AUTH_IP,
            )),
            (_, Some(p)) => Some((
                format!("user:{}", p.claims.sub),
                self.config.user_quota,
                wire::SCOPE_USER,
            )),
            _ => None,
        };
        let profile_of = match (&route, &principal) {
            (Route::ProfileRead(target), Some(p)) => {
                let id = target.resolve(p.claims.sub);
                // Served from the cache only to callers the origin would show it to.
                id.filter(|id| *id == p.claims.sub || p.has(Permission::UsersRead))
            }
            _ => None,
        };
        // The three look-ups are independent: run them at once (each may be a round trip).
        let (view, decision, cached) = futures::future::join3(
            async {
                match &principal {
                    Some(p) => Some(self.revocations.view(p.claims.sub, p.claims.sid, now).await),
                    None => None,
                }
            },
            async {
                match &limited {
                    Some((key, quota, _)) => Some(self.limiter.check(key, *quota, now).await),
                    None => None,
                }
            },
            async {
                match profile_of {
                    Some(id) => self.cache.get(id).await,
                    None => None,
                }
            },
        )
        .await;
        if let (Some(p), Some(view)) = (&principal, &view)
            && (view.session_revoked || view.min_sv.is_some_and(|min| p.claims.sv < min))
        {
            return problem::invalid_token();
        }
        let poll = view
            .filter(|v| now - v.synced_at_ms >= self.config.revocation_sync_ms)
            .map(|v| v.cursor);
        let mut quota_state = None;
        if let (Some((_, quota, scope)), Some(decision)) = (limited, decision) {
            if !decision.allowed {
                let mut res = problem::rate_limited(decision.retry_after_secs());
                headers::quota(&mut res, scope, quota, &decision);
                return res;
            }
            quota_state = Some((scope, quota, decision));
        }
        // A due poll of the revocation feed runs beside the request, not before it: a slow or
        // hung origin then costs one timeout, not two. What it learns applies from the next
        // request on (the origin itself rejects revoked tokens on anything forwarded).
        let sync = async {
            if let Some(cursor) = poll {
                self.sync_revocations(cursor, now).await;
            }
        };
        let ((), mut res) = futures::future::join(
            sync,
            self.serve(
                req,
                route,
                principal.as_ref(),
                (profile_of, cached),
                (&ip, client.country.as_deref(), request_id),
                now,
            ),
        )
        .await;
        if let Some((scope, quota, decision)) = quota_state {
            headers::quota(&mut res, scope, quota, &decision);
        }
        res
    }

    /// Cached profile reads, or forwarding.
    async fn serve(
        &self,
        req: Request<Bytes>,
        route: Route,
        principal: Option<&Verified>,
        (profile_of, cached): (Option<Uuid>, Option<CachedProfile>),
        (ip, country, request_id): (&str, Option<&str>, &str),
        now: i64,
    ) -> Response<Bytes> {
        if let Some(hit) = cached
            .as_ref()
            .filter(|c| now - c.stored_at_ms <= self.config.profile_ttl_ms)
        {
            return cached_response(hit, req.headers(), "hit");
        }
        let written = match (&route, principal) {
            (Route::UserWrite(target), Some(p)) => target.resolve(p.claims.sub),
            _ => None,
        };
        let if_none_match = req.headers().get(header::IF_NONE_MATCH).cloned();
        let upstream = headers::to_origin(req, &self.config, (ip, country), request_id);
        let mut res = match self.origin.send(upstream).await {
            Ok(res) => res,
            Err(_) => {
                if let Some(stale) = cached.filter(|c| {
                    now - c.stored_at_ms
                        <= self.config.profile_ttl_ms + self.config.stale_if_error_ms
                }) {
                    let mut h = http::HeaderMap::new();
                    if let Some(v) = if_none_match {
                        h.insert(header::IF_NONE_MATCH, v);
                    }
                    return cached_response(&stale, &h, "stale");
                }
                return problem::unavailable();
            }
        };
        let revoked = headers::take_revocations(res.headers_mut());
        if !revoked.is_empty() {
            self.revocations.record(&revoked, None, now).await;
            for r in &revoked {
                self.cache.purge(r.user()).await;
            }
        }
        if let Some(id) = written {
            self.cache.purge(id).await;
        }
        if let Some(id) = profile_of
            && res.status() == StatusCode::OK
            && let Some(etag) = res
                .headers()
                .get(header::ETAG)
                .and_then(|v| v.to_str().ok())
            && let Ok(body) = std::str::from_utf8(res.body())
        {
            let entry = CachedProfile {
                body: body.to_owned(),
                etag: etag.to_owned(),
                stored_at_ms: now,
            };
            self.cache.put(id, &entry).await;
            res.headers_mut()
                .insert(wire::EDGE_CACHE, HeaderValue::from_static("miss"));
        }
        headers::from_origin(&mut res);
        res
    }

    /// Verifies the token and checks it is not revoked; the error is the response to send.
    /// Verifies the token (signature, algorithm, issuer, audience, time); the error is the
    /// response to send.
    async fn authenticate(&self, token: &str, now: i64) -> Result<Verified, Response<Bytes>> {
        let expect = Expectations {
            issuer: self.config.issuer.clone(),
            audience: self.config.audience.clone(),
        };
        let now_s = now / 1000;
        let mut verified = match self.keys(now, false).await {
            Some(keys) => keys.verify(token, &expect, now_s),
            None => return Err(problem::unavailable()),
        };
        if verified == Err(TokenError::UnknownKey) && self.config.static_keys.is_none() {
            // Perhaps the origin rotated its key: fetch the set again (rate-limited).
            if let Some(keys) = self.keys(now, true).await {
                verified = keys.verify(token, &expect, now_s);
            }
        }
        let verified = verified.map_err(|_| problem::invalid_token())?;
        Ok(verified)
    }

    /// Polls the origin's revocation feed from `cursor` and records what it lists.
    async fn sync_revocations(&self, cursor: i64, now: i64) {
        let mut cursor = cursor;
        // A few pages at most per request; the next request continues.
        for _ in 0..5 {
            let req = headers::internal_get(&self.config, &wire::revocations_page_path(cursor));
            let page = match self.origin.send(req).await {
                Ok(res) if res.status() == StatusCode::OK => {
                    serde_json::from_slice::<FeedPage>(res.body()).ok()
                }
                _ => None,
            };
            let Some(page) = page else {
                // Counted as an attempt: while the origin fails, requests do not each wait on
                // the feed before their own call; the next poll comes after the interval.
                self.revocations.record(&[], Some(cursor), now).await;
                return;
            };
            let events: Vec<Revocation> = page.events.iter().map(FeedEvent::revocation).collect();
            self.revocations.record(&events, Some(page.next), now).await;
            for r in &events {
                self.cache.purge(r.user()).await;
            }
            let full = page
                .more
                .unwrap_or(page.events.len() as i64 >= wire::REVOCATION_PAGE_MAX);
            cursor = page.next;
            if !full {
                break;
            }
        }
    }

    /// The verification keys: configured, or the origin's JWKS cached for `JWKS_TTL`.
    async fn keys(&self, now: i64, refresh: bool) -> Option<KeySet> {
        if let Some(keys) = &self.config.static_keys {
            return Some(keys.clone());
        }
        let cached = self.keys.lock().ok().and_then(|k| k.clone());
        if let Some((keys, at)) = &cached {
            let fresh = now - at < self.config.jwks_ttl_ms;
            let may_refresh = now - at >= KEY_REFRESH_MIN_MS;
            if fresh && !(refresh && may_refresh) {
                return Some(keys.clone());
            }
        }
        let req = headers::internal_get(&self.config, wire::JWKS_PATH);
        let fetched = match self.origin.send(req).await {
            Ok(res) if res.status() == StatusCode::OK => serde_json::from_slice::<Jwks>(res.body())
                .ok()
                .map(|j| KeySet::from_jwks(&j)),
            _ => None,
        };
        match fetched {
            Some(keys) => {
                if let Ok(mut slot) = self.keys.lock() {
                    *slot = Some((keys.clone(), now));
                }
                Some(keys)
            }
            // The origin is away: keep using what we had.
            // Its timestamp moves on, so requests do not each retry the fetch.
            None => cached.map(|(keys, _)| {
                if let Ok(mut slot) = self.keys.lock() {
                    *slot = Some((keys.clone(), now));
                }
                keys
            }),
        }
    }
}

#[derive(Debug, serde::Deserialize)]
struct FeedEvent {
    user_id: Uuid,
    security_version: i64,
    #[serde(default)]
    session_id: Option<Uuid>,
    #[serde(default)]
    until: Option<i64>,
}

impl FeedEvent {
    fn revocation(&self) -> Revocation {
        Revocation::of_event(
            self.user_id,
            self.security_version,
            self.session_id,
            self.until,
        )
    }
}

#[derive(Debug, serde::Deserialize)]
struct FeedPage {
    events: Vec<FeedEvent>,
    next: i64,
    /// Whether the origin has more after `next` (absent from older origins: a full page).
    #[serde(default)]
    more: Option<bool>,
}

fn json(status: StatusCode, body: &'static str) -> Response<Bytes> {
    let mut res = Response::new(Bytes::from_static(body.as_bytes()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// A profile answered from the cache (`304` when `If-None-Match` matches).
fn cached_response(
    hit: &CachedProfile,
    req_headers: &http::HeaderMap,
    how: &'static str,
) -> Response<Bytes> {
    let matches = req_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| wire::etag_matches(v, &hit.etag));
    let mut res = if matches {
        let mut r = Response::new(Bytes::new());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(Bytes::from(hit.body.clone()));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    };
    if let Ok(v) = HeaderValue::from_str(&hit.etag) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(wire::PROFILE_CACHE_CONTROL),
    );
    res.headers_mut()
        .insert(wire::EDGE_CACHE, HeaderValue::from_static(how));
    res
}

#[cfg(test)]
mod tests;

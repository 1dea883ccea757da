//! The Spin adapter (spin-sdk 7, `wasm32-wasip2`): SDK glue only.
//!
//! Spin starts a fresh instance for every request, so whatever must outlive a request lives
//! in key-value stores:
//! - `default`: revocations (one key per user, kept for good; one per revoked session, until
//!   its tokens expire; the feed cursor),
//!   rate-limit state and the key set fetched from the origin;
//! - `profiles`: cached profile reads.
//!
//! Spin key-value has no expiry. Values that expire are stored in an envelope with their
//! expiry time ([`kv`]), read as absent once it has passed, and deleted by a sweep that one
//! request in [`SWEEP_ONE_IN`] runs after answering. Nor has it an atomic increment: a
//! rate-limit check is a read and then a write, so requests for one key that overlap in time
//! may each see the same state and all pass. The limit is exact for sequential requests and can be exceeded by
//! at most the number of requests in flight for that key at once.
//!
//! Configuration comes from Spin variables: the names in [`SETTINGS`] in lower case.
//!
//! Forwarding uses outbound HTTP. The outgoing request is built by hand, and its
//! "transmitted" future is kept until the response body has been read: dropping it early lets
//! a host abort the connection, which loses a body that arrives after the headers.

#![allow(missing_debug_implementations)] // SDK handles (Store) have no Debug.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt as _;
use futures::future::{Either, join, join_all, join3, select};
use serde::{Deserialize, Serialize};
use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::{FullBody, Request};
use spin_sdk::http_service;
use spin_sdk::key_value::Store;
use spin_sdk::wasip3::clocks::monotonic_clock;
use spin_sdk::wasip3::http::{client, types};
use spin_sdk::wasip3::http_compat::http_from_wasi_response;
use spin_sdk::wasip3::random::random;
use spin_sdk::wasip3::{wit_future, wit_stream};
use users_core::problem::ErrorCode;
use users_core::ratelimit::{Decision, Quota, gcra};
use users_core::token::{Jwks, KeySet};
use users_core::wire::{Revocation, body_max};
use uuid::Uuid;

mod kv;

use kv::{get_fresh, get_json, set_expiring, set_json, sweep};

use crate::config::{EdgeConfig, SETTINGS};
use crate::pipeline::{Client, Edge, declares_oversized_body, problem};
use crate::ports::{
    CachedProfile, Folded, Origin, OriginError, Platform, ProfileCache, RateLimiter,
    RevocationStore, RevocationView,
};

type SpinEdge = Edge<SpinOrigin, SpinLimiter, SpinCache, SpinRevocations, SpinPlatform>;

/// Revocations, rate limits and the fetched key set.
pub const STATE_STORE: &str = "default";
/// Cached profiles.
pub const PROFILE_STORE: &str = "profiles";
/// One request in this many sweeps expired entries from both stores.
pub const SWEEP_ONE_IN: u64 = 256;
/// Headers the Spin host adds to an incoming request; never forwarded.
const HOST_HEADER_PREFIX: &str = "spin-";
/// Headers outbound HTTP refuses (the authority comes from the URL).
const OUTBOUND_FORBIDDEN: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "host",
    "http2-settings",
];
const JWKS_KEY: &str = "jwks";
const CURSOR_KEY: &str = "revocations:cursor";

#[http_service]
async fn handle(req: Request) -> http::Response<FullBody<Bytes>> {
    serve(req).await.map(FullBody::new)
}

async fn serve(req: Request) -> http::Response<Bytes> {
    let settings = settings().await;
    let config = match EdgeConfig::from_lookup(|k| settings.get(k).cloned()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return problem::unavailable();
        }
    };
    let timeout_ms = settings
        .get("ORIGIN_TIMEOUT_MS")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(5000);
    let client_ip = client_ip(req.headers());
    let (state, profiles) = join(Store::open(STATE_STORE), Store::open(PROFILE_STORE)).await;
    let (state, profiles) = (state.ok().map(Rc::new), profiles.ok().map(Rc::new));
    let keep_ms = config.profile_ttl_ms + config.stale_if_error_ms;
    let static_keys = config.static_keys.is_some();
    let edge: SpinEdge = Edge::new(
        config,
        SpinOrigin { timeout_ms },
        SpinLimiter {
            store: state.clone(),
        },
        SpinCache {
            store: profiles.clone(),
            keep_ms,
        },
        SpinRevocations {
            store: state.clone(),
        },
        SpinPlatform,
    );
    let request = match into_http(req).await {
        Ok(request) => request,
        Err((refused, headers)) => return edge.refuse(&headers, refused),
    };

    let mut seeded_at = None;
    if !static_keys
        && let Some(store) = &state
        && let Some(stored) = get_json::<StoredKeys>(store, JWKS_KEY).await
    {
        edge.seed_keys(KeySet::from_jwks(&stored.jwks), stored.fetched_at_ms);
        seeded_at = Some(stored.fetched_at_ms);
    }

    let response = edge.handle(request, Client::at(client_ip)).await;

    if let (Some(store), Some((keys, at))) = (&state, edge.fetched_keys())
        && seeded_at != Some(at)
    {
        let stored = StoredKeys {
            jwks: keys.to_jwks(),
            fetched_at_ms: at,
        };
        set_json(store, JWKS_KEY, &stored).await;
    }
    if random::get_random_u64().is_multiple_of(SWEEP_ONE_IN) {
        let now = now_ms();
        for store in [&state, &profiles].into_iter().flatten() {
            sweep(store, now).await;
        }
    }
    response
}

/// Every setting that is defined, by its upper-case name.
async fn settings() -> HashMap<&'static str, String> {
    let values = join_all(SETTINGS.iter().map(|name| async move {
        let value = spin_sdk::variables::get(name.to_ascii_lowercase()).await;
        (*name, value.ok())
    }))
    .await;
    values
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
        .collect()
}

/// The client address Spin passes in `spin-client-addr` (`ip:port`).
fn client_ip(headers: &http::HeaderMap) -> Option<IpAddr> {
    let raw = headers.get("spin-client-addr")?.to_str().ok()?.trim();
    raw.parse::<SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| raw.parse::<IpAddr>())
        .ok()
}

/// The request as the pipeline takes it: path-only URI, whole body, no Spin host headers.
/// A body over its route's limit ([`body_max`]) is refused with `413` as soon as that is known; a refusal comes
/// with the request's headers.
async fn into_http(
    req: Request,
) -> Result<http::Request<Bytes>, (http::Response<Bytes>, http::HeaderMap)> {
    let too_large = || problem::problem(ErrorCode::PayloadTooLarge);
    let malformed = || problem::problem(ErrorCode::MalformedRequest);
    let (parts, body) = req.into_parts();
    let declared = parts.headers.get(http::header::CONTENT_LENGTH);
    let limit = body_max(parts.uri.path());
    if declares_oversized_body(parts.uri.path(), declared.and_then(|v| v.to_str().ok())) {
        return Err((too_large(), parts.headers));
    }
    let mut chunks = body.stream();
    let mut buf = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let Ok(chunk) = chunk else {
            return Err((malformed(), parts.headers));
        };
        if buf.len() + chunk.len() > limit {
            return Err((too_large(), parts.headers));
        }
        buf.extend_from_slice(&chunk);
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut builder = http::Request::builder().method(&parts.method).uri(path);
    for (name, value) in &parts.headers {
        if !name.as_str().starts_with(HOST_HEADER_PREFIX) {
            builder = builder.header(name, value);
        }
    }
    builder
        .body(Bytes::from(buf))
        .map_err(|_| (malformed(), parts.headers))
}

/// The origin over outbound HTTP, with a deadline (`ORIGIN_TIMEOUT_MS`, default 5000).
pub struct SpinOrigin {
    timeout_ms: u64,
}

impl Origin for SpinOrigin {
    async fn send(&self, req: http::Request<Bytes>) -> Result<http::Response<Bytes>, OriginError> {
        let (method, uri) = (req.method().clone(), req.uri().clone());
        let deadline = monotonic_clock::wait_for(self.timeout_ms.saturating_mul(1_000_000));
        let answer = match select(pin!(exchange(req)), pin!(deadline)).await {
            Either::Left((res, _)) => res,
            Either::Right(_) => Err(OriginError(format!(
                "no answer within ORIGIN_TIMEOUT_MS ({} ms)",
                self.timeout_ms
            ))),
        };
        if let Err(OriginError(why)) = &answer {
            // The path only: a query string may hold a one-time token.
            eprintln!("origin unreachable: {method} {}: {why}", uri.path());
        }
        answer
    }
}

fn code(e: types::ErrorCode) -> OriginError {
    OriginError(format!("{e:?}"))
}

/// One request and its whole response.
async fn exchange(req: http::Request<Bytes>) -> Result<http::Response<Bytes>, OriginError> {
    let (parts, body) = req.into_parts();
    let mut fields: Vec<(String, Vec<u8>)> = parts
        .headers
        .iter()
        .filter(|(name, _)| !OUTBOUND_FORBIDDEN.contains(&name.as_str()))
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect();
    if !body.is_empty() {
        fields.push(("content-length".into(), body.len().to_string().into_bytes()));
    }
    let headers =
        types::Fields::from_list(&fields).map_err(|e| OriginError(format!("headers: {e:?}")))?;

    let (mut body_tx, body_rx) = wit_stream::new::<u8>();
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    let contents = (!body.is_empty()).then_some(body_rx);
    let (request, transmitted) = types::Request::new(headers, contents, trailers_rx, None);
    let bad_uri = || OriginError(format!("bad origin URL: {}", parts.uri));
    request
        .set_method(&(&parts.method).into())
        .map_err(|()| OriginError("bad method".into()))?;
    request
        .set_scheme(parts.uri.scheme().map(Into::into).as_ref())
        .map_err(|()| bad_uri())?;
    request
        .set_authority(parts.uri.authority().map(|a| a.as_str()))
        .map_err(|()| bad_uri())?;
    request
        .set_path_with_query(parts.uri.path_and_query().map(|p| p.as_str()))
        .map_err(|()| bad_uri())?;

    let writing = async move {
        if !body.is_empty() {
            body_tx.write_all(body.to_vec()).await;
        }
        drop(body_tx);
        let _ = trailers_tx.write(Ok(None)).await;
    };
    let reading = async {
        let response = client::send(request).await.map_err(code)?;
        let (parts, body) = http_from_wasi_response(response)
            .map_err(code)?
            .into_parts();
        let body = body.bytes().await.map_err(code)?;
        Ok(http::Response::from_parts(parts, body))
    };
    let (response, ()) = join(reading, writing).await;
    // Only now, with the whole body read, may the request's transmission end.
    drop(transmitted);
    response
}

/// Rate limits: GCRA state per key, read and written back (no atomic increment in Spin).
pub struct SpinLimiter {
    store: Option<Rc<Store>>,
}

impl RateLimiter for SpinLimiter {
    async fn check(&self, key: &str, quota: Quota, now_ms: i64) -> Decision {
        let Some(store) = &self.store else {
            // No store: let the request through rather than fail it.
            return gcra(None, now_ms, quota);
        };
        let key = format!("ratelimit:{key}");
        let tat = get_fresh::<i64>(store, &key, now_ms).await;
        let decision = gcra(tat, now_ms, quota);
        if decision.allowed {
            // Once the TAT has passed, the state means nothing more than "absent".
            let expires = decision.tat_us.div_euclid(1000) + 1;
            set_expiring(store, &key, &decision.tat_us, expires).await;
        }
        decision
    }
}

#[derive(Serialize, Deserialize)]
struct StoredKeys {
    jwks: Jwks,
    fetched_at_ms: i64,
}

#[derive(Default, Serialize, Deserialize)]
struct FeedCursor {
    cursor: i64,
    synced_at_ms: i64,
}

fn revocation_key(user: Uuid) -> String {
    format!("revoked:{}", user.simple())
}

/// A revoked session, as an expiring envelope: the sweep deletes it once its tokens expired.
fn session_key(sid: Uuid) -> String {
    format!("revoked-session:{}", sid.simple())
}

/// Revocations: the highest security version per user, and the feed cursor.
pub struct SpinRevocations {
    store: Option<Rc<Store>>,
}

impl RevocationStore for SpinRevocations {
    async fn view(&self, user: Uuid, sid: Option<Uuid>, now_ms: i64) -> RevocationView {
        let Some(store) = &self.store else {
            return RevocationView::default();
        };
        let key = revocation_key(user);
        let session = async {
            match sid {
                Some(sid) => get_fresh::<bool>(store, &session_key(sid), now_ms).await,
                None => None,
            }
        };
        let (min_sv, cursor, session) = join3(
            get_json::<i64>(store, &key),
            get_json::<FeedCursor>(store, CURSOR_KEY),
            session,
        )
        .await;
        let cursor = cursor.unwrap_or_default();
        RevocationView {
            min_sv,
            session_revoked: session.unwrap_or(false),
            cursor: cursor.cursor,
            synced_at_ms: cursor.synced_at_ms,
        }
    }

    async fn record(&self, events: &[Revocation], cursor: Option<i64>, now_ms: i64) {
        let Some(store) = &self.store else {
            return;
        };
        let Folded { versions, sessions } = Folded::of(events, now_ms);
        join_all(sessions.into_iter().map(|(sid, until_ms)| async move {
            set_expiring(store, &session_key(sid), &true, until_ms).await;
        }))
        .await;
        join_all(versions.into_iter().map(|(user, sv)| async move {
            let key = revocation_key(user);
            if get_json::<i64>(store, &key)
                .await
                .is_none_or(|known| sv > known)
            {
                set_json(store, &key, &sv).await;
            }
        }))
        .await;
        if let Some(reached) = cursor {
            let known = get_json::<FeedCursor>(store, CURSOR_KEY)
                .await
                .unwrap_or_default();
            let next = FeedCursor {
                cursor: known.cursor.max(reached),
                synced_at_ms: now_ms,
            };
            set_json(store, CURSOR_KEY, &next).await;
        }
    }
}

fn profile_key(user: Uuid) -> String {
    format!("profile:{}", user.simple())
}

/// Profiles, kept for their TTL plus the stale-if-error allowance.
pub struct SpinCache {
    store: Option<Rc<Store>>,
    keep_ms: i64,
}

impl ProfileCache for SpinCache {
    async fn get(&self, user: Uuid) -> Option<CachedProfile> {
        get_fresh(self.store.as_ref()?, &profile_key(user), now_ms()).await
    }

    async fn put(&self, user: Uuid, profile: &CachedProfile) {
        if let Some(store) = &self.store {
            let expires = profile.stored_at_ms.saturating_add(self.keep_ms);
            set_expiring(store, &profile_key(user), profile, expires).await;
        }
    }

    async fn purge(&self, user: Uuid) {
        if let Some(store) = &self.store {
            let _ = store.delete(profile_key(user)).await;
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Wall-clock time and WASI randomness.
pub struct SpinPlatform;

impl Platform for SpinPlatform {
    fn now_ms(&self) -> i64 {
        now_ms()
    }

    fn request_id(&self) -> String {
        let mut bytes = [0u8; 16];
        let random = random::get_random_bytes(16);
        bytes[..random.len().min(16)].copy_from_slice(&random[..random.len().min(16)]);
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }
}

//! The ports the pipeline needs from a platform. Declared without `Send` bounds: JavaScript
//! handles are `!Send`, and the pipeline runs on one thread per request.

use bytes::Bytes;
use http::{Request, Response};
use serde::{Deserialize, Serialize};
use users_core::ratelimit::{Decision, Quota};
use users_core::wire::Revocation;
use uuid::Uuid;

/// The origin could not be reached or did not answer in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginError(pub String);

/// Sends requests to the origin.
#[allow(async_fn_in_trait)]
pub trait Origin {
    async fn send(&self, req: Request<Bytes>) -> Result<Response<Bytes>, OriginError>;
}

/// Shared quota state (GCRA arithmetic from `users_core::ratelimit`).
#[allow(async_fn_in_trait)]
pub trait RateLimiter {
    async fn check(&self, key: &str, quota: Quota, now_ms: i64) -> Decision;
}

/// A cached profile: the origin's `200` body and `ETag`, and when it was stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedProfile {
    pub body: String,
    pub etag: String,
    pub stored_at_ms: i64,
}

/// Profile reads cached per user id (never per token).
#[allow(async_fn_in_trait)]
pub trait ProfileCache {
    async fn get(&self, user: Uuid) -> Option<CachedProfile>;
    async fn put(&self, user: Uuid, profile: &CachedProfile);
    async fn purge(&self, user: Uuid);
}

/// What the edge knows about revocations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RevocationView {
    /// The newest security version known for the user (tokens below it are revoked).
    pub min_sv: Option<i64>,
    /// Whether the token's session is revoked (SPEC §7).
    #[serde(default)]
    pub session_revoked: bool,
    /// The origin feed's cursor and when it was last polled.
    pub cursor: i64,
    pub synced_at_ms: i64,
}

/// Revocations, strongly consistent for every request that consults it.
///
/// Memory stays bounded: a user's security version is one number per user, and a revoked
/// session is kept only until its `until` (the last `exp` of its tokens) has passed.
#[allow(async_fn_in_trait)]
pub trait RevocationStore {
    /// The view for a token of `user` in session `sid`, at `now_ms`.
    async fn view(&self, user: Uuid, sid: Option<Uuid>, now_ms: i64) -> RevocationView;
    /// Records revocations (keeping the highest version per user, and each revoked session
    /// until it expires) at `now_ms` and, when given, the feed cursor reached then.
    async fn record(&self, events: &[Revocation], cursor: Option<i64>, now_ms: i64);
}

/// The revocations of one call to [`RevocationStore::record`], folded: the highest version
/// per user, and the sessions (with when they may be forgotten, in ms) not yet expired.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Folded {
    pub versions: Vec<(Uuid, i64)>,
    pub sessions: Vec<(Uuid, i64)>,
}

impl Folded {
    pub fn of(events: &[Revocation], now_ms: i64) -> Self {
        let mut versions: std::collections::BTreeMap<Uuid, i64> = Default::default();
        let mut sessions: std::collections::BTreeMap<Uuid, i64> = Default::default();
        for event in events {
            match *event {
                Revocation::Version { user, sv } => {
                    let e = versions.entry(user).or_insert(sv);
                    *e = (*e).max(sv);
                }
                Revocation::Session { sid, until, .. } => {
                    let until_ms = until.saturating_mul(1000);
                    if until_ms > now_ms {
                        let e = sessions.entry(sid).or_insert(until_ms);
                        *e = (*e).max(until_ms);
                    }
                }
            }
        }
        Self {
            versions: versions.into_iter().collect(),
            sessions: sessions.into_iter().collect(),
        }
    }
}

/// Time and randomness.
pub trait Platform {
    fn now_ms(&self) -> i64;
    /// A fresh request id.
    fn request_id(&self) -> String;
}

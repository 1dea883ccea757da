//! The ports the pipeline needs from a platform. Declared without `Send` bounds: JavaScript
//! handles are `!Send`, and the pipeline runs on one thread per request.

use bytes::Bytes;
use http::{Request, Response};
use serde::{Deserialize, Serialize};
use users_core::ratelimit::{Decision, Quota};
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
    /// The origin feed's cursor and when it was last polled.
    pub cursor: i64,
    pub synced_at_ms: i64,
}

/// Revocations, strongly consistent for every request that consults it.
#[allow(async_fn_in_trait)]
pub trait RevocationStore {
    /// The view for `user`.
    async fn view(&self, user: Uuid) -> RevocationView;
    /// Records revocations (keeping the highest version per user) and, when given, the feed
    /// cursor reached at `synced_at_ms`.
    async fn record(&self, events: &[(Uuid, i64)], cursor: Option<(i64, i64)>);
}

/// Time and randomness.
pub trait Platform {
    fn now_ms(&self) -> i64;
    /// A fresh request id.
    fn request_id(&self) -> String;
}

//! `GET /internal/revocations?since=<seq>`: every revocation after a cursor, for edges to poll
//! (bounded lag for the edges that did not forward the revoking request). Only the edge may
//! call it: to anyone else it does not exist (`404`).

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use users_core::wire;

use crate::db::{self, events::SecurityEvent};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::FromEdge;
use crate::state::AppState;

/// Most events in one page of the feed.
const PAGE_MAX: i64 = wire::REVOCATION_PAGE_MAX;

pub fn router() -> Router<AppState> {
    Router::new().route(wire::REVOCATIONS_PATH, get(feed))
}

#[derive(Debug, Deserialize)]
struct FeedQuery {
    since: Option<i64>,
    limit: Option<i64>,
}

/// `GET /internal/revocations`: `{"events": [...], "next": <cursor>, "more": bool}`.
async fn feed(
    State(state): State<AppState>,
    Extension(from_edge): Extension<FromEdge>,
    Query(q): Query<FeedQuery>,
) -> ApiResult<Json<Value>> {
    if !from_edge.0 {
        return Err(ApiError::NotFound);
    }
    let since = q.since.unwrap_or(0).max(0);
    let limit = q.limit.unwrap_or(PAGE_MAX).clamp(1, PAGE_MAX);
    let client = state.db.get().await?;
    let mut events: Vec<SecurityEvent> = db::events::since(&client, since, limit).await?;
    let next = events.last().map_or(since, |e| e.seq);
    let more = events.len() as i64 >= limit;
    // A revoked session whose tokens have all expired needs no edge to remember it.
    let now = crate::clock::now();
    events.retain(|e| !e.expired(now));
    Ok(Json(json!({"events": events, "next": next, "more": more})))
}

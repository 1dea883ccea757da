//! What the origin tells its edges about revocations (SPEC §4).
//!
//! - A mutating request that came through the edge (it carries the edge's secret) gets the
//!   revocations it caused echoed in `X-Users-Revoked: <user id>:<security version>, …`, so that
//!   edge rejects the revoked tokens at once; the edge strips the header.
//! - `GET /internal/revocations?since=<seq>` lists every revocation after a cursor, for edges
//!   to poll (bounded lag everywhere else). Only the edge may call it: to anyone else it does
//!   not exist (`404`).

use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::client::FromEdge;
use crate::db::{self, events::SecurityEvent};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The response header that carries revocations to the edge.
pub const REVOKED_HEADER: &str = "x-users-revoked";
/// Most events echoed in one response.
const ECHO_MAX: i64 = 100;
/// Most events in one page of the feed.
const PAGE_MAX: i64 = 1000;

pub fn router() -> Router<AppState> {
    Router::new().route("/internal/revocations", get(feed))
}

/// Echoes the revocations a mutating edge request caused.
pub async fn echo_revocations(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let from_edge = req.extensions().get::<FromEdge>().is_some_and(|f| f.0);
    if !from_edge || matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let before = match state.db.get().await {
        Ok(client) => db::events::last_seq(&client).await.ok(),
        Err(_) => None,
    };
    let mut res = next.run(req).await;
    let Some(before) = before else { return res };
    let Ok(client) = state.db.get().await else {
        return res;
    };
    if let Ok(events) = db::events::since(&client, before, ECHO_MAX).await
        && !events.is_empty()
    {
        let value = events
            .iter()
            .map(|e| format!("{}:{}", e.user_id, e.security_version))
            .collect::<Vec<_>>()
            .join(", ");
        if let Ok(v) = HeaderValue::from_str(&value) {
            res.headers_mut().insert(REVOKED_HEADER, v);
        }
    }
    res
}

#[derive(Debug, Deserialize)]
struct FeedQuery {
    since: Option<i64>,
    limit: Option<i64>,
}

/// `GET /internal/revocations`: `{"events": [...], "next": <cursor>}`.
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
    let events: Vec<SecurityEvent> = db::events::since(&client, since, limit).await?;
    let next = events.last().map_or(since, |e| e.seq);
    Ok(Json(json!({"events": events, "next": next})))
}

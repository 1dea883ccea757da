//! The revocation echo (SPEC §4): a mutating request that came through the edge (it carries
//! the edge's secret) gets the revocations it caused echoed in
//! `X-Users-Revoked: <user id>:<security version>, <user id>:<session id>@<until>, …`, so that edge rejects the revoked tokens
//! at once; the edge strips the header. Every other edge learns them from the feed
//! (`http::routes::internal`).

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use users_core::wire;

use crate::db::{self, events::SecurityEvent};
use crate::http::extract::FromEdge;
use crate::state::AppState;

/// The response header that carries revocations to the edge.
pub const REVOKED_HEADER: &str = wire::REVOKED;
/// Most events echoed in one response.
const ECHO_MAX: i64 = 100;

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
        let value = wire::revoked_value(events.iter().map(SecurityEvent::revocation));
        if let Ok(v) = HeaderValue::from_str(&value) {
            res.headers_mut().insert(REVOKED_HEADER, v);
        }
    }
    res
}

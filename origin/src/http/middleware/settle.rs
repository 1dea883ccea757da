//! Before a request that may have written answers, this replica's memory has heard every change
//! committed so far (`listen::settle`): the replica that commits a revoking write never serves
//! what it revoked, not even on the very next request.

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

/// Settles the memory after every request but `GET`, `HEAD` and `OPTIONS`.
pub async fn settle_writes(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let res = next.run(req).await;
    if state.follower.memo.is_following() {
        match state.db.get().await {
            Ok(client) => crate::listen::settle(&state.follower, &client).await,
            Err(e) => {
                tracing::warn!(error = %e, "no connection to settle a write: distrusting the memory");
                state.follower.distrust("no connection to settle a write");
            }
        }
    }
    res
}

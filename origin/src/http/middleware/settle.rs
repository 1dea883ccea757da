//! Before a request that may have written answers, this replica's memory has heard every change
//! committed so far (`listen::settle`): the replica that commits a revoking write never serves
//! what it revoked, not even on the very next request. A handler whose writes change nothing a
//! replica remembers (a login: a new session, the audit log) says so with [`NothingToSettle`]
//! and saves the round trip.

use std::convert::Infallible;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponseParts, Response, ResponseParts};

use crate::state::AppState;

/// A response part: the request's writes change nothing in any replica's memory (principals,
/// sessions' revocation, user views), so the answer need not wait to hear them.
#[derive(Debug, Clone, Copy)]
pub struct NothingToSettle;

impl IntoResponseParts for NothingToSettle {
    type Error = Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Infallible> {
        res.extensions_mut().insert(self);
        Ok(res)
    }
}

/// Settles the memory after every request but `GET`, `HEAD` and `OPTIONS`, and those whose
/// answer carries [`NothingToSettle`].
pub async fn settle_writes(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let res = next.run(req).await;
    if res.extensions().get::<NothingToSettle>().is_some() {
        return res;
    }
    if state.follower.memo.is_following() {
        state.metrics.memo_settles.inc();
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

//! Sessions (SPEC §7): a user's logins, listed and ended by the user (`/users/me/sessions`)
//! or by an administrator (`/users/{id}/sessions`: `users:read` to list, `users:update` to
//! end). Ending one session revokes its refresh family and its access tokens, at the origin at
//! once and at every edge through the revocation feed; the user's other sessions keep working.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use users_core::cursor::{Cursor, Sort};
use users_core::perms::Permission;
use uuid::Uuid;

use crate::accounts::revoke_sessions;
use crate::db::{self, audit::Event, sessions::SessionRow, users::rfc3339};
use crate::fields::Check;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Auth, SessionIdPath, UserId};
use crate::http::validate::{non_empty_query, page_limit};
use crate::state::AppState;

/// One live session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    id: Uuid,
    /// Whether the request was made with this session's access token.
    current: bool,
    /// RFC 3339.
    created_at: String,
    /// RFC 3339: the last refresh, or an authenticated request (stamped at most every 5 min).
    last_used_at: String,
    /// RFC 3339: when its refresh token expires.
    expires_at: String,
    /// The client address of the login.
    ip: Option<String>,
    /// The `User-Agent` of the login (at most 256 characters).
    user_agent: Option<String>,
    /// ISO 3166-1 alpha-2 country of the login, as the edge saw it.
    country: Option<String>,
    /// Whether the login passed a second factor.
    mfa: bool,
}

impl SessionView {
    fn of(row: &SessionRow, current: Option<Uuid>) -> Self {
        Self {
            id: row.id,
            current: current == Some(row.id),
            created_at: rfc3339(row.created_at),
            last_used_at: rfc3339(row.last_used_at),
            expires_at: rfc3339(row.expires_at),
            ip: row.ip.clone(),
            user_agent: row.user_agent.clone(),
            country: row.country.clone(),
            mfa: row.mfa,
        }
    }
}

/// A page of sessions, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionPage {
    items: Vec<SessionView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

/// How many sessions a bulk revocation ended.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Revoked {
    revoked: u64,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SessionQuery {
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ScopeQuery {
    /// `others`: every session but the one making the request; `all` (the default): every
    /// session, and every access token of the user.
    #[param(pattern = "^(others|all)$")]
    scope: Option<String>,
}

/// `GET /users/me/sessions`: the caller's live sessions.
#[utoipa::path(get, path = "/users/me/sessions", tag = "sessions", security(("bearer" = [])), params(SessionQuery), responses((status = 200, description = "One page, newest first", body = SessionPage)))]
pub async fn list_mine(
    State(state): State<AppState>,
    auth: Auth,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<SessionPage>> {
    let id = auth.user_id;
    list(&state, &auth, id, raw.as_deref()).await
}

/// `GET /users/{id}/sessions` (self or `users:read`): the user's live sessions.
#[utoipa::path(get, path = "/users/{id}/sessions", tag = "sessions", security(("bearer" = [])), params(("id" = String, Path), SessionQuery), responses((status = 200, description = "One page, newest first", body = SessionPage)))]
pub async fn list_of(
    State(state): State<AppState>,
    auth: Auth,
    UserId(id): UserId,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<SessionPage>> {
    auth.require_on(Some(id), Permission::UsersRead)?;
    list(&state, &auth, id, raw.as_deref()).await
}

async fn list(
    state: &AppState,
    auth: &Auth,
    user: Uuid,
    raw: Option<&str>,
) -> ApiResult<Json<SessionPage>> {
    let query: SessionQuery = non_empty_query(raw)?;
    let mut check = Check::default();
    let limit = page_limit(&mut check, query.limit.as_deref());
    check.finish()?;
    let cursor = match query.cursor.as_deref() {
        None => None,
        Some(c) => Some(
            Cursor::decode(c)
                .ok()
                .filter(|c| c.sort == Sort::CreatedDesc)
                .ok_or(ApiError::InvalidCursor)?,
        ),
    };
    let client = state.db.get().await?;
    if db::users::get(&client, user).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    let mut rows = db::sessions::list(&client, user, cursor.as_ref(), limit + 1).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last().map(|r| r.cursor().encode())
    } else {
        None
    };
    let current = auth.is(user).then_some(auth.session).flatten();
    let items = rows.iter().map(|r| SessionView::of(r, current)).collect();
    Ok(Json(SessionPage { items, next_cursor }))
}

/// `DELETE /users/me/sessions/{sid}`: ends one of the caller's sessions (`404` for any other).
#[utoipa::path(delete, path = "/users/me/sessions/{sid}", tag = "sessions", security(("bearer" = [])), params(("sid" = String, Path)), responses((status = 204, description = "Session ended: its refresh and access tokens are revoked")))]
pub async fn revoke_mine(
    State(state): State<AppState>,
    auth: Auth,
    SessionIdPath(sid): SessionIdPath,
) -> ApiResult<StatusCode> {
    let id = auth.user_id;
    revoke_one(&state, &auth, id, sid).await
}

/// `DELETE /users/{id}/sessions/{sid}` (self or `users:update`): ends one session.
#[utoipa::path(delete, path = "/users/{id}/sessions/{sid}", tag = "sessions", security(("bearer" = [])), params(("id" = String, Path), ("sid" = String, Path)), responses((status = 204, description = "Session ended: its refresh and access tokens are revoked")))]
pub async fn revoke_of(
    State(state): State<AppState>,
    auth: Auth,
    UserId(id): UserId,
    SessionIdPath(sid): SessionIdPath,
) -> ApiResult<StatusCode> {
    auth.require_on(Some(id), Permission::UsersUpdate)?;
    revoke_one(&state, &auth, id, sid).await
}

async fn revoke_one(state: &AppState, auth: &Auth, user: Uuid, sid: Uuid) -> ApiResult<StatusCode> {
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    if !db::sessions::revoke(&tx, user, sid).await? {
        return Err(ApiError::NotFound);
    }
    let event = Event::new("session.revoked", Some(auth.user_id), Some(user))
        .with(json!({"session_id": sid}));
    db::audit::record(&tx, &auth.ctx, event).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /users/me/sessions?scope=others|all`: ends the caller's other sessions, or all.
#[utoipa::path(delete, path = "/users/me/sessions", tag = "sessions", security(("bearer" = [])), params(ScopeQuery), responses((status = 200, description = "How many sessions were ended", body = Revoked)))]
pub async fn revoke_many_mine(
    State(state): State<AppState>,
    auth: Auth,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Revoked>> {
    let id = auth.user_id;
    revoke_many(&state, &auth, id, raw.as_deref()).await
}

/// `DELETE /users/{id}/sessions?scope=others|all` (self or `users:update`): ends the user's
/// sessions (`others` keeps the caller's own, when it is one of them).
#[utoipa::path(delete, path = "/users/{id}/sessions", tag = "sessions", security(("bearer" = [])), params(("id" = String, Path), ScopeQuery), responses((status = 200, description = "How many sessions were ended", body = Revoked)))]
pub async fn revoke_many_of(
    State(state): State<AppState>,
    auth: Auth,
    UserId(id): UserId,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Revoked>> {
    auth.require_on(Some(id), Permission::UsersUpdate)?;
    revoke_many(&state, &auth, id, raw.as_deref()).await
}

async fn revoke_many(
    state: &AppState,
    auth: &Auth,
    user: Uuid,
    raw: Option<&str>,
) -> ApiResult<Json<Revoked>> {
    let query: ScopeQuery = non_empty_query(raw)?;
    let others = match query.scope.as_deref() {
        None | Some("all") => false,
        Some("others") => true,
        Some(_) => return Err(ApiError::validation("scope", "must be others or all")),
    };
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    if db::users::get(&tx, user).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    let revoked = if others {
        let keep = auth.is(user).then_some(auth.session).flatten();
        db::sessions::revoke_others(&tx, user, keep).await?
    } else {
        revoke_sessions(&tx, user).await?
    };
    let scope = if others { "others" } else { "all" };
    let event = Event::new("sessions.revoked", Some(auth.user_id), Some(user))
        .with(json!({"scope": scope, "count": revoked}));
    db::audit::record(&tx, &auth.ctx, event).await?;
    tx.commit().await?;
    Ok(Json(Revoked { revoked }))
}

//! `/users`: administration and self-service of accounts.
//!
//! Authorisation: the caller may always act on their own account (except roles and
//! `is_active`); anyone else needs the matching permission. A caller who may not even read
//! the target gets `404`, so ids cannot be probed.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use users_core::cursor::{Cursor, Sort};
use users_core::model::{Page, UserView};
use users_core::perms::{Permission, USER_ROLE};
use uuid::Uuid;

use super::{Check, etag_matches, with_etag};
use crate::db::{self, audit::Event, users::UserRow};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, JsonBody};
use crate::state::AppState;

mod update;

/// The OpenAPI description of these routes.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    paths(
        get_me,
        get_user,
        create_user,
        list_users,
        delete_user,
        grant_role,
        revoke_role,
        update::put_user,
        update::patch_user
    ),
    components(schemas(UserPage, CreateBody, update::UserReplace, update::UserPatch))
)]
pub struct Docs;

/// A page of users.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct UserPage {
    items: Vec<UserView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users", get(list_users).post(create_user))
        .route("/users/me", get(get_me))
        .route(
            "/users/{id}",
            get(get_user)
                .put(update::put_user)
                .patch(update::patch_user)
                .delete(delete_user),
        )
        .route(
            "/users/{id}/roles/{name}",
            put(grant_role).delete(revoke_role),
        )
}

/// `201 Created` with `Location` and `ETag`.
pub fn created(view: &UserView) -> Response {
    let mut res = with_etag(StatusCode::CREATED, &view.etag(), view);
    if let Ok(v) = HeaderValue::from_str(&format!("/users/{}", view.id)) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// A path id; anything that is not a UUID names no user.
pub fn parse_id(raw: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound)
}

/// Refuses callers who are neither the target nor hold `perm`: `404` if they cannot read
/// users at all, `403` if they can.
pub fn authorize(auth: &Auth, target: Uuid, perm: Permission) -> ApiResult<()> {
    if auth.is(target) || auth.has(perm) {
        Ok(())
    } else if auth.has(Permission::UsersRead) {
        Err(ApiError::forbidden(format!(
            "This requires the {perm} permission."
        )))
    } else {
        Err(ApiError::NotFound)
    }
}

/// Refuses granting roles whose permissions the actor does not hold itself.
pub async fn check_grantable(
    db: &impl db::GenericClient,
    auth: &Auth,
    roles: &[String],
) -> ApiResult<Vec<String>> {
    let found = db::roles::get_many(db, roles).await?;
    let mut check = Check::default();
    for name in roles {
        if !found.iter().any(|r| &r.name == name) {
            check.fail("roles", format!("unknown role {name:?}"));
        }
    }
    check.finish()?;
    if let Some(role) = found
        .iter()
        .find(|r| r.permissions.iter().any(|p| !auth.has(*p)))
    {
        return Err(ApiError::forbidden(format!(
            "You cannot grant the role {:?}: it carries permissions you do not hold.",
            role.name
        )));
    }
    Ok(found.into_iter().map(|r| r.name).collect())
}

fn read_response(view: &UserView, headers: &HeaderMap) -> Response {
    let etag = view.etag();
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| etag_matches(v, &etag));
    let mut res = if not_modified {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(v) = HeaderValue::from_str(&etag) {
            r.headers_mut().insert(header::ETAG, v);
        }
        r
    } else {
        with_etag(StatusCode::OK, &etag, view)
    };
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    res
}

/// `GET /users/me`.
#[utoipa::path(get, path = "/users/me", tag = "users", security(("bearer" = [])), params(("If-None-Match" = Option<String>, Header)), responses((status = 200, description = "Your account", body = UserView, headers(("ETag" = String))), (status = 304, description = "Not modified")))]
async fn get_me(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let view = cached_view(&state, auth.user_id)
        .await?
        .ok_or(ApiError::InvalidToken)?;
    Ok(read_response(&view, &headers))
}

/// The view of `id`, from the cache or from PostgreSQL (then cached).
pub async fn cached_view(state: &AppState, id: Uuid) -> ApiResult<Option<UserView>> {
    if let Some(view) = state.cache.get(id).await {
        state.metrics.cache_hits.inc();
        return Ok(Some(view));
    }
    state.metrics.cache_misses.inc();
    let client = state.db.get().await?;
    let Some(user) = db::users::get(&client, id).await? else {
        return Ok(None);
    };
    let view = user.view();
    state.cache.store(&view).await;
    Ok(Some(view))
}

/// `GET /users/{id}`: self or `users:read`; anyone else gets `404`.
#[utoipa::path(get, path = "/users/{id}", tag = "users", security(("bearer" = [])), params(("id" = String, Path, description = "User id (UUID)"), ("If-None-Match" = Option<String>, Header)), responses((status = 200, description = "The account", body = UserView, headers(("ETag" = String))), (status = 304, description = "Not modified")))]
async fn get_user(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    if !auth.is(id) && !auth.has(Permission::UsersRead) {
        return Err(ApiError::NotFound);
    }
    let view = cached_view(&state, id).await?.ok_or(ApiError::NotFound)?;
    Ok(read_response(&view, &headers))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    #[schema(pattern = "^[A-Za-z0-9_.-]{3,32}$")]
    username: Option<String>,
    #[schema(format = Email, max_length = 254)]
    email: Option<String>,
    #[schema(min_length = 15, max_length = 128)]
    password: Option<String>,
    #[schema(max_length = 100)]
    display_name: Option<String>,
    roles: Option<Vec<String>>,
    is_active: Option<bool>,
}

/// `POST /users` (`users:create`).
#[utoipa::path(post, path = "/users", tag = "users", security(("bearer" = [])), request_body = CreateBody, responses((status = 201, description = "Account created", body = UserView, headers(("Location" = String), ("ETag" = String)))))]
async fn create_user(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(body): JsonBody<CreateBody>,
) -> ApiResult<Response> {
    if !auth.has(Permission::UsersCreate) {
        return Err(ApiError::forbidden(
            "This requires the users:create permission.",
        ));
    }
    let new = super::auth::validate_new(
        body.username.as_deref(),
        body.email.as_deref(),
        body.password.as_deref(),
        body.display_name.as_deref(),
    )?;
    let mut roles = body.roles.unwrap_or_else(|| vec![USER_ROLE.to_owned()]);
    roles.sort();
    roles.dedup();
    let roles = check_grantable(&state.db.get().await?, &auth, &roles).await?;
    let hash = state.hasher.hash(new.password.clone()).await?;
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let id = new
        .insert(&tx, &hash, body.is_active.unwrap_or(true), &roles)
        .await?;
    db::audit::record(
        &tx,
        &auth.ctx,
        Event {
            action: "user.created",
            actor: Some(auth.user_id),
            target: Some(id),
            details: json!({"roles": roles}),
        },
    )
    .await?;
    let user = db::users::get(&tx, id).await?.ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    Ok(created(&user.view()))
}

/// Longest `q` accepted.
const Q_MAX: usize = 100;
/// Default and largest page size (SPEC §3).
const LIMIT_DEFAULT: i64 = 20;
const LIMIT_MAX: i64 = 100;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Exact email, case-insensitive.
    email: Option<String>,
    /// Exact username, case-insensitive.
    username: Option<String>,
    /// Substring of username, email or display name.
    #[param(max_length = 100)]
    q: Option<String>,
    /// Holders of this role.
    role: Option<String>,
    #[param(value_type = Option<bool>)]
    is_active: Option<String>,
    #[param(value_type = Option<String>, format = DateTime)]
    created_after: Option<String>,
    #[param(value_type = Option<String>, format = DateTime)]
    created_before: Option<String>,
    #[param(pattern = "^-?(created_at|username)$")]
    sort: Option<String>,
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

fn parse_time(check: &mut Check, name: &str, raw: Option<&str>) -> Option<time::OffsetDateTime> {
    let raw = raw?;
    check.field(
        name,
        time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
            .map_err(|_| "must be an RFC 3339 timestamp such as 2026-01-31T12:00:00Z"),
    )
}

/// `GET /users` (`users:read`): filters, sort, keyset pagination.
#[utoipa::path(get, path = "/users", tag = "users", security(("bearer" = [])), params(ListQuery), responses((status = 200, description = "One page", body = UserPage, headers(("Link" = String, description = "rel=\"next\" when another page follows")))))]
async fn list_users(
    State(state): State<AppState>,
    auth: Auth,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    if !auth.has(Permission::UsersRead) {
        return Err(ApiError::forbidden(
            "This requires the users:read permission.",
        ));
    }
    // Empty parameters (`?sort=&limit=`) count as absent.
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(raw.as_deref().unwrap_or_default())
            .map_err(|e| ApiError::validation("query", e.to_string()))?;
    let non_empty: Vec<_> = pairs.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    let non_empty = serde_urlencoded::to_string(&non_empty).unwrap_or_default();
    let query: ListQuery = serde_urlencoded::from_str(&non_empty)
        .map_err(|e| ApiError::validation("query", e.to_string()))?;
    let mut check = Check::default();
    let sort = match query.sort.as_deref() {
        None => Sort::CreatedAsc,
        Some(s) => check
            .field(
                "sort",
                Sort::parse(s).ok_or("must be one of created_at, -created_at, username, -username"),
            )
            .unwrap_or(Sort::CreatedAsc),
    };
    let limit = match query.limit.as_deref() {
        None => LIMIT_DEFAULT,
        Some(l) => check
            .field(
                "limit",
                l.parse::<i64>()
                    .ok()
                    .filter(|n| (1..=LIMIT_MAX).contains(n))
                    .ok_or("must be an integer from 1 to 100"),
            )
            .unwrap_or(LIMIT_DEFAULT),
    };
    let is_active = match query.is_active.as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => {
            check.fail("is_active", "must be true or false");
            None
        }
    };
    if query.q.as_ref().is_some_and(|q| q.chars().count() > Q_MAX) {
        check.fail("q", format!("must be at most {Q_MAX} characters"));
    }
    let filter = db::users::Filter {
        email: query.email.clone(),
        username: query.username.clone(),
        q: query.q.clone().filter(|q| !q.is_empty()),
        role: query.role.clone(),
        is_active,
        created_after: parse_time(&mut check, "created_after", query.created_after.as_deref()),
        created_before: parse_time(
            &mut check,
            "created_before",
            query.created_before.as_deref(),
        ),
    };
    check.finish()?;
    let cursor = match query.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => {
            let c = Cursor::decode(c).map_err(|_| ApiError::InvalidCursor)?;
            if c.sort != sort {
                return Err(ApiError::InvalidCursor);
            }
            Some(c)
        }
    };
    let client = state.db.get().await?;
    let mut rows = db::users::list(&client, &filter, sort, cursor.as_ref(), limit).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last()
            .map(|r| db::users::cursor_after(r, sort).encode())
    } else {
        None
    };
    let items: Vec<UserView> = rows.iter().map(UserRow::view).collect();
    let link = next_cursor
        .as_ref()
        .map(|c| next_link(raw.as_deref().unwrap_or_default(), c));
    let mut res = Json(Page { items, next_cursor }).into_response();
    if let Some(link) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        res.headers_mut().insert(header::LINK, link);
    }
    Ok(res)
}

/// The `Link: rel="next"` value: the same query with the new cursor.
fn next_link(raw_query: &str, cursor: &str) -> String {
    let mut pairs: Vec<(String, String)> =
        serde_urlencoded::from_str::<Vec<(String, String)>>(raw_query)
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| k != "cursor")
            .collect();
    pairs.push(("cursor".into(), cursor.into()));
    let qs = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    format!("</users?{qs}>; rel=\"next\"")
}

/// `DELETE /users/{id}` (self or `users:delete`): removes the account and its personal data.
#[utoipa::path(delete, path = "/users/{id}", tag = "users", security(("bearer" = [])), params(("id" = String, Path)), responses((status = 204, description = "Deleted")))]
async fn delete_user(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&id)?;
    authorize(&auth, id, Permission::UsersDelete)?;
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let user = db::users::get_for_update(&tx, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    guard_last_admin(&tx, &user).await?;
    db::users::delete(&tx, &user).await?;
    db::audit::record(
        &tx,
        &auth.ctx,
        Event {
            action: "user.deleted",
            actor: Some(auth.user_id),
            target: Some(id),
            details: json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    state.cache.invalidate(id, crate::cache::DELETED).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Refuses a change that would leave no active administrator.
pub async fn guard_last_admin(db: &impl db::GenericClient, user: &UserRow) -> ApiResult<()> {
    let is_admin = user
        .roles
        .iter()
        .any(|r| r == users_core::perms::ADMIN_ROLE);
    if is_admin
        && user.is_active
        && db::users::count_other_active_with_role(db, users_core::perms::ADMIN_ROLE, user.id)
            .await?
            == 0
    {
        return Err(ApiError::Conflict(
            "This is the last active administrator.".into(),
        ));
    }
    Ok(())
}

async fn role_change(
    state: AppState,
    auth: Auth,
    id: String,
    name: String,
    grant: bool,
) -> ApiResult<StatusCode> {
    let id = parse_id(&id)?;
    if !auth.has(Permission::UsersUpdate) {
        return Err(if auth.has(Permission::UsersRead) {
            ApiError::forbidden("This requires the users:update permission.")
        } else {
            ApiError::NotFound
        });
    }
    let mut client = state.db.get().await?;
    let role = db::roles::get(&client, &name)
        .await?
        .ok_or(ApiError::NotFound)?;
    if grant {
        check_grantable(&client, &auth, std::slice::from_ref(&role.name)).await?;
    }
    let tx = client.transaction().await?;
    let user = db::users::get_for_update(&tx, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let holds = user.roles.contains(&role.name);
    let mut changed_version = None;
    if grant != holds {
        let mut roles = user.roles.clone();
        if grant {
            roles.push(role.name.clone());
        } else {
            if role.name == users_core::perms::ADMIN_ROLE {
                guard_last_admin(&tx, &user).await?;
            }
            roles.retain(|r| r != &role.name);
        }
        db::users::set_roles(&tx, id, &roles).await?;
        db::users::touch(&tx, id, true).await?;
        changed_version = Some(user.version + 1);
        db::tokens::revoke_all_refresh(&tx, id).await?;
        let action = if grant {
            "role.granted"
        } else {
            "role.revoked"
        };
        db::audit::record(
            &tx,
            &auth.ctx,
            Event {
                action,
                actor: Some(auth.user_id),
                target: Some(id),
                details: json!({"role": role.name}),
            },
        )
        .await?;
    }
    tx.commit().await?;
    if let Some(version) = changed_version {
        state.cache.invalidate(id, version).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /users/{id}/roles/{name}` (`users:update`).
#[utoipa::path(put, path = "/users/{id}/roles/{name}", tag = "users", security(("bearer" = [])), params(("id" = String, Path), ("name" = String, Path)), responses((status = 204, description = "The user holds the role")))]
async fn grant_role(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    role_change(state, auth, id, name, true).await
}

/// `DELETE /users/{id}/roles/{name}` (`users:update`).
#[utoipa::path(delete, path = "/users/{id}/roles/{name}", tag = "users", security(("bearer" = [])), params(("id" = String, Path), ("name" = String, Path)), responses((status = 204, description = "The user no longer holds the role")))]
async fn revoke_role(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    role_change(state, auth, id, name, false).await
}

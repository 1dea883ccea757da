//! `GET /users` (`users:read`): filters, sort and keyset pagination with a `Link` header.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use users_core::cursor::{Cursor, Sort};
use users_core::model::{Page, UserView};
use users_core::perms::Permission;

use crate::db::{self, users::UserRow};
use crate::fields::Check;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::Auth;
use crate::http::validate::{non_empty_query, page_limit, parse_time};
use crate::state::AppState;

/// A page of users.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct UserPage {
    items: Vec<UserView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

/// Longest `q` accepted.
const Q_MAX: usize = 100;
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
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

/// `GET /users` (`users:read`): filters, sort, keyset pagination.
#[utoipa::path(get, path = "/users", tag = "users", security(("bearer" = [])), params(ListQuery), responses((status = 200, description = "One page", body = UserPage, headers(("Link" = String, description = "rel=\"next\" when another page follows")))))]
pub async fn list_users(
    State(state): State<AppState>,
    auth: Auth,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    auth.require(Permission::UsersRead)?;
    let query: ListQuery = non_empty_query(raw.as_deref())?;
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
    let limit = page_limit(&mut check, query.limit.as_deref());
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

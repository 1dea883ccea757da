//! `PUT` and `PATCH /users/{id}`: both become "the document as it should be", then one plan.
//!
//! The plan compares the desired document with the current one: read-only fields must not
//! change (`403`), roles and `is_active` need `users:update` (`403`), everything is validated
//! (`422`), and `If-Match` is checked against the locked row (`412`). A password change,
//! role change or deactivation revokes the user's tokens. A change of `email` follows
//! [`email_change`]: pending until confirmed for the account's owner, direct for a
//! holder of `users:update`.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use users_core::fields::{DisplayName, Email, Username};
use users_core::model::UserView;
use users_core::password::{self, Identity};
use users_core::perms::{ADMIN_ROLE, Permission};
use uuid::Uuid;

use crate::accounts::{check_grantable, guard_last_admin, revoke_sessions};
use crate::db::{self, audit::Event};
use crate::fields::Check;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Auth, UserId, from_value, media_type, parse_json, read_body};
use crate::http::respond::{etag_matches, with_etag};
use crate::state::AppState;
use crate::write::Write;
use email_change::{Apply, EmailEdit, edit_of, stated_verified, verify_current_password};

mod email_change;

/// `PUT /users/{id}` body: every mutable field (absent `display_name` clears it; absent
/// `roles`/`is_active` keep theirs). Read-only fields may be echoed unchanged.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct UserReplace {
    username: String,
    email: String,
    display_name: Option<String>,
    roles: Option<Vec<String>>,
    is_active: Option<bool>,
    /// Only with `users:update`: whether the address is verified (a new address without it
    /// is unverified and gets a verification mail).
    email_verified: Option<bool>,
    /// A new password; changing your own needs `current_password`.
    password: Option<String>,
    /// Needed to change your own password, and your own `email` without `users:update`
    /// (the change then waits in `pending_email` until both addresses confirm it).
    current_password: Option<String>,
}

/// `PATCH /users/{id}` body: a JSON Merge Patch (RFC 7396) of the user view, plus
/// `password`/`current_password`.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct UserPatch {
    username: Option<String>,
    email: Option<String>,
    display_name: Option<String>,
    roles: Option<Vec<String>>,
    is_active: Option<bool>,
    /// Only with `users:update` (see [`UserReplace`]).
    email_verified: Option<bool>,
    password: Option<String>,
    /// See [`UserReplace`].
    current_password: Option<String>,
}

/// Fields clients can see but never set.
const READ_ONLY: [&str; 7] = [
    "id",
    "mfa_enabled",
    "created_at",
    "updated_at",
    "version",
    "pending_email",
    "pending_email_confirmations",
];

/// The request's secret fields, kept out of the document.
#[derive(Debug, Default)]
struct Secrets {
    password: Option<String>,
    current_password: Option<String>,
}

fn take_secrets(body: &mut Map<String, Value>) -> ApiResult<Secrets> {
    let mut take = |name: &str| match body.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::validation(name, "must be a string")),
    };
    Ok(Secrets {
        password: take("password")?,
        current_password: take("current_password")?,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Desired {
    username: String,
    email: String,
    display_name: Option<String>,
    roles: Vec<String>,
    is_active: bool,
    #[serde(default)]
    email_verified: Option<bool>,
    #[serde(rename = "id")]
    _id: Value,
    #[serde(rename = "created_at")]
    _created_at: Value,
    #[serde(rename = "updated_at")]
    _updated_at: Value,
    #[serde(rename = "version")]
    _version: Value,
    #[serde(rename = "pending_email", default)]
    _pending_email: Value,
    #[serde(rename = "pending_email_confirmations", default)]
    _pending_email_confirmations: Value,
    #[serde(rename = "mfa_enabled", default)]
    _mfa_enabled: Value,
}

/// A validated change.
struct Plan {
    username: Username,
    email: Email,
    display_name: Option<DisplayName>,
    roles: Vec<String>,
    is_active: bool,
}

impl Plan {
    fn roles_changed(&self, current: &UserView) -> bool {
        let mut now = current.roles.clone();
        now.sort();
        now != self.roles
    }
}

fn plan(auth: &Auth, current: &UserView, desired: Value) -> ApiResult<Plan> {
    let before = serde_json::to_value(current).map_err(|e| ApiError::Internal(e.into()))?;
    for field in READ_ONLY {
        if desired.get(field) != before.get(field) {
            return Err(ApiError::forbidden(format!(
                "The field {field} is read-only."
            )));
        }
    }
    let desired: Desired = from_value(desired)?;
    let mut roles = desired.roles.clone();
    roles.sort();
    roles.dedup();
    let mut now_roles = current.roles.clone();
    now_roles.sort();
    if (roles != now_roles || desired.is_active != current.is_active)
        && !auth.has(Permission::UsersUpdate)
    {
        return Err(ApiError::forbidden(
            "Changing roles or is_active requires the users:update permission.",
        ));
    }
    if desired
        .email_verified
        .is_some_and(|v| v != current.email_verified)
        && !auth.has(Permission::UsersUpdate)
    {
        return Err(ApiError::forbidden(
            "Changing email_verified requires the users:update permission.",
        ));
    }
    let mut check = Check::default();
    let username = check.field("username", Username::parse(&desired.username));
    let email = check.field("email", Email::parse(&desired.email));
    let display_name = match desired.display_name.as_deref() {
        Some(d) => check.field("display_name", DisplayName::parse(d)).map(Some),
        None => Some(None),
    };
    check.finish()?;
    match (username, email, display_name) {
        (Some(username), Some(email), Some(display_name)) => Ok(Plan {
            username,
            email,
            display_name,
            roles,
            is_active: desired.is_active,
        }),
        _ => Err(ApiError::Internal(anyhow::anyhow!(
            "validated fields missing"
        ))),
    }
}

fn current_doc(view: &UserView) -> ApiResult<Map<String, Value>> {
    match serde_json::to_value(view).map_err(|e| ApiError::Internal(e.into()))? {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::Internal(anyhow::anyhow!(
            "user view is not an object"
        ))),
    }
}

/// How a request body turns the current document into the desired one.
#[derive(Clone, Copy)]
enum Mode {
    Replace,
    Merge,
}

fn desired_doc(mode: Mode, current: &UserView, body: &Map<String, Value>) -> ApiResult<Value> {
    let mut doc = current_doc(current)?;
    match mode {
        Mode::Merge => {
            let mut value = Value::Object(doc);
            users_core::patch::merge(&mut value, &Value::Object(body.clone()));
            // Merge patch deletes members set to null; absent fields mean "null" here.
            if let Value::Object(map) = &mut value {
                map.entry("display_name").or_insert(Value::Null);
            }
            Ok(value)
        }
        Mode::Replace => {
            let mut check = Check::default();
            check.required("username", body.get("username").map(|_| ""));
            check.required("email", body.get("email").map(|_| ""));
            check.finish()?;
            doc.insert("display_name".into(), Value::Null);
            for (k, v) in body {
                doc.insert(k.clone(), v.clone());
            }
            Ok(Value::Object(doc))
        }
    }
}

async fn read_object(req: Request, state: &AppState, mode: Mode) -> ApiResult<Map<String, Value>> {
    let media = media_type(req.headers());
    let ok = match mode {
        Mode::Merge => matches!(
            media.as_deref(),
            Some("application/merge-patch+json" | "application/json")
        ),
        Mode::Replace => media.as_deref() == Some("application/json"),
    };
    if !ok {
        let expected = match mode {
            Mode::Merge => "application/merge-patch+json or application/json",
            Mode::Replace => "application/json",
        };
        return Err(ApiError::UnsupportedMediaType(format!(
            "Send the body as {expected}."
        )));
    }
    let bytes = read_body(req, state).await?;
    match parse_json::<Value>(&bytes)? {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::validation("body", "must be a JSON object")),
    }
}

/// `PUT /users/{id}`: replaces the mutable fields.
#[utoipa::path(put, path = "/users/{id}", tag = "users", security(("bearer" = [])), params(("id" = String, Path), ("If-Match" = Option<String>, Header)), request_body = UserReplace, responses((status = 200, description = "Updated; a self-service e-mail change waits in pending_email until both addresses confirm it", body = UserView, headers(("ETag" = String)))))]
pub async fn put_user(
    State(state): State<AppState>,
    auth: Auth,
    UserId(id): UserId,
    req: Request,
) -> ApiResult<Response> {
    edit(state, auth, id, req, Mode::Replace).await
}

/// `PATCH /users/{id}`: JSON Merge Patch (RFC 7396).
#[utoipa::path(patch, path = "/users/{id}", tag = "users", security(("bearer" = [])), params(("id" = String, Path), ("If-Match" = Option<String>, Header)), request_body(content((UserPatch = "application/merge-patch+json"), (UserPatch = "application/json"))), responses((status = 200, description = "Updated; a self-service e-mail change waits in pending_email until both addresses confirm it", body = UserView, headers(("ETag" = String)))))]
pub async fn patch_user(
    State(state): State<AppState>,
    auth: Auth,
    UserId(id): UserId,
    req: Request,
) -> ApiResult<Response> {
    edit(state, auth, id, req, Mode::Merge).await
}

/// Reads the body in `mode` and applies it to `id`, if the caller may change that account.
async fn edit(
    state: AppState,
    auth: Auth,
    id: Uuid,
    req: Request,
    mode: Mode,
) -> ApiResult<Response> {
    auth.require_on(Some(id), Permission::UsersUpdate)?;
    let headers = req.headers().clone();
    let body = read_object(req, &state, mode).await?;
    update(state, auth, id, headers, body, mode).await
}

fn check_if_match(headers: &HeaderMap, view: &UserView) -> ApiResult<()> {
    match headers
        .get(header::IF_MATCH)
        .map(|v| v.to_str().unwrap_or_default())
    {
        Some(v) if !etag_matches(v, &view.etag()) => Err(ApiError::PreconditionFailed),
        _ => Ok(()),
    }
}

async fn update(
    state: AppState,
    auth: Auth,
    id: Uuid,
    headers: HeaderMap,
    mut body: Map<String, Value>,
    mode: Mode,
) -> ApiResult<Response> {
    let secrets = take_secrets(&mut body)?;
    let current = db::users::get(&state.db.get().await?, id)
        .await?
        .ok_or(ApiError::NotFound)?
        .view();
    check_if_match(&headers, &current)?;
    let first = plan(&auth, &current, desired_doc(mode, &current, &body)?)?;

    // Password work happens before the row is locked: hashing is slow.
    let new_hash = match &secrets.password {
        None => None,
        Some(new_password) => {
            let identity = Identity {
                username: first.username.as_str(),
                email: first.email.as_str(),
                display_name: first.display_name.as_ref().map(DisplayName::as_str),
            };
            password::check(new_password, identity)
                .map_err(|e| ApiError::validation("password", e))?;
            if auth.is(id) {
                let given = secrets.current_password.clone();
                verify_current_password(&state, id, given, "to change your password").await?;
            }
            Some(state.hasher.hash(new_password.clone()).await?)
        }
    };
    let pending = edit_of(&auth, &current.email, &first.email) == EmailEdit::Pending;
    if pending && new_hash.is_none() {
        let given = secrets.current_password.clone();
        verify_current_password(&state, id, given, "to change your email").await?;
    }
    let added: Vec<String> = first
        .roles
        .iter()
        .filter(|r| !current.roles.contains(r))
        .cloned()
        .collect();
    let mut client = state.db.get().await?;
    if !added.is_empty() {
        check_grantable(&client, &auth.perms, &added).await?;
    }

    let mut write = Write::begin(&mut client, &state.cache).await?;
    let tx = &write.tx;
    let locked = db::users::get_for_update(tx, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let locked_view = locked.view();
    check_if_match(&headers, &locked_view)?;
    let plan = plan(&auth, &locked_view, desired_doc(mode, &locked_view, &body)?)?;
    let roles_changed = plan.roles_changed(&locked_view);
    let deactivated = locked.is_active && !plan.is_active;
    if deactivated || (roles_changed && !plan.roles.iter().any(|r| r == ADMIN_ROLE)) {
        guard_last_admin(tx, &locked).await?;
    }
    if roles_changed {
        let unknown: Vec<String> = plan
            .roles
            .iter()
            .filter(|r| !locked.roles.contains(r))
            .cloned()
            .collect();
        check_grantable(tx, &auth.perms, &unknown).await?;
    }
    let revoke = new_hash.is_some() || roles_changed || deactivated;
    let email = Apply {
        auth: &auth,
        locked: &locked,
        to: &plan.email,
        stated_verified: stated_verified(&body),
        password_checked: pending || new_hash.is_some(),
    };
    db::users::update(
        tx,
        id,
        &db::users::Update {
            username: plan.username.as_str(),
            email: email.stored_email(),
            display_name: plan.display_name.as_ref().map(DisplayName::as_str),
            is_active: plan.is_active,
            password_hash: new_hash.as_deref(),
        },
    )
    .await?;
    if roles_changed {
        db::users::set_roles(tx, id, &plan.roles).await?;
    }
    let mailed = email.run(tx, &state).await?;
    if revoke {
        revoke_sessions(tx, id).await?;
    }
    let mut events = vec![(
        "user.updated",
        json!({"fields": body.keys().collect::<Vec<_>>()}),
    )];
    if new_hash.is_some() {
        events.push(("password.changed", json!({})));
    }
    if deactivated {
        events.push(("user.deactivated", json!({})));
    }
    if roles_changed {
        events.push((
            "roles.changed",
            json!({"from": locked.roles, "to": plan.roles}),
        ));
    }
    for (action, details) in events {
        let event = Event::new(action, Some(auth.user_id), Some(id)).with(details);
        db::audit::record(tx, &auth.ctx, event).await?;
    }
    let view = db::users::get(tx, id)
        .await?
        .ok_or(ApiError::NotFound)?
        .view();
    write.store(view.clone());
    write.commit().await?;
    if mailed {
        state.mail_ready.notify_one();
    }
    Ok(with_etag(StatusCode::OK, &view.etag(), &view))
}

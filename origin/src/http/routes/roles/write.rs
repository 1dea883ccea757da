//! Creating, changing and deleting roles (`roles:manage`).

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use users_core::fields::{ROLE_DESCRIPTION_MAX, RoleName};
use users_core::model::RoleView;
use users_core::perms::Permission;

use crate::db::{self, audit::Event};
use crate::fields::Check;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Auth, RoleNamePath, from_value, media_type, parse_json, read_body};
use crate::http::idempotency::{self, IdempotentJson};
use crate::idempotency::{Caller, Key};
use crate::state::AppState;
use crate::write::Write;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    #[schema(pattern = "^[a-z0-9_-]{2,32}$")]
    name: Option<String>,
    #[schema(max_length = 500)]
    description: Option<String>,
    #[schema(value_type = Option<Vec<Permission>>)]
    permissions: Option<Vec<String>>,
    #[serde(default, rename = "builtin")]
    #[schema(value_type = Option<bool>)]
    _builtin: Option<Value>,
}

/// The description (absent: empty) and permissions (absent: none) of a role, checked.
fn settings(
    check: &mut Check,
    description: Option<String>,
    permissions: Option<Vec<String>>,
) -> (String, Vec<Permission>) {
    let description = description.unwrap_or_default();
    if description.chars().count() > ROLE_DESCRIPTION_MAX
        || description.chars().any(char::is_control)
    {
        check.fail(
            "description",
            format!(
                "must be at most {ROLE_DESCRIPTION_MAX} characters, without control characters"
            ),
        );
    }
    let mut perms = Vec::new();
    for p in permissions.unwrap_or_default() {
        match Permission::parse(&p) {
            Some(p) => perms.push(p),
            None => check.fail("permissions", format!("unknown permission {p:?}")),
        }
    }
    perms.sort();
    perms.dedup();
    (description, perms)
}

#[utoipa::path(post, path = "/roles", tag = "roles", security(("bearer" = [])), request_body = RoleBody, responses((status = 201, description = "Created", body = RoleView, headers(("Location" = String)))))]
pub async fn create_role(
    State(state): State<AppState>,
    auth: Auth,
    IdempotentJson { body, key }: IdempotentJson<RoleBody>,
) -> ApiResult<Response> {
    let key = key.map(|k| k.of(Caller::User(auth.user_id)));
    let work = create_once(&state, &auth, body, key.as_ref());
    idempotency::answer(&state, key.as_ref(), work).await
}

async fn create_once(
    state: &AppState,
    auth: &Auth,
    body: Result<RoleBody, ApiError>,
    key: Option<&Key>,
) -> ApiResult<Response> {
    let body = body?;
    auth.require(Permission::RolesManage)?;
    let mut check = Check::default();
    let name = check
        .required("name", body.name.as_deref())
        .and_then(|n| check.field("name", RoleName::parse(n)));
    let (description, permissions) = settings(&mut check, body.description, body.permissions);
    check.finish()?;
    let name = name.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("validated name missing")))?;
    let role = RoleView {
        name: name.as_str().to_owned(),
        description,
        permissions,
        builtin: false,
    };
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    if let Some(replay) = idempotency::claim(state, &tx, key).await? {
        return Ok(replay);
    }
    db::roles::insert(&tx, &role).await?;
    db::audit::record(
        &tx,
        &auth.ctx,
        Event::new("role.created", Some(auth.user_id), None)
            .with(json!({"role": role.name, "permissions": role.permissions})),
    )
    .await?;
    let mut res = (StatusCode::CREATED, Json(&role)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/roles/{}", role.name)) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    let res = idempotency::record(state, &tx, key, res).await?;
    tx.commit().await?;
    Ok(res)
}

/// `PATCH /roles/{name}`: JSON Merge Patch of `description` and `permissions`.
#[utoipa::path(patch, path = "/roles/{name}", tag = "roles", security(("bearer" = [])), params(("name" = String, Path)), request_body(content((RoleBody = "application/merge-patch+json"), (RoleBody = "application/json"))), responses((status = 200, description = "Updated", body = RoleView)))]
pub async fn update_role(
    State(state): State<AppState>,
    auth: Auth,
    RoleNamePath(name): RoleNamePath,
    req: Request,
) -> ApiResult<Json<RoleView>> {
    auth.require(Permission::RolesManage)?;
    if !matches!(
        media_type(req.headers()).as_deref(),
        Some("application/merge-patch+json" | "application/json")
    ) {
        return Err(ApiError::UnsupportedMediaType(
            "Send the body as application/merge-patch+json.".into(),
        ));
    }
    let bytes = read_body(req, &state).await?;
    let patch: Value = parse_json(&bytes)?;
    if !patch.is_object() {
        return Err(ApiError::validation("body", "must be a JSON object"));
    }
    let mut client = state.db.get().await?;
    let mut write = Write::begin(&mut client, &state.cache).await?;
    let tx = &write.tx;
    let current = db::roles::get(tx, name.as_str())
        .await?
        .ok_or(ApiError::NotFound)?;
    let mut doc = serde_json::to_value(&current).map_err(|e| ApiError::Internal(e.into()))?;
    users_core::patch::merge(&mut doc, &patch);
    let desired: RoleBody = from_value(doc)?;
    if desired.name.as_deref() != Some(current.name.as_str()) {
        return Err(ApiError::forbidden("The field name is read-only."));
    }
    let mut check = Check::default();
    let (description, permissions) = settings(&mut check, desired.description, desired.permissions);
    check.finish()?;
    let perms_changed = permissions != current.permissions;
    if current.builtin && perms_changed {
        return Err(ApiError::forbidden(
            "The permissions of built-in roles cannot be changed.",
        ));
    }
    let updated = RoleView {
        permissions,
        description,
        ..current.clone()
    };
    db::roles::update(tx, &updated).await?;
    let mut changed = Vec::new();
    if perms_changed {
        changed = db::roles::bump_holders(tx, name.as_str()).await?;
    }
    db::audit::record(
        tx,
        &auth.ctx,
        Event::new("role.updated", Some(auth.user_id), None)
            .with(json!({"role": name, "permissions": updated.permissions})),
    )
    .await?;
    for (id, version) in changed {
        write.invalidate(id, version);
    }
    write.commit().await?;
    Ok(Json(updated))
}

#[utoipa::path(delete, path = "/roles/{name}", tag = "roles", security(("bearer" = [])), params(("name" = String, Path)), responses((status = 204, description = "Deleted")))]
pub async fn delete_role(
    State(state): State<AppState>,
    auth: Auth,
    RoleNamePath(name): RoleNamePath,
) -> ApiResult<StatusCode> {
    auth.require(Permission::RolesManage)?;
    let mut client = state.db.get().await?;
    let mut write = Write::begin(&mut client, &state.cache).await?;
    let tx = &write.tx;
    let role = db::roles::get(tx, name.as_str())
        .await?
        .ok_or(ApiError::NotFound)?;
    if role.builtin {
        return Err(ApiError::forbidden("Built-in roles cannot be deleted."));
    }
    let changed = db::roles::bump_holders(tx, name.as_str()).await?;
    db::roles::delete(tx, name.as_str()).await?;
    db::audit::record(
        tx,
        &auth.ctx,
        Event::new("role.deleted", Some(auth.user_id), None).with(json!({"role": name})),
    )
    .await?;
    for (id, version) in changed {
        write.invalidate(id, version);
    }
    write.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

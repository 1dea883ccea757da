//! The role resource and role assignment: listing, creating, updating and deleting custom
//! roles, the protection of built-in roles, and `PUT`/`DELETE /users/{id}/roles/{name}`.

use serde_json::{Value, json};

use crate::helpers::{
    ALL_PERMS, TestApp, assert_problem, error_fields, header, json_body, spawn_app,
};

async fn post_role(app: &TestApp, body: &Value) -> reqwest::Response {
    app.post("/roles")
        .bearer_auth(&app.admin.access)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn get_role(app: &TestApp, name: &str) -> reqwest::Response {
    app.get(&format!("/roles/{name}"))
        .bearer_auth(&app.admin.access)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_builtin_roles_are_listed() {
    let app = spawn_app().await;

    let resp = app
        .get("/roles")
        .bearer_auth(&app.admin.access)
        .send()
        .await
        .unwrap();

    let body = json_body(resp, 200).await;
    let roles = body
        .as_array()
        .or_else(|| body["items"].as_array())
        .expect("a list of roles");
    let admin = roles
        .iter()
        .find(|r| r["name"] == json!("admin"))
        .expect("admin");
    let user = roles
        .iter()
        .find(|r| r["name"] == json!("user"))
        .expect("user");
    assert_eq!(admin["builtin"], json!(true));
    assert_eq!(user["builtin"], json!(true));
    let mut perms: Vec<String> = serde_json::from_value(admin["permissions"].clone()).unwrap();
    perms.sort();
    let mut all: Vec<String> = ALL_PERMS.iter().map(|p| p.to_string()).collect();
    all.sort();
    assert_eq!(perms, all);
    assert_eq!(user["permissions"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn get_one_role_or_404() {
    let app = spawn_app().await;

    let admin = json_body(get_role(&app, "admin").await, 200).await;
    assert_eq!(admin["name"], json!("admin"));
    assert!(admin["description"].is_string());

    assert_problem(get_role(&app, "no-such-role").await, 404, "not-found").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn creating_a_role_returns_201_with_location() {
    let app = spawn_app().await;

    let resp = post_role(
        &app,
        &json!({"name": "support_team-1", "description": "Support", "permissions": ["users:read", "roles:read"]}),
    )
    .await;

    let location = header(&resp, "location");
    let body = json_body(resp, 201).await;
    assert_eq!(location.as_deref(), Some("/roles/support_team-1"));
    assert_eq!(body["name"], json!("support_team-1"));
    assert_eq!(body["description"], json!("Support"));
    assert_eq!(body["builtin"], json!(false));
    let mut perms: Vec<String> = serde_json::from_value(body["permissions"].clone()).unwrap();
    perms.sort();
    assert_eq!(perms, vec!["roles:read", "users:read"]);
    assert_eq!(
        json_body(get_role(&app, "support_team-1").await, 200).await,
        body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_duplicate_role_is_409() {
    let app = spawn_app().await;
    app.create_role("dup", &[]).await;

    assert_problem(
        post_role(&app, &json!({"name": "dup", "permissions": []})).await,
        409,
        "conflict",
    )
    .await;
    assert_problem(
        post_role(&app, &json!({"name": "admin", "permissions": []})).await,
        409,
        "conflict",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn role_names_are_validated() {
    let app = spawn_app().await;

    let too_long = "a".repeat(33);
    for name in [
        "x",
        "Upper",
        "has space",
        "dots.not.allowed",
        too_long.as_str(),
        "ünï",
    ] {
        let resp = post_role(&app, &json!({"name": name, "permissions": []})).await;
        let problem = assert_problem(resp, 422, "validation-failed").await;
        assert_eq!(error_fields(&problem), vec!["name"], "{name:?}: {problem}");
    }
    json_body(
        post_role(&app, &json!({"name": "a".repeat(32), "permissions": []})).await,
        201,
    )
    .await;
    json_body(
        post_role(&app, &json!({"name": "ab", "permissions": []})).await,
        201,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_permission_is_422() {
    let app = spawn_app().await;

    let resp = post_role(
        &app,
        &json!({"name": "weird", "permissions": ["users:read", "users:write"]}),
    )
    .await;

    let problem = assert_problem(resp, 422, "validation-failed").await;
    assert!(
        error_fields(&problem)
            .iter()
            .any(|f| f.starts_with("permissions")),
        "{problem}"
    );
    assert_problem(get_role(&app, "weird").await, 404, "not-found").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_custom_role_can_be_updated() {
    let app = spawn_app().await;
    app.create_role("editors", &["users:read"]).await;

    let resp = app
        .patch("/roles/editors")
        .bearer_auth(&app.admin.access)
        .json(&json!({"description": "Edits users", "permissions": ["users:read", "users:update"]}))
        .send()
        .await
        .unwrap();

    let body = json_body(resp, 200).await;
    assert_eq!(body["description"], json!("Edits users"));
    let mut perms: Vec<String> = serde_json::from_value(body["permissions"].clone()).unwrap();
    perms.sort();
    assert_eq!(perms, vec!["users:read", "users:update"]);
    assert_eq!(json_body(get_role(&app, "editors").await, 200).await, body);
}

#[tokio::test(flavor = "multi_thread")]
async fn builtin_roles_keep_their_permissions_and_cannot_be_deleted() {
    let app = spawn_app().await;

    for (name, perms) in [("admin", json!(["users:read"])), ("user", json!(ALL_PERMS))] {
        let resp = app
            .patch(&format!("/roles/{name}"))
            .bearer_auth(&app.admin.access)
            .json(&json!({"permissions": perms}))
            .send()
            .await
            .unwrap();
        assert_problem(resp, 403, "forbidden").await;
        let resp = app
            .delete(&format!("/roles/{name}"))
            .bearer_auth(&app.admin.access)
            .send()
            .await
            .unwrap();
        assert_problem(resp, 403, "forbidden").await;
    }

    let admin = json_body(get_role(&app, "admin").await, 200).await;
    assert_eq!(
        admin["permissions"].as_array().unwrap().len(),
        ALL_PERMS.len()
    );
    let user = json_body(get_role(&app, "user").await, 200).await;
    assert_eq!(user["permissions"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_custom_role_removes_it_from_its_holders() {
    let app = spawn_app().await;
    app.create_role("temp", &["users:read"]).await;
    let holder = app.new_user_with_roles(&["user", "temp"]).await;

    let resp = app
        .delete("/roles/temp")
        .bearer_auth(&app.admin.access)
        .send()
        .await
        .unwrap();

    assert_eq!(resp.status(), 204);
    assert_problem(get_role(&app, "temp").await, 404, "not-found").await;
    let view = json_body(app.get_user(&app.admin.access, holder.id).await, 200).await;
    assert_eq!(view["roles"], json!(["user"]));
    let again = app
        .delete("/roles/temp")
        .bearer_auth(&app.admin.access)
        .send()
        .await
        .unwrap();
    assert_problem(again, 404, "not-found").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_are_granted_and_revoked_idempotently() {
    let app = spawn_app().await;
    app.create_role("auditor", &["users:read"]).await;
    let user = app.new_user().await;

    assert_eq!(
        app.grant_role(&app.admin.access, user.id, "auditor")
            .await
            .status(),
        204
    );
    let view = json_body(app.get_user(&app.admin.access, user.id).await, 200).await;
    let mut roles: Vec<String> = serde_json::from_value(view["roles"].clone()).unwrap();
    roles.sort();
    assert_eq!(roles, vec!["auditor", "user"]);
    // PUT is idempotent.
    assert_eq!(
        app.grant_role(&app.admin.access, user.id, "auditor")
            .await
            .status(),
        204
    );

    let revoke = app
        .delete(&format!("/users/{}/roles/auditor", user.id))
        .bearer_auth(&app.admin.access)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 204);
    let view = json_body(app.get_user(&app.admin.access, user.id).await, 200).await;
    assert_eq!(view["roles"], json!(["user"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn granting_an_unknown_role_or_to_an_unknown_user_is_404() {
    let app = spawn_app().await;
    let user = app.new_user().await;

    let resp = app
        .grant_role(&app.admin.access, user.id, "no-such-role")
        .await;
    assert_problem(resp, 404, "not-found").await;
    let resp = app
        .grant_role(&app.admin.access, uuid::Uuid::now_v7(), "user")
        .await;
    assert_problem(resp, 404, "not-found").await;
    let resp = app
        .delete(&format!("/users/{}/roles/no-such-role", user.id))
        .bearer_auth(&app.admin.access)
        .send()
        .await
        .unwrap();
    assert_problem(resp, 404, "not-found").await;
}

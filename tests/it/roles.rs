//! The role resource and role assignment: listing, creating, updating and deleting custom
//! roles, the protection of built-in roles, and `PUT`/`DELETE /users/{id}/roles/{name}`.

use serde_json::{Value, json};

use crate::helpers::{ALL_PERMS, Api as _, TestApp, error_fields, spawn_app, spawn_app_and_user};

/// The sorted `permissions` of a role.
fn permissions_of(role: &Value) -> Vec<String> {
    let mut perms: Vec<String> = serde_json::from_value(role["permissions"].clone()).unwrap();
    perms.sort();
    perms
}

/// Asserts that the admin reads the role `role` (its name's) back exactly.
async fn assert_reads_back(app: &TestApp, role: &Value) {
    let name = role["name"].as_str().expect("a role name");
    let read = app.as_admin().get_role(name).await;
    assert_eq!(&read.expect_json(200), role, "{name} reads back");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_builtin_roles_are_listed() {
    let app = spawn_app().await;

    let resp = app.as_admin().get("/roles").send().await;

    let body = resp.expect_json(200);
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
    let mut all: Vec<String> = ALL_PERMS.iter().map(|p| p.to_string()).collect();
    all.sort();
    assert_eq!(permissions_of(admin), all);
    assert_eq!(user["permissions"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn get_one_role_or_404() {
    let app = spawn_app().await;

    let admin = app.as_admin().get_role("admin").await.expect_json(200);
    assert_eq!(admin["name"], json!("admin"));
    assert!(admin["description"].is_string());

    let missing = app.as_admin().get_role("no-such-role").await;
    missing.assert_problem(404, "not-found");
}

#[tokio::test(flavor = "multi_thread")]
async fn creating_a_role_returns_201_with_location() {
    let app = spawn_app().await;

    let resp = app
        .as_admin()
        .post_role(&json!({"name": "support_team-1", "description": "Support", "permissions": ["users:read", "roles:read"]}))
        .await;

    let body = resp.expect_json(201);
    assert_eq!(
        resp.header("location").as_deref(),
        Some("/roles/support_team-1")
    );
    assert_eq!(body["name"], json!("support_team-1"));
    assert_eq!(body["description"], json!("Support"));
    assert_eq!(body["builtin"], json!(false));
    assert_eq!(permissions_of(&body), vec!["roles:read", "users:read"]);
    assert_reads_back(&app, &body).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_duplicate_role_is_409() {
    let app = spawn_app().await;
    app.create_role("dup", &[]).await;

    for name in ["dup", "admin"] {
        let resp = app
            .as_admin()
            .post_role(&json!({"name": name, "permissions": []}))
            .await;
        resp.assert_problem(409, "conflict");
    }
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
        let resp = app
            .as_admin()
            .post_role(&json!({"name": name, "permissions": []}))
            .await;
        let problem = resp.assert_problem(422, "validation-failed");
        assert_eq!(error_fields(&problem), vec!["name"], "{name:?}: {problem}");
    }
    for name in ["a".repeat(32), "ab".to_owned()] {
        let resp = app
            .as_admin()
            .post_role(&json!({"name": name, "permissions": []}))
            .await;
        resp.expect_json(201);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_permission_is_422() {
    let app = spawn_app().await;

    let weird = json!({"name": "weird", "permissions": ["users:read", "users:write"]});
    let resp = app.as_admin().post_role(&weird).await;

    let problem = resp.assert_problem(422, "validation-failed");
    assert!(
        error_fields(&problem)
            .iter()
            .any(|f| f.starts_with("permissions")),
        "{problem}"
    );
    app.as_admin()
        .get_role("weird")
        .await
        .assert_problem(404, "not-found");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_custom_role_can_be_updated() {
    let app = spawn_app().await;
    app.create_role("editors", &["users:read"]).await;

    let resp = app
        .as_admin()
        .patch("/roles/editors")
        .json(&json!({"description": "Edits users", "permissions": ["users:read", "users:update"]}))
        .send()
        .await;

    let body = resp.expect_json(200);
    assert_eq!(body["description"], json!("Edits users"));
    assert_eq!(permissions_of(&body), vec!["users:read", "users:update"]);
    assert_reads_back(&app, &body).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn builtin_roles_keep_their_permissions_and_cannot_be_deleted() {
    let app = spawn_app().await;

    let as_admin = app.as_admin();
    for (name, perms) in [("admin", json!(["users:read"])), ("user", json!(ALL_PERMS))] {
        let path = format!("/roles/{name}");
        let patch = json!({"permissions": perms});
        let resp = as_admin.patch(&path).json(&patch).send().await;
        resp.assert_problem(403, "forbidden");
        as_admin
            .delete(&path)
            .send()
            .await
            .assert_problem(403, "forbidden");
    }

    let admin = as_admin.get_role("admin").await.expect_json(200);
    assert_eq!(
        admin["permissions"].as_array().unwrap().len(),
        ALL_PERMS.len()
    );
    let user = as_admin.get_role("user").await.expect_json(200);
    assert_eq!(user["permissions"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_custom_role_removes_it_from_its_holders() {
    let app = spawn_app().await;
    app.create_role("temp", &["users:read"]).await;
    let holder = app.new_user_with_roles(&["user", "temp"]).await;
    let as_admin = app.as_admin();

    let resp = as_admin.delete("/roles/temp").send().await;

    resp.expect_status(204);
    as_admin
        .get_role("temp")
        .await
        .assert_problem(404, "not-found");
    let view = as_admin.get_user(holder.id).await.expect_json(200);
    assert_eq!(view["roles"], json!(["user"]));
    let again = as_admin.delete("/roles/temp").send().await;
    again.assert_problem(404, "not-found");
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_are_granted_and_revoked_idempotently() {
    let (app, user) = spawn_app_and_user().await;
    app.create_role("auditor", &["users:read"]).await;
    let as_admin = app.as_admin();
    let grant = || as_admin.grant_role(user.id, "auditor");
    let roles = || async {
        let view = as_admin.get_user(user.id).await.expect_json(200);
        let mut roles: Vec<String> = serde_json::from_value(view["roles"].clone()).unwrap();
        roles.sort();
        roles
    };

    grant().await.expect_status(204);
    assert_eq!(roles().await, vec!["auditor", "user"]);
    // PUT is idempotent.
    grant().await.expect_status(204);

    let revoked = as_admin.revoke_role(user.id, "auditor").await;
    revoked.expect_status(204);
    assert_eq!(roles().await, vec!["user"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn granting_an_unknown_role_or_to_an_unknown_user_is_404() {
    let (app, user) = spawn_app_and_user().await;
    let as_admin = app.as_admin();

    for resp in [
        as_admin.grant_role(user.id, "no-such-role").await,
        as_admin.grant_role(uuid::Uuid::now_v7(), "user").await,
        as_admin.revoke_role(user.id, "no-such-role").await,
    ] {
        resp.assert_problem(404, "not-found");
    }
}

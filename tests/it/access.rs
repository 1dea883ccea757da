//! Authorisation: broken object-level authorisation (user A on user B), privilege escalation
//! through PATCH/PUT and role grants, and permission checks on listing and roles.

use serde_json::json;

use crate::helpers::{
    TestApp, TestUser, assert_problem, json_body, spawn_app, strong_password, unique_name,
};

/// The user row as the database has it: (username, email, display_name, is_active, version).
async fn row_of(app: &TestApp, user: &TestUser) -> (String, String, Option<String>, bool, i64) {
    let row = app
        .db
        .query_one(
            "SELECT username, email, display_name, is_active, version FROM users WHERE id = $1",
            &[&user.id],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4))
}

async fn roles_of(app: &TestApp, user: &TestUser) -> Vec<String> {
    app.db
        .query(
            "SELECT role_name FROM user_roles WHERE user_id = $1 ORDER BY role_name",
            &[&user.id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_cannot_see_another_user_and_cannot_tell_it_exists() {
    let app = spawn_app().await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;

    let other = assert_problem(app.get_user(&alice.access, bob.id).await, 404, "not-found").await;
    let missing = assert_problem(
        app.get_user(&alice.access, uuid::Uuid::now_v7()).await,
        404,
        "not-found",
    )
    .await;

    assert_eq!(
        other, missing,
        "an existing user looks exactly like a missing one"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_cannot_modify_or_delete_another_user() {
    let app = spawn_app().await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;
    let before = row_of(&app, &bob).await;
    let path = format!("/users/{}", bob.id);

    let patch = app
        .patch_user(&alice.access, bob.id, &json!({"display_name": "pwned"}))
        .await;
    assert_problem(patch, 404, "not-found").await;
    let password = app
        .patch_user(
            &alice.access,
            bob.id,
            &json!({"password": strong_password()}),
        )
        .await;
    assert_problem(password, 404, "not-found").await;
    let put = app
        .put(&path)
        .bearer_auth(&alice.access)
        .json(&json!({"username": bob.username, "email": "alice-owns@example.com"}))
        .send()
        .await
        .unwrap();
    assert_problem(put, 404, "not-found").await;
    let delete = app
        .delete(&path)
        .bearer_auth(&alice.access)
        .send()
        .await
        .unwrap();
    assert_problem(delete, 404, "not-found").await;

    assert_eq!(row_of(&app, &bob).await, before, "bob is untouched");
    app.login(&bob.username, &bob.password).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn read_permission_alone_reads_but_cannot_write_others() {
    let app = spawn_app().await;
    app.create_role("auditor", &["users:read"]).await;
    let auditor = app.new_user_with_roles(&["auditor"]).await;
    let bob = app.new_user().await;
    let before = row_of(&app, &bob).await;

    json_body(app.get_user(&auditor.access, bob.id).await, 200).await;
    let patch = app
        .patch_user(&auditor.access, bob.id, &json!({"display_name": "x"}))
        .await;
    assert_problem(patch, 403, "forbidden").await;
    let delete = app
        .delete(&format!("/users/{}", bob.id))
        .bearer_auth(&auditor.access)
        .send()
        .await
        .unwrap();
    assert_problem(delete, 403, "forbidden").await;
    assert_eq!(row_of(&app, &bob).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_users_needs_users_read() {
    let app = spawn_app().await;
    let user = app.new_user().await;

    let resp = app
        .get("/users")
        .bearer_auth(&user.access)
        .send()
        .await
        .unwrap();

    assert_problem(resp, 403, "forbidden").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn self_patch_of_roles_or_is_active_is_forbidden() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let before = row_of(&app, &user).await;

    for patch in [
        json!({"roles": ["admin"]}),
        json!({"roles": ["user", "admin"], "display_name": "sneaky"}),
        json!({"is_active": false}),
    ] {
        let resp = app.patch_user(&user.access, user.id, &patch).await;
        assert_problem(resp, 403, "forbidden").await;
    }

    assert_eq!(roles_of(&app, &user).await, vec!["user"]);
    assert_eq!(row_of(&app, &user).await, before, "no partial application");
    // The token still has no admin power.
    let list = app
        .get("/users")
        .bearer_auth(&user.access)
        .send()
        .await
        .unwrap();
    assert_problem(list, 403, "forbidden").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn self_put_cannot_grant_roles() {
    let app = spawn_app().await;
    let user = app.new_user().await;

    let resp = app
        .put(&format!("/users/{}", user.id))
        .bearer_auth(&user.access)
        .json(&json!({
            "username": user.username, "email": user.email, "roles": ["admin"], "is_active": true
        }))
        .send()
        .await
        .unwrap();

    assert_problem(resp, 403, "forbidden").await;
    assert_eq!(roles_of(&app, &user).await, vec!["user"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn nobody_may_change_server_managed_fields() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let before = row_of(&app, &user).await;

    for token in [&user.access, &app.admin.access] {
        for patch in [
            json!({"id": uuid::Uuid::now_v7().to_string()}),
            json!({"created_at": "2000-01-01T00:00:00Z"}),
            json!({"updated_at": "2000-01-01T00:00:00Z"}),
            json!({"version": 999}),
        ] {
            let resp = app.patch_user(token, user.id, &patch).await;
            assert_problem(resp, 403, "forbidden").await;
        }
    }

    assert_eq!(row_of(&app, &user).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn registration_cannot_assign_roles() {
    let app = spawn_app().await;
    let username = unique_name("sneak");

    let resp = app
        .post("/auth/register")
        .json(&json!({
            "username": username, "email": format!("{username}@example.com"),
            "password": strong_password(), "roles": ["admin"]
        }))
        .send()
        .await
        .unwrap();

    // Refused outright, like unknown fields elsewhere.
    assert_problem(resp, 422, "validation-failed").await;
    let admins: i64 = app
        .db
        .query_one(
            "SELECT count(*) FROM user_roles ur JOIN users u ON u.id = ur.user_id \
             WHERE u.username = $1 AND ur.role_name = 'admin'",
            &[&username],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(admins, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_actor_may_grant_only_roles_within_its_own_permissions() {
    let app = spawn_app().await;
    app.create_role("helpdesk", &["users:read", "users:update"])
        .await;
    app.create_role("reader", &["users:read"]).await;
    let helper = app.new_user_with_roles(&["helpdesk"]).await;
    let bob = app.new_user().await;

    // Within its permissions: allowed.
    assert_eq!(
        app.grant_role(&helper.access, bob.id, "reader")
            .await
            .status(),
        204
    );
    // Beyond them: refused, for others and for itself.
    assert_problem(
        app.grant_role(&helper.access, bob.id, "admin").await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        app.grant_role(&helper.access, helper.id, "admin").await,
        403,
        "forbidden",
    )
    .await;
    let patch = app
        .patch_user(&helper.access, bob.id, &json!({"roles": ["admin"]}))
        .await;
    assert_problem(patch, 403, "forbidden").await;

    assert_eq!(roles_of(&app, &bob).await, vec!["reader", "user"]);
    assert_eq!(roles_of(&app, &helper).await, vec!["helpdesk"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn granting_roles_needs_users_update() {
    let app = spawn_app().await;
    app.create_role("auditor", &["users:read"]).await;
    let alice = app.new_user().await;
    let auditor = app.new_user_with_roles(&["auditor"]).await;
    let bob = app.new_user().await;

    // Without users:read the target's existence is not disclosed: 404, like GET.
    let grant = app.grant_role(&alice.access, bob.id, "admin").await;
    assert_problem(grant, 404, "not-found").await;
    let self_grant = app.grant_role(&alice.access, alice.id, "admin").await;
    assert_problem(self_grant, 404, "not-found").await;
    let revoke = app
        .delete(&format!("/users/{}/roles/user", bob.id))
        .bearer_auth(&alice.access)
        .send()
        .await
        .unwrap();
    assert_problem(revoke, 404, "not-found").await;
    // With users:read but not users:update: 403.
    let grant = app.grant_role(&auditor.access, bob.id, "auditor").await;
    assert_problem(grant, 403, "forbidden").await;
    let self_grant = app.grant_role(&auditor.access, auditor.id, "admin").await;
    assert_problem(self_grant, 403, "forbidden").await;

    assert_eq!(roles_of(&app, &alice).await, vec!["user"]);
    assert_eq!(roles_of(&app, &bob).await, vec!["user"]);
    assert_eq!(roles_of(&app, &auditor).await, vec!["auditor"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_may_change_roles_and_activation_of_others() {
    let app = spawn_app().await;
    let user = app.new_user().await;

    let resp = app
        .patch_user(
            &app.admin.access,
            user.id,
            &json!({"roles": ["user", "admin"]}),
        )
        .await;
    let body = json_body(resp, 200).await;
    let mut roles: Vec<String> = serde_json::from_value(body["roles"].clone()).unwrap();
    roles.sort();
    assert_eq!(roles, vec!["admin", "user"]);

    let resp = app
        .patch_user(&app.admin.access, user.id, &json!({"is_active": false}))
        .await;
    assert_eq!(json_body(resp, 200).await["is_active"], json!(false));
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_endpoints_need_role_permissions() {
    let app = spawn_app().await;
    let user = app.new_user().await;

    let list = app
        .get("/roles")
        .bearer_auth(&user.access)
        .send()
        .await
        .unwrap();
    assert_problem(list, 403, "forbidden").await;
    let one = app
        .get("/roles/admin")
        .bearer_auth(&user.access)
        .send()
        .await
        .unwrap();
    assert_problem(one, 403, "forbidden").await;
    let create = app
        .post("/roles")
        .bearer_auth(&user.access)
        .json(&json!({"name": "mine", "permissions": ["users:read"]}))
        .send()
        .await
        .unwrap();
    assert_problem(create, 403, "forbidden").await;
    let patch = app
        .patch("/roles/user")
        .bearer_auth(&user.access)
        .json(&json!({"permissions": ["users:read"]}))
        .send()
        .await
        .unwrap();
    assert_problem(patch, 403, "forbidden").await;
    let n: i64 = app
        .db
        .query_one("SELECT count(*) FROM roles WHERE name = 'mine'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_cannot_end_another_users_session() {
    let app = spawn_app().await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;

    let resp = app
        .post("/auth/logout")
        .bearer_auth(&alice.access)
        .json(&json!({"refresh_token": bob.refresh}))
        .send()
        .await
        .unwrap();

    assert!(resp.status().is_client_error() || resp.status() == 204);
    json_body(app.refresh_raw(&bob.refresh).await, 200).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_last_active_admin_cannot_be_removed() {
    let app = spawn_app().await;
    let admin = app.admin.clone();

    let revoke = app
        .delete(&format!("/users/{}/roles/admin", admin.id))
        .bearer_auth(&admin.access)
        .send()
        .await
        .unwrap();
    assert_problem(revoke, 409, "conflict").await;
    let delete = app
        .delete(&format!("/users/{}", admin.id))
        .bearer_auth(&admin.access)
        .send()
        .await
        .unwrap();
    assert_problem(delete, 409, "conflict").await;
    let n: i64 = app
        .db
        .query_one(
            "SELECT count(*) FROM user_roles WHERE role_name = 'admin'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);

    // With a second admin, the first may go.
    app.new_user_with_roles(&["admin"]).await;
    let delete = app
        .delete(&format!("/users/{}", admin.id))
        .bearer_auth(&admin.access)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 204);
}

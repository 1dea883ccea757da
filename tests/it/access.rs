//! Authorisation: broken object-level authorisation (user A on user B), privilege escalation
//! through PATCH/PUT and role grants, and permission checks on listing and roles.

use serde_json::json;

use crate::helpers::{
    Api as _, TestApp, TestUser, account_json, spawn_app, spawn_app_and_user, strong_password,
    unique_name,
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
    let sql = "SELECT role_name FROM user_roles WHERE user_id = $1 ORDER BY role_name";
    app.strings(sql, &[&user.id]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_cannot_see_another_user_and_cannot_tell_it_exists() {
    let app = spawn_app().await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;

    let other = app.as_user(&alice).get_user(bob.id).await;
    let missing = app.as_user(&alice).get_user(uuid::Uuid::now_v7()).await;

    assert_eq!(
        other.assert_problem(404, "not-found"),
        missing.assert_problem(404, "not-found"),
        "an existing user looks exactly like a missing one"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_cannot_modify_or_delete_another_user() {
    let app = spawn_app().await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;
    let before = row_of(&app, &bob).await;
    let as_alice = app.as_user(&alice);

    let patch = as_alice
        .patch_user(bob.id, &json!({"display_name": "pwned"}))
        .await;
    patch.assert_problem(404, "not-found");
    let password = as_alice
        .patch_user(bob.id, &json!({"password": strong_password()}))
        .await;
    password.assert_problem(404, "not-found");
    let put = as_alice
        .put(&format!("/users/{}", bob.id))
        .json(&json!({"username": bob.username, "email": "alice-owns@example.com"}))
        .send()
        .await;
    put.assert_problem(404, "not-found");
    let delete = as_alice.delete_user(bob.id).await;
    delete.assert_problem(404, "not-found");

    assert_eq!(row_of(&app, &bob).await, before, "bob is untouched");
    app.login(&bob.username, &bob.password).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn read_permission_alone_reads_but_cannot_write_others() {
    let app = spawn_app().await;
    let auditor = app.new_auditor().await;
    let bob = app.new_user().await;
    let before = row_of(&app, &bob).await;
    let as_auditor = app.as_user(&auditor);

    as_auditor.get_user(bob.id).await.expect_json(200);
    let patch = as_auditor
        .patch_user(bob.id, &json!({"display_name": "x"}))
        .await;
    patch.assert_problem(403, "forbidden");
    let delete = as_auditor.delete_user(bob.id).await;
    delete.assert_problem(403, "forbidden");
    assert_eq!(row_of(&app, &bob).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_users_needs_users_read() {
    let (app, user) = spawn_app_and_user().await;

    let resp = app.as_user(&user).list_users(&[]).await;

    resp.assert_problem(403, "forbidden");
}

#[tokio::test(flavor = "multi_thread")]
async fn self_patch_of_roles_or_is_active_is_forbidden() {
    let (app, user) = spawn_app_and_user().await;
    let before = row_of(&app, &user).await;

    for patch in [
        json!({"roles": ["admin"]}),
        json!({"roles": ["user", "admin"], "display_name": "sneaky"}),
        json!({"is_active": false}),
    ] {
        let resp = app.as_user(&user).patch_user(user.id, &patch).await;
        resp.assert_problem(403, "forbidden");
    }

    assert_eq!(roles_of(&app, &user).await, vec!["user"]);
    assert_eq!(row_of(&app, &user).await, before, "no partial application");
    // The token still has no admin power.
    let list = app.as_user(&user).list_users(&[]).await;
    list.assert_problem(403, "forbidden");
}

#[tokio::test(flavor = "multi_thread")]
async fn self_put_cannot_grant_roles() {
    let (app, user) = spawn_app_and_user().await;

    let resp = app
        .as_user(&user)
        .put(&format!("/users/{}", user.id))
        .json(&json!({
            "username": user.username, "email": user.email, "roles": ["admin"], "is_active": true
        }))
        .send()
        .await;

    resp.assert_problem(403, "forbidden");
    assert_eq!(roles_of(&app, &user).await, vec!["user"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn nobody_may_change_server_managed_fields() {
    let (app, user) = spawn_app_and_user().await;
    let before = row_of(&app, &user).await;

    for actor in [&user, &app.admin] {
        for patch in [
            json!({"id": uuid::Uuid::now_v7().to_string()}),
            json!({"created_at": "2000-01-01T00:00:00Z"}),
            json!({"updated_at": "2000-01-01T00:00:00Z"}),
            json!({"version": 999}),
        ] {
            let resp = app.as_user(actor).patch_user(user.id, &patch).await;
            resp.assert_problem(403, "forbidden");
        }
    }

    assert_eq!(row_of(&app, &user).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn registration_cannot_assign_roles() {
    let app = spawn_app().await;
    let username = unique_name("sneak");

    let body = account_json(&username, json!({"roles": ["admin"]}));
    let resp = app.post("/auth/register").json(&body).send().await;

    // Refused outright, like unknown fields elsewhere.
    resp.assert_problem(422, "validation-failed");
    let admins = app
        .count(
            "SELECT count(*) FROM user_roles ur JOIN users u ON u.id = ur.user_id \
             WHERE u.username = $1 AND ur.role_name = 'admin'",
            &[&username],
        )
        .await;
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
    let as_helper = app.as_user(&helper);

    // Within its permissions: allowed.
    let allowed = as_helper.grant_role(bob.id, "reader").await;
    allowed.expect_status(204);
    // Beyond them: refused, for others and for itself.
    for target in [bob.id, helper.id] {
        let grant = as_helper.grant_role(target, "admin").await;
        grant.assert_problem(403, "forbidden");
    }
    let patch = as_helper
        .patch_user(bob.id, &json!({"roles": ["admin"]}))
        .await;
    patch.assert_problem(403, "forbidden");

    assert_eq!(roles_of(&app, &bob).await, vec!["reader", "user"]);
    assert_eq!(roles_of(&app, &helper).await, vec!["helpdesk"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn granting_roles_needs_users_update() {
    let (app, alice) = spawn_app_and_user().await;
    let auditor = app.new_auditor().await;
    let bob = app.new_user().await;
    let (as_alice, as_auditor) = (app.as_user(&alice), app.as_user(&auditor));

    // Without users:read the target's existence is not disclosed: 404, like GET.
    let hidden = [
        as_alice.grant_role(bob.id, "admin").await,
        as_alice.grant_role(alice.id, "admin").await,
        as_alice.revoke_role(bob.id, "user").await,
    ];
    for refused in hidden {
        refused.assert_problem(404, "not-found");
    }
    // With users:read but not users:update: 403.
    let forbidden = [
        as_auditor.grant_role(bob.id, "auditor").await,
        as_auditor.grant_role(auditor.id, "admin").await,
    ];
    for refused in forbidden {
        refused.assert_problem(403, "forbidden");
    }

    assert_eq!(roles_of(&app, &alice).await, vec!["user"]);
    assert_eq!(roles_of(&app, &bob).await, vec!["user"]);
    assert_eq!(roles_of(&app, &auditor).await, vec!["auditor"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_may_change_roles_and_activation_of_others() {
    let (app, user) = spawn_app_and_user().await;

    let resp = app
        .as_admin()
        .patch_user(user.id, &json!({"roles": ["user", "admin"]}))
        .await;
    let mut roles: Vec<String> =
        serde_json::from_value(resp.expect_json(200)["roles"].clone()).unwrap();
    roles.sort();
    assert_eq!(roles, vec!["admin", "user"]);

    let resp = app
        .as_admin()
        .patch_user(user.id, &json!({"is_active": false}))
        .await;
    assert_eq!(resp.expect_json(200)["is_active"], json!(false));
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_endpoints_need_role_permissions() {
    let (app, user) = spawn_app_and_user().await;
    let as_user = app.as_user(&user);
    let mine = json!({"name": "mine", "permissions": ["users:read"]});
    let perms = json!({"permissions": ["users:read"]});

    for (what, call) in [
        ("list", as_user.get("/roles")),
        ("one", as_user.get("/roles/admin")),
        ("create", as_user.post("/roles").json(&mine)),
        ("update", as_user.patch("/roles/user").json(&perms)),
    ] {
        let resp = call.send().await;
        assert_eq!(resp.status, 403, "{what}: {resp}");
        resp.assert_problem(403, "forbidden");
    }
    let n = app
        .count("SELECT count(*) FROM roles WHERE name = 'mine'", &[])
        .await;
    assert_eq!(n, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_cannot_end_another_users_session() {
    let app = spawn_app().await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;

    let resp = app.as_user(&alice).logout(&bob.refresh).await;

    assert!(
        (400..500).contains(&resp.status) || resp.status == 204,
        "{resp}"
    );
    app.refresh(&bob.refresh).await.expect_json(200);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_last_active_admin_cannot_be_removed() {
    let app = spawn_app().await;
    let (admin, as_admin) = (&app.admin, app.as_admin());

    let revoke = as_admin.revoke_role(admin.id, "admin").await;
    revoke.assert_problem(409, "conflict");
    let delete = as_admin.delete_user(admin.id).await;
    delete.assert_problem(409, "conflict");
    let sql = "SELECT count(*) FROM user_roles WHERE role_name = 'admin'";
    assert_eq!(app.count(sql, &[]).await, 1);

    // With a second admin, the first may go.
    app.new_user_with_roles(&["admin"]).await;
    as_admin.delete_user(admin.id).await.expect_status(204);
}

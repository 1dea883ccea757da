//! Revocation: every event that bumps a user's security version kills that user's outstanding
//! access tokens at once (`401 invalid-token`) and their refresh tokens (`401 invalid-grant`),
//! and nobody else's. (Logout-all is in `auth`, password reset in `reset`.)

use serde_json::json;

use crate::helpers::{
    TestApp, TestUser, assert_invalid_token, assert_problem, json_body, other_strong_password,
    spawn_app,
};

/// Asserts that both of `user`'s tokens are dead, and that `bystander`'s still work.
async fn assert_revoked(app: &TestApp, user: &TestUser, bystander: &TestUser) {
    assert_invalid_token(app.me(&user.access).await).await;
    assert_problem(app.refresh_raw(&user.refresh).await, 401, "invalid-grant").await;
    assert_eq!(
        app.me(&bystander.access).await.status(),
        200,
        "others are unaffected"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_change_revokes_all_tokens() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let second = app.login(&user.username, &user.password).await;
    let bystander = app.new_user().await;
    let new_password = other_strong_password();

    let resp = app
        .patch_user(
            &user.access,
            user.id,
            &json!({"password": new_password, "current_password": user.password}),
        )
        .await;
    json_body(resp, 200).await;

    assert_revoked(&app, &user, &bystander).await;
    assert_invalid_token(app.me(&second.access_token).await).await;
    assert_problem(
        app.refresh_raw(&second.refresh_token).await,
        401,
        "invalid-grant",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deactivation_revokes_all_tokens_and_blocks_login() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let bystander = app.new_user().await;

    let resp = app
        .patch_user(&app.admin.access, user.id, &json!({"is_active": false}))
        .await;
    json_body(resp, 200).await;

    assert_revoked(&app, &user, &bystander).await;
    assert_problem(
        app.login_raw(&user.username, &user.password).await,
        401,
        "invalid-credentials",
    )
    .await;

    // Reactivation lets the user log in again; the old tokens stay dead.
    json_body(
        app.patch_user(&app.admin.access, user.id, &json!({"is_active": true}))
            .await,
        200,
    )
    .await;
    app.login(&user.username, &user.password).await;
    assert_invalid_token(app.me(&user.access).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn granting_a_role_revokes_tokens_and_new_tokens_carry_it() {
    let app = spawn_app().await;
    app.create_role("auditor", &["users:read"]).await;
    let user = app.new_user().await;
    let bystander = app.new_user().await;

    let resp = app.grant_role(&app.admin.access, user.id, "auditor").await;
    assert_eq!(resp.status(), 204);

    assert_revoked(&app, &user, &bystander).await;
    let fresh = app.login(&user.username, &user.password).await;
    let list = app
        .get("/users")
        .bearer_auth(&fresh.access_token)
        .send()
        .await
        .unwrap();
    json_body(list, 200).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn revoking_a_role_revokes_tokens_and_its_permissions() {
    let app = spawn_app().await;
    let user = app.new_user_with_roles(&["user", "admin"]).await;
    let bystander = app.new_user().await;

    let resp = app
        .delete(&format!("/users/{}/roles/admin", user.id))
        .bearer_auth(&app.admin.access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);

    // The old token carried admin permissions: it must not list users any more.
    let list = app
        .get("/users")
        .bearer_auth(&user.access)
        .send()
        .await
        .unwrap();
    assert_invalid_token(list).await;
    assert_revoked(&app, &user, &bystander).await;
    let fresh = app.login(&user.username, &user.password).await;
    let list = app
        .get("/users")
        .bearer_auth(&fresh.access_token)
        .send()
        .await
        .unwrap();
    assert_problem(list, 403, "forbidden").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_change_through_patch_revokes_tokens() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let bystander = app.new_user().await;

    let resp = app
        .patch_user(
            &app.admin.access,
            user.id,
            &json!({"roles": ["user", "admin"]}),
        )
        .await;
    json_body(resp, 200).await;

    assert_revoked(&app, &user, &bystander).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deletion_revokes_all_tokens() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let bystander = app.new_user().await;

    let resp = app
        .delete(&format!("/users/{}", user.id))
        .bearer_auth(&app.admin.access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);

    assert_revoked(&app, &user, &bystander).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_profile_edit_does_not_revoke_tokens() {
    let app = spawn_app().await;
    let user = app.new_user().await;

    let resp = app
        .patch_user(&user.access, user.id, &json!({"display_name": "Still Me"}))
        .await;
    json_body(resp, 200).await;

    assert_eq!(app.me(&user.access).await.status(), 200);
    json_body(app.refresh_raw(&user.refresh).await, 200).await;
}

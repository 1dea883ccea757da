//! Revocation: every event that bumps a user's security version kills that user's outstanding
//! access tokens at once (`401 invalid-token`) and their refresh tokens (`401 invalid-grant`),
//! and nobody else's. (Logout-all is in `auth`, password reset in `reset`.)

use serde_json::{Value, json};

use crate::helpers::{
    Api as _, TestApp, TestUser, other_strong_password, spawn_app, spawn_app_and_user,
};

/// Asserts that both of `user`'s tokens are dead, and that `bystander`'s still work.
async fn assert_revoked(app: &TestApp, user: &TestUser, bystander: &TestUser) {
    app.as_user(user).me().await.assert_invalid_token();
    app.refresh(&user.refresh)
        .await
        .assert_problem(401, "invalid-grant");
    let other = app.as_user(bystander).me().await;
    assert_eq!(other.status, 200, "others are unaffected: {other}");
}

/// A user and a bystander, and the admin's `patch` of the user (expecting `200`).
async fn patched_by_admin(app: &TestApp, patch: Value) -> (TestUser, TestUser) {
    let user = app.new_user().await;
    let bystander = app.new_user().await;
    app.as_admin()
        .patch_user(user.id, &patch)
        .await
        .expect_json(200);
    (user, bystander)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_change_revokes_all_tokens() {
    let (app, user) = spawn_app_and_user().await;
    let second = app.second_session(&user).await;
    let bystander = app.new_user().await;
    let new_password = other_strong_password();

    let change = json!({"password": new_password, "current_password": user.password});
    app.as_user(&user)
        .patch_user(user.id, &change)
        .await
        .expect_json(200);

    assert_revoked(&app, &user, &bystander).await;
    app.as_user(&second).me().await.assert_invalid_token();
    app.refresh(&second.refresh)
        .await
        .assert_problem(401, "invalid-grant");
}

#[tokio::test(flavor = "multi_thread")]
async fn deactivation_revokes_all_tokens_and_blocks_login() {
    let app = spawn_app().await;

    let (user, bystander) = patched_by_admin(&app, json!({"is_active": false})).await;

    assert_revoked(&app, &user, &bystander).await;
    let login = app.login_raw(&user.username, &user.password).await;
    login.assert_problem(401, "invalid-credentials");

    // Reactivation lets the user log in again; the old tokens stay dead.
    let reactivate = json!({"is_active": true});
    app.as_admin()
        .patch_user(user.id, &reactivate)
        .await
        .expect_json(200);
    app.login(&user.username, &user.password).await;
    app.as_user(&user).me().await.assert_invalid_token();
}

#[tokio::test(flavor = "multi_thread")]
async fn granting_a_role_revokes_tokens_and_new_tokens_carry_it() {
    let app = spawn_app().await;
    app.create_role("auditor", &["users:read"]).await;
    let user = app.new_user().await;
    let bystander = app.new_user().await;

    app.as_admin()
        .grant_role(user.id, "auditor")
        .await
        .expect_status(204);

    assert_revoked(&app, &user, &bystander).await;
    let fresh = app.second_session(&user).await;
    app.as_user(&fresh).list_users(&[]).await.expect_json(200);
}

#[tokio::test(flavor = "multi_thread")]
async fn revoking_a_role_revokes_tokens_and_its_permissions() {
    let app = spawn_app().await;
    let user = app.new_user_with_roles(&["user", "admin"]).await;
    let bystander = app.new_user().await;

    app.as_admin()
        .revoke_role(user.id, "admin")
        .await
        .expect_status(204);

    // The old token carried admin permissions: it must not list users any more.
    app.as_user(&user)
        .list_users(&[])
        .await
        .assert_invalid_token();
    assert_revoked(&app, &user, &bystander).await;
    let fresh = app.second_session(&user).await;
    let list = app.as_user(&fresh).list_users(&[]).await;
    list.assert_problem(403, "forbidden");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_change_through_patch_revokes_tokens() {
    let app = spawn_app().await;

    let (user, bystander) = patched_by_admin(&app, json!({"roles": ["user", "admin"]})).await;

    assert_revoked(&app, &user, &bystander).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deletion_revokes_all_tokens() {
    let (app, user) = spawn_app_and_user().await;
    let bystander = app.new_user().await;

    app.as_admin().delete_user(user.id).await.expect_status(204);

    assert_revoked(&app, &user, &bystander).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_profile_edit_does_not_revoke_tokens() {
    let (app, user) = spawn_app_and_user().await;

    let edit = json!({"display_name": "Still Me"});
    app.as_user(&user)
        .patch_user(user.id, &edit)
        .await
        .expect_json(200);

    app.as_user(&user).me().await.expect_status(200);
    app.refresh(&user.refresh).await.expect_json(200);
}

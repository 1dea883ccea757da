//! The user resource: reading (ETag, conditional GET, read-your-writes), creating as an
//! admin, deleting (and what deletion leaves behind). Changes are in `updates`.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    Api as _, TestApp, TestUser, account_json, spawn_app, spawn_app_and_user, strong_password,
    unique_name,
};

/// The ETag the origin gives the view `body`: `"<id simple>-<version>"`.
pub fn etag_of(body: &Value) -> String {
    let id: Uuid = body["id"].as_str().unwrap().parse().unwrap();
    format!("\"{}-{}\"", id.simple(), body["version"])
}

/// `user`'s own view by id, with its ETag.
pub async fn get_view(app: &TestApp, user: &TestUser) -> (Value, String) {
    let resp = app.as_user(user).get_user(user.id).await;
    (resp.expect_json(200), resp.etag())
}

#[tokio::test(flavor = "multi_thread")]
async fn me_and_get_by_id_return_the_own_view_with_an_etag() {
    let (app, user) = spawn_app_and_user().await;

    let me = app.as_user(&user).me().await;
    let me_etag = me.header("etag").expect("an ETag on /users/me");
    let me = me.expect_json(200);
    let (by_id, etag) = get_view(&app, &user).await;

    assert_eq!(me, by_id);
    assert_eq!(me["username"], json!(user.username));
    assert_eq!(etag, etag_of(&by_id), "ETag is \"<id simple>-<version>\"");
    assert_eq!(me_etag, etag);
}

#[tokio::test(flavor = "multi_thread")]
async fn if_none_match_gives_304_until_the_user_changes() {
    let (app, user) = spawn_app_and_user().await;
    let (_, etag) = get_view(&app, &user).await;
    let path = format!("/users/{}", user.id);
    let as_user = app.as_user(&user);
    let if_none_match = || as_user.get(&path).header("if-none-match", &etag).send();

    let resp = if_none_match().await;
    resp.expect_status(304);
    assert_eq!(resp.header("etag").as_deref(), Some(etag.as_str()));
    assert!(resp.text.is_empty());

    let new = json!({"display_name": "New"});
    as_user.patch_user(user.id, &new).await.expect_json(200);
    let resp = if_none_match().await;
    assert_eq!(resp.expect_json(200)["display_name"], json!("New"));
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_creates_a_user_with_roles_and_state() {
    let app = spawn_app().await;
    let username = unique_name("made");

    let extra = json!({"display_name": "Made By Admin", "roles": ["admin"], "is_active": false});
    let resp = app.create_user(&account_json(&username, extra)).await;

    let body = resp.expect_json(201);
    assert_eq!(
        resp.header("location"),
        Some(format!("/users/{}", body["id"].as_str().unwrap()))
    );
    assert_eq!(resp.header("etag"), Some(etag_of(&body)));
    assert_eq!(body["roles"], json!(["admin"]));
    assert_eq!(body["is_active"], json!(false));
    assert_eq!(body["display_name"], json!("Made By Admin"));
}

#[tokio::test(flavor = "multi_thread")]
async fn creating_users_needs_users_create() {
    let (app, user) = spawn_app_and_user().await;
    let username = unique_name("x");

    let account = account_json(&username, json!({}));
    let resp = app.as_user(&user).post_user(&account).await;

    resp.assert_problem(403, "forbidden");
    let sql = "SELECT count(*) FROM users WHERE username = $1";
    assert_eq!(app.count(sql, &[&username]).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_oneself_removes_the_row_and_the_personal_data() {
    let (app, user) = spawn_app_and_user().await;
    app.request_reset(&user.email).await;
    app.smtp
        .wait_for_mail_about(
            &user.email,
            crate::smtp::RESET_SUBJECT,
            std::time::Duration::from_secs(10),
        )
        .await
        .expect("the reset mail went out");

    let resp = app.as_user(&user).delete_user(user.id).await;

    resp.expect_status(204);
    for (table, column) in [
        ("users", "id"),
        ("user_roles", "user_id"),
        ("refresh_tokens", "user_id"),
        ("password_reset_tokens", "user_id"),
    ] {
        let sql = format!("SELECT count(*) FROM {table} WHERE {column} = $1");
        let n = app.count(&sql, &[&user.id]).await;
        assert_eq!(n, 0, "{table} keeps nothing of the user");
    }
    let sql = "SELECT count(*) FROM mail_outbox WHERE lower(recipient) = lower($1)";
    let queued = app.count(sql, &[&user.email]).await;
    assert_eq!(queued, 0, "no mail to the user is left queued");
    app.as_user(&user).me().await.assert_invalid_token();
    let login = app.login_raw(&user.username, &user.password).await;
    login.assert_problem(401, "invalid-credentials");
    app.as_admin()
        .get_user(user.id)
        .await
        .assert_problem(404, "not-found");
    // The identity is free again.
    let again = app
        .register(&user.username, &user.email, &strong_password())
        .await;
    again.expect_json(201);
}

#[tokio::test(flavor = "multi_thread")]
async fn deletion_leaves_no_username_or_email_in_the_audit_log() {
    let (app, user) = spawn_app_and_user().await;
    // Events that may record what was typed: a failed login by email and by username.
    for login in [&user.email, &user.username] {
        app.login_raw(login, "not-my-passphrase-at-all-here").await;
    }
    let as_user = app.as_user(&user);
    let patch = json!({"display_name": "Personal Name"});
    as_user.patch_user(user.id, &patch).await.expect_json(200);

    as_user.delete_user(user.id).await.expect_status(204);

    // The trail keeps ids (it outlives deletions by design), not personal data.
    let leaks = app
        .strings(
            "SELECT action || ': ' || details::text FROM audit_log \
             WHERE details::text ILIKE '%' || $1 || '%' OR details::text ILIKE '%' || $2 || '%' \
             OR details::text ILIKE '%Personal Name%'",
            &[&user.username, &user.email],
        )
        .await;
    assert!(
        leaks.is_empty(),
        "personal data left in audit_log: {leaks:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_deletes_another_user() {
    let (app, user) = spawn_app_and_user().await;

    let resp = app.as_admin().delete_user(user.id).await;

    resp.expect_status(204);
    let n = app
        .count("SELECT count(*) FROM users WHERE id = $1", &[&user.id])
        .await;
    assert_eq!(n, 0);
    let again = app.as_admin().delete_user(user.id).await;
    again.assert_problem(404, "not-found");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_user_id_is_404() {
    let app = spawn_app().await;

    let resp = app.as_admin().get_user(Uuid::now_v7()).await;

    resp.assert_problem(404, "not-found");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_user_view_never_shows_secrets() {
    let (app, user) = spawn_app_and_user().await;

    let me = app.as_user(&user).me().await.text;
    let list = app.as_admin().list_users(&[]).await.text;

    for text in [me, list] {
        assert!(!text.contains("argon2"), "{text}");
        assert!(!text.contains("password"), "{text}");
        assert!(!text.contains(&user.refresh));
        assert!(!text.contains("security_version"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_reflect_admin_writes_at_once() {
    let app = spawn_app().await;
    app.create_role("auditor", &["users:read"]).await;
    let user = app.new_user().await;
    let as_admin = app.as_admin();
    // Warm whatever caches there are.
    as_admin.get_user(user.id).await.expect_json(200);

    as_admin
        .grant_role(user.id, "auditor")
        .await
        .expect_status(204);
    let view = as_admin.get_user(user.id).await.expect_json(200);
    assert!(
        view["roles"]
            .as_array()
            .unwrap()
            .contains(&json!("auditor")),
        "{view}"
    );

    let deactivate = json!({"is_active": false});
    as_admin
        .patch_user(user.id, &deactivate)
        .await
        .expect_json(200);
    let view = as_admin.get_user(user.id).await.expect_json(200);
    assert_eq!(view["is_active"], json!(false));

    as_admin
        .delete("/roles/auditor")
        .send()
        .await
        .expect_status(204);
    let view = as_admin.get_user(user.id).await.expect_json(200);
    assert_eq!(view["roles"], json!(["user"]));
}

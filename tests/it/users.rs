//! The user resource: reading (ETag, conditional GET, read-your-writes), creating as an
//! admin, deleting (and what deletion leaves behind). Changes are in `updates`.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    TestApp, assert_invalid_token, assert_problem, header, json_body, spawn_app, strong_password,
    unique_name,
};

pub fn etag_of(body: &Value) -> String {
    let id: Uuid = body["id"].as_str().unwrap().parse().unwrap();
    format!("\"{}-{}\"", id.simple(), body["version"])
}

pub async fn get_view(app: &TestApp, token: &str, id: Uuid) -> (Value, String) {
    let resp = app.get_user(token, id).await;
    let etag = header(&resp, "etag").expect("an ETag");
    (json_body(resp, 200).await, etag)
}

#[tokio::test(flavor = "multi_thread")]
async fn me_and_get_by_id_return_the_own_view_with_an_etag() {
    let app = spawn_app().await;
    let user = app.new_user().await;

    let me = app.me(&user.access).await;
    let me_etag = header(&me, "etag").expect("an ETag on /users/me");
    let me = json_body(me, 200).await;
    let (by_id, etag) = get_view(&app, &user.access, user.id).await;

    assert_eq!(me, by_id);
    assert_eq!(me["username"], json!(user.username));
    assert_eq!(etag, etag_of(&by_id), "ETag is \"<id simple>-<version>\"");
    assert_eq!(me_etag, etag);
}

#[tokio::test(flavor = "multi_thread")]
async fn if_none_match_gives_304_until_the_user_changes() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let (_, etag) = get_view(&app, &user.access, user.id).await;
    let path = format!("/users/{}", user.id);

    let resp = app
        .get(&path)
        .bearer_auth(&user.access)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 304);
    assert_eq!(header(&resp, "etag").as_deref(), Some(etag.as_str()));
    assert!(resp.bytes().await.unwrap().is_empty());

    json_body(
        app.patch_user(&user.access, user.id, &json!({"display_name": "New"}))
            .await,
        200,
    )
    .await;
    let resp = app
        .get(&path)
        .bearer_auth(&user.access)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(json_body(resp, 200).await["display_name"], json!("New"));
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_creates_a_user_with_roles_and_state() {
    let app = spawn_app().await;
    let username = unique_name("made");

    let resp = app
        .create_user(&json!({
            "username": username, "email": format!("{username}@example.com"),
            "password": strong_password(), "display_name": "Made By Admin",
            "roles": ["admin"], "is_active": false
        }))
        .await;

    let location = header(&resp, "location");
    let etag = header(&resp, "etag");
    let body = json_body(resp, 201).await;
    assert_eq!(
        location,
        Some(format!("/users/{}", body["id"].as_str().unwrap()))
    );
    assert_eq!(etag, Some(etag_of(&body)));
    assert_eq!(body["roles"], json!(["admin"]));
    assert_eq!(body["is_active"], json!(false));
    assert_eq!(body["display_name"], json!("Made By Admin"));
}

#[tokio::test(flavor = "multi_thread")]
async fn creating_users_needs_users_create() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let username = unique_name("x");

    let resp = app
        .post("/users")
        .bearer_auth(&user.access)
        .json(&json!({
            "username": username, "email": format!("{username}@example.com"),
            "password": strong_password()
        }))
        .send()
        .await
        .unwrap();

    assert_problem(resp, 403, "forbidden").await;
    let n: i64 = app
        .db
        .query_one(
            "SELECT count(*) FROM users WHERE username = $1",
            &[&username],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_oneself_removes_the_row_and_the_personal_data() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    app.post("/auth/password/reset")
        .json(&json!({"email": user.email}))
        .send()
        .await
        .unwrap();
    app.smtp
        .wait_for_mail_to(&user.email, std::time::Duration::from_secs(10))
        .await
        .expect("the reset mail went out");

    let resp = app
        .delete(&format!("/users/{}", user.id))
        .bearer_auth(&user.access)
        .send()
        .await
        .unwrap();

    assert_eq!(resp.status(), 204);
    for (table, column) in [
        ("users", "id"),
        ("user_roles", "user_id"),
        ("refresh_tokens", "user_id"),
        ("password_reset_tokens", "user_id"),
    ] {
        let n: i64 = app
            .db
            .query_one(
                &format!("SELECT count(*) FROM {table} WHERE {column} = $1"),
                &[&user.id],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "{table} keeps nothing of the user");
    }
    let queued: i64 = app
        .db
        .query_one(
            "SELECT count(*) FROM mail_outbox WHERE lower(recipient) = lower($1)",
            &[&user.email],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(queued, 0, "no mail to the user is left queued");
    assert_invalid_token(app.me(&user.access).await).await;
    assert_problem(
        app.login_raw(&user.username, &user.password).await,
        401,
        "invalid-credentials",
    )
    .await;
    assert_problem(
        app.get_user(&app.admin.access, user.id).await,
        404,
        "not-found",
    )
    .await;
    // The identity is free again.
    let again = app
        .register(&user.username, &user.email, &strong_password())
        .await;
    json_body(again, 201).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deletion_leaves_no_username_or_email_in_the_audit_log() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    // Events that may record what was typed: a failed login by email and by username.
    app.login_raw(&user.email, "not-my-passphrase-at-all-here")
        .await;
    app.login_raw(&user.username, "not-my-passphrase-at-all-here")
        .await;
    let patch = json!({"display_name": "Personal Name"});
    json_body(app.patch_user(&user.access, user.id, &patch).await, 200).await;

    let resp = app
        .delete(&format!("/users/{}", user.id))
        .bearer_auth(&user.access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);

    // The trail keeps ids (it outlives deletions by design), not personal data.
    let leaks: Vec<String> = app
        .db
        .query(
            "SELECT action || ': ' || details::text FROM audit_log \
             WHERE details::text ILIKE '%' || $1 || '%' OR details::text ILIKE '%' || $2 || '%' \
             OR details::text ILIKE '%Personal Name%'",
            &[&user.username, &user.email],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        leaks.is_empty(),
        "personal data left in audit_log: {leaks:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_deletes_another_user() {
    let app = spawn_app().await;
    let user = app.new_user().await;

    let resp = app
        .delete(&format!("/users/{}", user.id))
        .bearer_auth(&app.admin.access)
        .send()
        .await
        .unwrap();

    assert_eq!(resp.status(), 204);
    let n: i64 = app
        .db
        .query_one("SELECT count(*) FROM users WHERE id = $1", &[&user.id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    let again = app
        .delete(&format!("/users/{}", user.id))
        .bearer_auth(&app.admin.access)
        .send()
        .await
        .unwrap();
    assert_problem(again, 404, "not-found").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_user_id_is_404() {
    let app = spawn_app().await;

    let resp = app.get_user(&app.admin.access, Uuid::now_v7()).await;

    assert_problem(resp, 404, "not-found").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_user_view_never_shows_secrets() {
    let app = spawn_app().await;
    let user = app.new_user().await;

    let me = app.me(&user.access).await.text().await.unwrap();
    let list = app
        .get("/users")
        .bearer_auth(&app.admin.access)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

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
    // Warm whatever caches there are.
    json_body(app.get_user(&app.admin.access, user.id).await, 200).await;

    assert_eq!(
        app.grant_role(&app.admin.access, user.id, "auditor")
            .await
            .status(),
        204
    );
    let view = json_body(app.get_user(&app.admin.access, user.id).await, 200).await;
    assert!(
        view["roles"]
            .as_array()
            .unwrap()
            .contains(&json!("auditor")),
        "{view}"
    );

    let resp = app
        .patch_user(&app.admin.access, user.id, &json!({"is_active": false}))
        .await;
    json_body(resp, 200).await;
    let view = json_body(app.get_user(&app.admin.access, user.id).await, 200).await;
    assert_eq!(view["is_active"], json!(false));

    let resp = app
        .delete("/roles/auditor")
        .bearer_auth(&app.admin.access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let view = json_body(app.get_user(&app.admin.access, user.id).await, 200).await;
    assert_eq!(view["roles"], json!(["user"]));
}

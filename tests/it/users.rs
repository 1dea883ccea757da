//! The user resource: reading (ETag, conditional GET), creating as an admin, PATCH (merge
//! patch, If-Match), PUT (full replace), password change and deletion.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    TestApp, assert_invalid_token, assert_problem, error_fields, header, json_body,
    other_strong_password, spawn_app, strong_password, unique_name,
};

fn etag_of(body: &Value) -> String {
    let id: Uuid = body["id"].as_str().unwrap().parse().unwrap();
    format!("\"{}-{}\"", id.simple(), body["version"])
}

async fn get_view(app: &TestApp, token: &str, id: Uuid) -> (Value, String) {
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
async fn patch_updates_fields_bumps_the_version_and_the_etag() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let (before, _) = get_view(&app, &user.access, user.id).await;
    let new_name = unique_name("renamed");

    let resp = app
        .patch_user(
            &user.access,
            user.id,
            &json!({"display_name": "Zoë 🦀", "username": new_name.to_uppercase()}),
        )
        .await;

    let etag = header(&resp, "etag").expect("ETag on PATCH");
    let after = json_body(resp, 200).await;
    assert_eq!(after["display_name"], json!("Zoë 🦀"));
    assert_eq!(after["username"], json!(new_name));
    assert_eq!(after["email"], before["email"], "untouched fields stay");
    assert_eq!(
        after["version"].as_i64().unwrap(),
        before["version"].as_i64().unwrap() + 1
    );
    assert_ne!(after["updated_at"], before["updated_at"]);
    assert_eq!(after["created_at"], before["created_at"]);
    assert_eq!(etag, etag_of(&after));
    // Read-your-writes.
    let (fresh, fresh_etag) = get_view(&app, &user.access, user.id).await;
    assert_eq!(fresh, after);
    assert_eq!(fresh_etag, etag);
}

#[tokio::test(flavor = "multi_thread")]
async fn merge_patch_null_removes_the_display_name() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    json_body(
        app.patch_user(&user.access, user.id, &json!({"display_name": "Temp"}))
            .await,
        200,
    )
    .await;

    let resp = app
        .patch_user(&user.access, user.id, &json!({"display_name": null}))
        .await;

    assert_eq!(json_body(resp, 200).await["display_name"], Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn patch_accepts_plain_json_and_refuses_other_media_types() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let path = format!("/users/{}", user.id);

    let resp = app
        .patch(&path)
        .bearer_auth(&user.access)
        .json(&json!({"display_name": "Plain JSON"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_body(resp, 200).await["display_name"],
        json!("Plain JSON")
    );

    let resp = app
        .patch(&path)
        .bearer_auth(&user.access)
        .header("content-type", "text/plain")
        .body(r#"{"display_name": "Text"}"#)
        .send()
        .await
        .unwrap();
    assert_problem(resp, 415, "unsupported-media-type").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn if_match_is_honoured_on_patch_and_put() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let (view, etag) = get_view(&app, &user.access, user.id).await;
    let path = format!("/users/{}", user.id);

    let resp = app
        .patch(&path)
        .bearer_auth(&user.access)
        .header("if-match", &etag)
        .json(&json!({"display_name": "First"}))
        .send()
        .await
        .unwrap();
    json_body(resp, 200).await;

    // The old ETag is stale now: both methods refuse it and change nothing.
    let resp = app
        .patch(&path)
        .bearer_auth(&user.access)
        .header("if-match", &etag)
        .json(&json!({"display_name": "Lost update"}))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 412, "precondition-failed").await;
    let resp = app
        .put(&path)
        .bearer_auth(&user.access)
        .header("if-match", &etag)
        .json(
            &json!({"username": view["username"], "email": view["email"], "display_name": "Lost"}),
        )
        .send()
        .await
        .unwrap();
    assert_problem(resp, 412, "precondition-failed").await;

    let (now, _) = get_view(&app, &user.access, user.id).await;
    assert_eq!(now["display_name"], json!("First"));
}

#[tokio::test(flavor = "multi_thread")]
async fn patch_refuses_unknown_fields() {
    let app = spawn_app().await;
    let user = app.new_user().await;

    let resp = app
        .patch_user(
            &user.access,
            user.id,
            &json!({"display_name": "X", "is_admin": true}),
        )
        .await;

    let problem = assert_problem(resp, 422, "validation-failed").await;
    assert!(
        error_fields(&problem).contains(&"is_admin".to_owned()),
        "{problem}"
    );
    let (view, _) = get_view(&app, &user.access, user.id).await;
    assert_eq!(view["display_name"], Value::Null, "nothing applied");
}

#[tokio::test(flavor = "multi_thread")]
async fn patch_validates_fields() {
    let app = spawn_app().await;
    let user = app.new_user().await;

    let resp = app
        .patch_user(
            &user.access,
            user.id,
            &json!({"username": "x", "email": "nope", "display_name": "é".repeat(101)}),
        )
        .await;

    let problem = assert_problem(resp, 422, "validation-failed").await;
    let mut fields = error_fields(&problem);
    fields.sort();
    assert_eq!(fields, vec!["display_name", "email", "username"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn patch_to_a_taken_username_or_email_is_409() {
    let app = spawn_app().await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;

    let resp = app
        .patch_user(&bob.access, bob.id, &json!({"username": alice.username}))
        .await;
    assert_problem(resp, 409, "conflict").await;
    let resp = app
        .patch_user(
            &bob.access,
            bob.id,
            &json!({"email": alice.email.to_uppercase()}),
        )
        .await;
    assert_problem(resp, 409, "conflict").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn put_replaces_every_mutable_field() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    json_body(
        app.patch_user(&user.access, user.id, &json!({"display_name": "Old"}))
            .await,
        200,
    )
    .await;
    let new_email = format!("{}@elsewhere.example", unique_name("m"));

    let resp = app
        .put(&format!("/users/{}", user.id))
        .bearer_auth(&user.access)
        .json(&json!({"username": user.username, "email": new_email}))
        .send()
        .await
        .unwrap();

    let body = json_body(resp, 200).await;
    assert_eq!(body["email"], json!(new_email));
    assert_eq!(
        body["display_name"],
        Value::Null,
        "omitted means removed in a full replace"
    );
    assert_eq!(body["roles"], json!(["user"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn put_without_a_required_field_is_422() {
    let app = spawn_app().await;
    let user = app.new_user().await;

    let resp = app
        .put(&format!("/users/{}", user.id))
        .bearer_auth(&user.access)
        .json(&json!({"display_name": "No identity"}))
        .send()
        .await
        .unwrap();

    let problem = assert_problem(resp, 422, "validation-failed").await;
    let fields = error_fields(&problem);
    assert!(
        fields.contains(&"username".to_owned()) || fields.contains(&"email".to_owned()),
        "{problem}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn password_change_needs_the_current_password() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let new_password = other_strong_password();

    let wrong = app
        .patch_user(
            &user.access,
            user.id,
            &json!({"password": new_password, "current_password": "this-is-not-my-passphrase"}),
        )
        .await;
    assert_problem(wrong, 403, "forbidden").await;
    app.login(&user.username, &user.password).await;

    let ok = app
        .patch_user(
            &user.access,
            user.id,
            &json!({"password": new_password, "current_password": user.password}),
        )
        .await;
    let body = json_body(ok, 200).await;
    assert!(body.get("password").is_none() && body.get("current_password").is_none());

    assert_problem(
        app.login_raw(&user.username, &user.password).await,
        401,
        "invalid-credentials",
    )
    .await;
    app.login(&user.username, &new_password).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_password_must_meet_the_policy() {
    let app = spawn_app().await;
    let user = app.new_user().await;

    let resp = app
        .patch_user(
            &user.access,
            user.id,
            &json!({"password": "password1234567", "current_password": user.password}),
        )
        .await;

    let problem = assert_problem(resp, 422, "validation-failed").await;
    assert_eq!(error_fields(&problem), vec!["password"]);
    app.login(&user.username, &user.password).await;
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
    // The audit trail keeps ids, not personal data.
    let leaks: i64 = app
        .db
        .query_one(
            "SELECT count(*) FROM audit_log WHERE details::text ILIKE '%' || $1 || '%' \
             OR details::text ILIKE '%' || $2 || '%'",
            &[&user.username, &user.email],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(leaks, 0, "no username or email left in the audit log");
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

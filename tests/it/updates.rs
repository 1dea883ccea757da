//! Changing a user: PATCH (JSON Merge Patch, both media types), PUT (full replace), If-Match,
//! validation and uniqueness, and the self-service password change.

use serde_json::{Value, json};

use crate::helpers::{
    assert_problem, error_fields, header, json_body, other_strong_password, spawn_app, unique_name,
};
use crate::users::{etag_of, get_view};

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

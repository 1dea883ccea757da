//! Changing a user: PATCH (JSON Merge Patch, both media types), PUT (full replace), If-Match,
//! validation and uniqueness, and the self-service password change.

use serde_json::{Value, json};

use crate::helpers::{
    Api as _, error_fields, other_strong_password, spawn_app, spawn_app_and_user, unique_name,
};
use crate::users::{etag_of, get_view};

#[tokio::test(flavor = "multi_thread")]
async fn patch_updates_fields_bumps_the_version_and_the_etag() {
    let (app, user) = spawn_app_and_user().await;
    let (before, _) = get_view(&app, &user).await;
    let new_name = unique_name("renamed");

    let patch = json!({"display_name": "Zoë 🦀", "username": new_name.to_uppercase()});
    let resp = app.as_user(&user).patch_user(user.id, &patch).await;

    let etag = resp.etag();
    let after = resp.expect_json(200);
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
    let (fresh, fresh_etag) = get_view(&app, &user).await;
    assert_eq!(fresh, after);
    assert_eq!(fresh_etag, etag);
}

#[tokio::test(flavor = "multi_thread")]
async fn merge_patch_null_removes_the_display_name() {
    let (app, user) = spawn_app_and_user().await;
    let as_user = app.as_user(&user);
    as_user.set_display_name(user.id, "Temp").await;

    let resp = as_user
        .patch_user(user.id, &json!({"display_name": null}))
        .await;

    assert_eq!(resp.expect_json(200)["display_name"], Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn patch_accepts_plain_json_and_refuses_other_media_types() {
    let (app, user) = spawn_app_and_user().await;
    let path = format!("/users/{}", user.id);
    let as_user = app.as_user(&user);

    let plain = json!({"display_name": "Plain JSON"});
    let resp = as_user.patch(&path).json(&plain).send().await;
    assert_eq!(resp.expect_json(200)["display_name"], json!("Plain JSON"));

    let text = r#"{"display_name": "Text"}"#;
    let resp = as_user
        .patch(&path)
        .typed_body("text/plain", text)
        .send()
        .await;
    resp.assert_problem(415, "unsupported-media-type");
}

#[tokio::test(flavor = "multi_thread")]
async fn if_match_is_honoured_on_patch_and_put() {
    let (app, user) = spawn_app_and_user().await;
    let as_user = app.as_user(&user);
    let (view, etag) = get_view(&app, &user).await;
    let path = format!("/users/{}", user.id);
    let patch_if = |name: &str| {
        let patch = json!({"display_name": name});
        as_user
            .patch(&path)
            .header("if-match", &etag)
            .json(&patch)
            .send()
    };

    patch_if("First").await.expect_json(200);

    // The old ETag is stale now: both methods refuse it and change nothing.
    patch_if("Lost update")
        .await
        .assert_problem(412, "precondition-failed");
    let put = json!({"username": view["username"], "email": view["email"], "display_name": "Lost"});
    let resp = as_user
        .put(&path)
        .header("if-match", &etag)
        .json(&put)
        .send()
        .await;
    resp.assert_problem(412, "precondition-failed");

    let (now, _) = get_view(&app, &user).await;
    assert_eq!(now["display_name"], json!("First"));
}

#[tokio::test(flavor = "multi_thread")]
async fn patch_refuses_unknown_fields() {
    let (app, user) = spawn_app_and_user().await;

    let patch = json!({"display_name": "X", "is_admin": true});
    let resp = app.as_user(&user).patch_user(user.id, &patch).await;

    let problem = resp.assert_problem(422, "validation-failed");
    assert!(
        error_fields(&problem).contains(&"is_admin".to_owned()),
        "{problem}"
    );
    let (view, _) = get_view(&app, &user).await;
    assert_eq!(view["display_name"], Value::Null, "nothing applied");
}

#[tokio::test(flavor = "multi_thread")]
async fn patch_validates_fields() {
    let (app, user) = spawn_app_and_user().await;

    let patch = json!({"username": "x", "email": "nope", "display_name": "é".repeat(101)});
    let resp = app.as_user(&user).patch_user(user.id, &patch).await;

    let problem = resp.assert_problem(422, "validation-failed");
    let mut fields = error_fields(&problem);
    fields.sort();
    assert_eq!(fields, vec!["display_name", "email", "username"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn patch_to_a_taken_username_or_email_is_409() {
    let app = spawn_app().await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;

    for taken in [
        json!({"username": alice.username}),
        json!({"email": alice.email.to_uppercase(), "current_password": bob.password}),
    ] {
        let resp = app.as_user(&bob).patch_user(bob.id, &taken).await;
        resp.assert_problem(409, "conflict");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn put_replaces_every_mutable_field() {
    let (app, user) = spawn_app_and_user().await;
    let as_user = app.as_user(&user);
    as_user.set_display_name(user.id, "Old").await;
    let new_email = format!("{}@elsewhere.example", unique_name("m"));

    let replacement = json!({"username": user.username, "email": new_email,
                             "current_password": user.password});
    let resp = as_user
        .put(&format!("/users/{}", user.id))
        .json(&replacement)
        .send()
        .await;

    let body = resp.expect_json(200);
    // A new address of one's own waits for its confirmations (SPEC §6).
    assert_eq!(body["email"], json!(user.email));
    assert_eq!(body["pending_email"], json!(new_email));
    assert_eq!(
        body["display_name"],
        Value::Null,
        "omitted means removed in a full replace"
    );
    assert_eq!(body["roles"], json!(["user"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn put_without_a_required_field_is_422() {
    let (app, user) = spawn_app_and_user().await;

    let replacement = json!({"display_name": "No identity"});
    let resp = app
        .as_user(&user)
        .put(&format!("/users/{}", user.id))
        .json(&replacement)
        .send()
        .await;

    let problem = resp.assert_problem(422, "validation-failed");
    let fields = error_fields(&problem);
    assert!(
        fields.contains(&"username".to_owned()) || fields.contains(&"email".to_owned()),
        "{problem}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn password_change_needs_the_current_password() {
    let (app, user) = spawn_app_and_user().await;
    let new_password = other_strong_password();

    let as_user = app.as_user(&user);
    let change = |current: &str| json!({"password": new_password, "current_password": current});

    let wrong = as_user
        .patch_user(user.id, &change("this-is-not-my-passphrase"))
        .await;
    wrong.assert_problem(403, "forbidden");
    app.login(&user.username, &user.password).await;

    let ok = as_user.patch_user(user.id, &change(&user.password)).await;
    let body = ok.expect_json(200);
    assert!(body.get("password").is_none() && body.get("current_password").is_none());

    app.assert_password_is(&user, &new_password).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_password_must_meet_the_policy() {
    let (app, user) = spawn_app_and_user().await;

    let weak = json!({"password": "password1234567", "current_password": user.password});
    let resp = app.as_user(&user).patch_user(user.id, &weak).await;

    let problem = resp.assert_problem(422, "validation-failed");
    assert_eq!(error_fields(&problem), vec!["password"]);
    app.login(&user.username, &user.password).await;
}

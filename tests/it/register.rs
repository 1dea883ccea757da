//! Self-registration (`POST /auth/register`): the created view, uniqueness, validation of
//! every field, the password policy, and switching registration off.

use std::collections::BTreeSet;

use serde_json::json;

use crate::helpers::{
    Api as _, account_json, error_fields, spawn_app, spawn_app_and_user, spawn_app_set,
    strong_password, unique_name,
};

#[tokio::test(flavor = "multi_thread")]
async fn register_returns_201_with_location_and_a_user_view() {
    let app = spawn_app().await;
    let username = unique_name("Alice");
    let email = format!("{username}@Example.com");

    let account = json!({"email": email, "display_name": "Alice Example"});
    let resp = app
        .post("/auth/register")
        .json(&account_json(&username, account))
        .send()
        .await;

    let location = resp.header("location");
    let body = resp.expect_json(201);
    let id = body["id"].as_str().expect("id");
    assert_eq!(location.as_deref(), Some(format!("/users/{id}").as_str()));
    assert_eq!(
        body["username"],
        json!(username.to_lowercase()),
        "stored lower-case"
    );
    assert_eq!(body["email"], json!(email));
    assert_eq!(body["display_name"], json!("Alice Example"));
    assert_eq!(body["roles"], json!(["user"]));
    assert_eq!(body["is_active"], json!(true));
    assert!(body["version"].is_i64());
    assert_eq!(
        body["email_verified"], false,
        "nobody proved the address yet"
    );
    let keys: BTreeSet<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected: BTreeSet<&str> = [
        "id",
        "username",
        "email",
        "email_verified",
        "display_name",
        "roles",
        "is_active",
        "mfa_enabled",
        "created_at",
        "updated_at",
        "version",
    ]
    .into();
    assert_eq!(
        keys, expected,
        "the user view has exactly the documented members"
    );
    let uuid: uuid::Uuid = id.parse().expect("a uuid");
    assert_eq!(uuid.get_version_num(), 7, "ids are UUID v7");
}

#[tokio::test(flavor = "multi_thread")]
async fn register_never_stores_the_password_in_clear() {
    let (app, user) = spawn_app_and_user().await;

    let sql = "SELECT password_hash FROM users WHERE id = $1";
    let hash = app.strings(sql, &[&user.id]).await.remove(0);
    assert!(
        hash.starts_with("$argon2id$"),
        "a PHC Argon2id string: {hash}"
    );
    assert!(!hash.contains(&user.password));
}

#[tokio::test(flavor = "multi_thread")]
async fn register_with_a_taken_username_or_email_is_409() {
    let (app, user) = spawn_app_and_user().await;

    let (name, email) = (user.username.to_uppercase(), user.email.to_uppercase());
    let same_name = app
        .register(&name, "fresh@example.com", &strong_password())
        .await;
    same_name.assert_problem(409, "conflict");

    let same_email = app
        .register(&unique_name("b"), &email, &strong_password())
        .await;
    same_email.assert_problem(409, "conflict");
}

#[tokio::test(flavor = "multi_thread")]
async fn register_validation_lists_every_bad_field() {
    let app = spawn_app().await;

    let resp = app
        .post("/auth/register")
        .json(&json!({
            "username": "no spaces allowed", "email": "not-an-email",
            "password": "short", "display_name": "bell\u{7}"
        }))
        .send()
        .await;

    let problem = resp.assert_problem(422, "validation-failed");
    let fields: BTreeSet<String> = error_fields(&problem).into_iter().collect();
    for field in ["username", "email", "password", "display_name"] {
        assert!(fields.contains(field), "{field} is listed: {problem}");
    }
    for error in problem["errors"].as_array().unwrap() {
        assert!(
            error["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "each field says why: {error}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn register_refuses_weak_identity_derived_and_oversized_passwords() {
    let app = spawn_app().await;
    let username = unique_name("carol");
    let email = format!("{username}@example.com");

    for password in [
        "passwordpassword".to_owned(),
        format!("{username}{username}"),
        "x".repeat(129),
        "fourteen chars".to_owned(),
    ] {
        let resp = app.register(&username, &email, &password).await;
        let problem = resp.assert_problem(422, "validation-failed");
        assert_eq!(
            error_fields(&problem),
            vec!["password"],
            "{password:?}: {problem}"
        );
    }
    let sql = "SELECT count(*) FROM users WHERE username = $1";
    assert_eq!(app.count(sql, &[&username]).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn passwords_are_counted_in_characters_and_never_truncated() {
    let app = spawn_app().await;
    let username = unique_name("dave");
    let email = format!("{username}@example.com");
    // 128 characters, 256 bytes: at the limit.
    let long: String = "жёлтый-кит-плывёт-на-закате-"
        .chars()
        .cycle()
        .take(128)
        .collect();

    app.register(&username, &email, &long)
        .await
        .expect_json(201);

    // Not truncated: a prefix is a different password.
    let prefix: String = long.chars().take(72).collect();
    let resp = app.login_raw(&username, &prefix).await;
    resp.assert_problem(401, "invalid-credentials");
    app.login(&username, &long).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn registration_can_be_disabled() {
    let app = spawn_app_set(&[("ALLOW_REGISTRATION", "false")]).await;

    let resp = app
        .register(&unique_name("e"), "e@example.com", &strong_password())
        .await;

    resp.assert_problem(403, "registration-disabled");
    let count = app.count("SELECT count(*) FROM users", &[]).await;
    assert_eq!(count, 1, "only the admin exists");
}

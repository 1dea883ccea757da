//! Self-registration (`POST /auth/register`): the created view, uniqueness, validation of
//! every field, the password policy, and switching registration off.

use std::collections::BTreeSet;

use serde_json::json;

use crate::helpers::{
    assert_problem, error_fields, header, json_body, spawn_app, spawn_app_with, strong_password,
    unique_name,
};

#[tokio::test(flavor = "multi_thread")]
async fn register_returns_201_with_location_and_a_user_view() {
    let app = spawn_app().await;
    let username = unique_name("Alice");
    let email = format!("{username}@Example.com");

    let resp = app
        .post("/auth/register")
        .json(&json!({
            "username": username, "email": email,
            "password": strong_password(), "display_name": "Alice Example"
        }))
        .send()
        .await
        .unwrap();

    let location = header(&resp, "location");
    let body = json_body(resp, 201).await;
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
        "display_name",
        "roles",
        "is_active",
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
    let app = spawn_app().await;
    let user = app.new_user().await;

    let row = app
        .db
        .query_one("SELECT password_hash FROM users WHERE id = $1", &[&user.id])
        .await
        .unwrap();
    let hash: String = row.get(0);
    assert!(
        hash.starts_with("$argon2id$"),
        "a PHC Argon2id string: {hash}"
    );
    assert!(!hash.contains(&user.password));
}

#[tokio::test(flavor = "multi_thread")]
async fn register_with_a_taken_username_or_email_is_409() {
    let app = spawn_app().await;
    let user = app.new_user().await;

    let same_name = app
        .register(
            &user.username.to_uppercase(),
            "fresh@example.com",
            &strong_password(),
        )
        .await;
    assert_problem(same_name, 409, "conflict").await;

    let same_email = app
        .register(
            &unique_name("b"),
            &user.email.to_uppercase(),
            &strong_password(),
        )
        .await;
    assert_problem(same_email, 409, "conflict").await;
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
        .await
        .unwrap();

    let problem = assert_problem(resp, 422, "validation-failed").await;
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
        let problem = assert_problem(resp, 422, "validation-failed").await;
        assert_eq!(
            error_fields(&problem),
            vec!["password"],
            "{password:?}: {problem}"
        );
    }
    let row = app
        .db
        .query_one(
            "SELECT count(*) FROM users WHERE username = $1",
            &[&username],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 0);
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

    let resp = app.register(&username, &email, &long).await;
    json_body(resp, 201).await;

    // Not truncated: a prefix is a different password.
    let prefix: String = long.chars().take(72).collect();
    assert_problem(
        app.login_raw(&username, &prefix).await,
        401,
        "invalid-credentials",
    )
    .await;
    app.login(&username, &long).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn registration_can_be_disabled() {
    let app = spawn_app_with(|vars| {
        vars.insert("ALLOW_REGISTRATION".into(), "false".into());
    })
    .await;

    let resp = app
        .register(&unique_name("e"), "e@example.com", &strong_password())
        .await;

    assert_problem(resp, 403, "registration-disabled").await;
    let count: i64 = app
        .db
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 1, "only the admin exists");
}

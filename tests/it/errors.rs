//! The error contract (SPEC §4): RFC 9457 bodies for routing, media-type, size and syntax
//! errors, a few pinned with inline snapshots so the wire format is visible here, and no
//! internals (SQL, hashes, traces) in any body.

use serde_json::{Value, json};

use crate::helpers::{
    Api as _, Call, Reply, account_json, spawn_app, spawn_app_and_user, spawn_app_set,
    strong_password, unique_name,
};

/// Sends `call` with `body` as `content_type`.
async fn send_as(call: Call, content_type: &str, body: impl Into<reqwest::Body>) -> Reply {
    call.typed_body(content_type, body).send().await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_route_is_a_404_problem() {
    let app = spawn_app().await;

    let resp = app.get("/no/such/route").send().await;

    let body = resp.assert_problem(404, "not-found");
    insta::assert_json_snapshot!(body, @r#"
    {
      "detail": "The requested resource does not exist.",
      "status": 404,
      "title": "Not found",
      "type": "/problems/not-found"
    }
    "#);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_method_is_a_405_problem() {
    let app = spawn_app().await;

    let resp = app.delete("/auth/login").send().await;

    let body = resp.assert_problem(405, "method-not-allowed");
    insta::assert_json_snapshot!(body, @r#"
    {
      "detail": "This method is not supported on this resource.",
      "status": 405,
      "title": "Method not allowed",
      "type": "/problems/method-not-allowed"
    }
    "#);
    assert!(
        resp.header("allow").is_some_and(|a| a.contains("POST")),
        "Allow names the method that works"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_token_is_pinned() {
    let app = spawn_app().await;

    let resp = app.get("/users/me").send().await;

    let body = resp.assert_problem(401, "unauthenticated");
    insta::assert_json_snapshot!(body, @r#"
    {
      "detail": "A bearer access token is required.",
      "status": 401,
      "title": "Authentication required",
      "type": "/problems/unauthenticated"
    }
    "#);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_token_is_pinned() {
    let app = spawn_app().await;

    let resp = app.bearer("not-a-token").me().await;

    let body = resp.assert_problem(401, "invalid-token");
    insta::assert_json_snapshot!(body, @r#"
    {
      "detail": "The access token is invalid, expired or revoked.",
      "status": 401,
      "title": "Invalid access token",
      "type": "/problems/invalid-token"
    }
    "#);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_credentials_are_pinned() {
    let app = spawn_app().await;

    let resp = app.login_raw("nobody", "some-wrong-passphrase-here").await;

    let body = resp.assert_problem(401, "invalid-credentials");
    insta::assert_json_snapshot!(body, @r#"
    {
      "detail": "The login or password is incorrect.",
      "status": 401,
      "title": "Invalid credentials",
      "type": "/problems/invalid-credentials"
    }
    "#);
}

#[tokio::test(flavor = "multi_thread")]
async fn disabled_registration_is_pinned() {
    let app = spawn_app_set(&[("ALLOW_REGISTRATION", "false")]).await;

    let resp = app
        .register("someone", "someone@example.com", &strong_password())
        .await;

    let body = resp.assert_problem(403, "registration-disabled");
    insta::assert_json_snapshot!(body, @r#"
    {
      "detail": "Self-registration is disabled on this server.",
      "status": 403,
      "title": "Registration is disabled",
      "type": "/problems/registration-disabled"
    }
    "#);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bogus_reset_token_is_pinned() {
    let app = spawn_app().await;

    let bogus = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let resp = app.complete_reset(bogus, &strong_password()).await;

    let body = resp.assert_problem(400, "invalid-reset-token");
    insta::assert_json_snapshot!(body, @r#"
    {
      "detail": "The reset token is invalid, expired or already used.",
      "status": 400,
      "title": "Invalid or expired reset token",
      "type": "/problems/invalid-reset-token"
    }
    "#);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_short_username_is_pinned() {
    let app = spawn_app().await;

    let resp = app
        .register("ab", "ab@example.com", &strong_password())
        .await;

    let body = resp.assert_problem(422, "validation-failed");
    insta::assert_json_snapshot!(body, @r#"
    {
      "detail": "1 field(s) are invalid.",
      "errors": [
        {
          "detail": "must be between 3 and 32 characters long",
          "field": "username"
        }
      ],
      "status": 422,
      "title": "Validation failed",
      "type": "/problems/validation-failed"
    }
    "#);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_json_is_400() {
    let app = spawn_app().await;

    for raw in [r#"{"login": "a", "password": "#, "not json at all", ""] {
        let resp = send_as(app.post("/auth/login"), "application/json", raw).await;
        resp.assert_problem(400, "malformed-request");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_content_type_is_415() {
    let app = spawn_app().await;
    let body = json!({"username": unique_name("ct"), "email": "ct@example.com", "password": strong_password()});
    let register = || app.post("/auth/register");

    let plain = send_as(register(), "text/plain", body.to_string()).await;
    let none = register().body(body.to_string()).send().await;
    let xml = send_as(app.as_admin().post("/roles"), "application/xml", "<role/>").await;
    for resp in [plain, none, xml] {
        resp.assert_problem(415, "unsupported-media-type");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_over_64_kib_is_413() {
    let app = spawn_app().await;
    // An account whose display name is `kib` KiB long.
    let account = |kib: usize| {
        let display_name = "x".repeat(kib * 1024);
        account_json(&unique_name("big"), json!({"display_name": display_name}))
    };

    let resp = app.post("/auth/register").json(&account(70)).send().await;

    resp.assert_problem(413, "payload-too-large");

    // Just under the limit is parsed (and then refused for its content, not its size).
    let resp = app.post("/auth/register").json(&account(60)).send().await;
    resp.assert_problem(422, "validation-failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_reveal_no_internals() {
    let (app, user) = spawn_app_and_user().await;
    let secret = "my-secret-passphrase-should-not-echo";

    let conflict = app
        .register(&user.username, "x@example.com", &strong_password())
        .await;
    let weak = app
        .register(&unique_name("w"), "w@example.com", "password")
        .await;
    let login = app.login_raw(&user.username, secret).await;
    let bad_id = app.as_admin().get_user(uuid::Uuid::nil()).await;

    for resp in [conflict, weak, login, bad_id] {
        let text = resp.text;
        let lower = text.to_lowercase();
        for needle in [
            "duplicate key",
            "constraint",
            "sqlstate",
            "users_",
            "select ",
            "insert ",
            "panicked",
            "backtrace",
            "argon2",
            "$argon",
            ".rs:",
            secret,
        ] {
            assert!(!lower.contains(needle), "{needle:?} in {text}");
        }
        let body: Value = serde_json::from_str(&text).unwrap();
        assert!(body["type"].as_str().unwrap().starts_with("/problems/"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_non_uuid_user_id_is_not_a_server_error() {
    let app = spawn_app().await;

    let resp = app.as_admin().get("/users/not-a-uuid").send().await;

    let code = match resp.status {
        400 => "malformed-request",
        404 => "not-found",
        other => panic!("{other}: {resp}"),
    };
    resp.assert_problem(resp.status, code);
}

#[tokio::test(flavor = "multi_thread")]
async fn success_bodies_are_json() {
    let app = spawn_app().await;

    let resp = app.as_admin().me().await;

    assert!(
        resp.header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
    );
    resp.expect_json(200);
}

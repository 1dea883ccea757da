//! The error contract (SPEC §4): RFC 9457 bodies for routing, media-type, size and syntax
//! errors, a few pinned with inline snapshots so the wire format is visible here, and no
//! internals (SQL, hashes, traces) in any body.

use serde_json::{Value, json};

use crate::helpers::{
    assert_problem, header, json_body, spawn_app, spawn_app_with, strong_password, unique_name,
};

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_route_is_a_404_problem() {
    let app = spawn_app().await;

    let resp = app.get("/no/such/route").send().await.unwrap();

    let body = assert_problem(resp, 404, "not-found").await;
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

    let resp = app.delete("/auth/login").send().await.unwrap();

    let allow = header(&resp, "allow");
    let body = assert_problem(resp, 405, "method-not-allowed").await;
    insta::assert_json_snapshot!(body, @r#"
    {
      "detail": "This method is not supported on this resource.",
      "status": 405,
      "title": "Method not allowed",
      "type": "/problems/method-not-allowed"
    }
    "#);
    assert!(
        allow.is_some_and(|a| a.contains("POST")),
        "Allow names the method that works"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_token_is_pinned() {
    let app = spawn_app().await;

    let resp = app.get("/users/me").send().await.unwrap();

    let body = assert_problem(resp, 401, "unauthenticated").await;
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

    let resp = app.me("not-a-token").await;

    let body = assert_problem(resp, 401, "invalid-token").await;
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

    let body = assert_problem(resp, 401, "invalid-credentials").await;
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
    let app = spawn_app_with(|vars| {
        vars.insert("ALLOW_REGISTRATION".into(), "false".into());
    })
    .await;

    let resp = app
        .register("someone", "someone@example.com", &strong_password())
        .await;

    let body = assert_problem(resp, 403, "registration-disabled").await;
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

    let resp = app
        .put("/auth/password/reset/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        .json(&json!({"password": strong_password()}))
        .send()
        .await
        .unwrap();

    let body = assert_problem(resp, 400, "invalid-reset-token").await;
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
        .post("/auth/register")
        .json(&json!({"username": "ab", "email": "ab@example.com", "password": strong_password()}))
        .send()
        .await
        .unwrap();

    let body = assert_problem(resp, 422, "validation-failed").await;
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
        let resp = app
            .post("/auth/login")
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_problem(resp, 400, "malformed-request").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_content_type_is_415() {
    let app = spawn_app().await;
    let body = json!({"username": unique_name("ct"), "email": "ct@example.com", "password": strong_password()});

    let plain = app
        .post("/auth/register")
        .header("content-type", "text/plain")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_problem(plain, 415, "unsupported-media-type").await;

    let none = app
        .post("/auth/register")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_problem(none, 415, "unsupported-media-type").await;

    let xml = app
        .post("/roles")
        .bearer_auth(&app.admin.access)
        .header("content-type", "application/xml")
        .body("<role/>")
        .send()
        .await
        .unwrap();
    assert_problem(xml, 415, "unsupported-media-type").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_over_64_kib_is_413() {
    let app = spawn_app().await;
    let huge = json!({
        "username": unique_name("big"), "email": "big@example.com",
        "password": strong_password(), "display_name": "x".repeat(70 * 1024)
    });

    let resp = app.post("/auth/register").json(&huge).send().await.unwrap();

    assert_problem(resp, 413, "payload-too-large").await;

    // Just under the limit is parsed (and then refused for its content, not its size).
    let near = json!({
        "username": unique_name("big"), "email": "big@example.com",
        "password": strong_password(), "display_name": "x".repeat(60 * 1024)
    });
    let resp = app.post("/auth/register").json(&near).send().await.unwrap();
    assert_problem(resp, 422, "validation-failed").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_reveal_no_internals() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let secret = "my-secret-passphrase-should-not-echo";

    let conflict = app
        .register(&user.username, "x@example.com", &strong_password())
        .await;
    let weak = app
        .post("/auth/register")
        .json(&json!({"username": unique_name("w"), "email": "w@example.com", "password": "password"}))
        .send()
        .await
        .unwrap();
    let login = app.login_raw(&user.username, secret).await;
    let bad_id = app.get_user(&app.admin.access, uuid::Uuid::nil()).await;

    for resp in [conflict, weak, login, bad_id] {
        let text = resp.text().await.unwrap();
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

    let resp = app
        .get("/users/not-a-uuid")
        .bearer_auth(&app.admin.access)
        .send()
        .await
        .unwrap();

    let status = resp.status().as_u16();
    assert!(status == 400 || status == 404, "{status}");
    let code = if status == 400 {
        "malformed-request"
    } else {
        "not-found"
    };
    assert_problem(resp, status, code).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn success_bodies_are_json() {
    let app = spawn_app().await;

    let resp = app.me(&app.admin.access).await;

    assert!(header(&resp, "content-type").is_some_and(|c| c.starts_with("application/json")));
    json_body(resp, 200).await;
}

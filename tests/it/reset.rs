//! Password reset by mail: enumeration-safe requests, the mailed token (link and line), its
//! single use, expiry and uniform refusal, and the revocation that follows a reset.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use crate::helpers::{
    PUBLIC_URL, TestApp, TestUser, assert_invalid_token, assert_problem, error_fields, header,
    other_strong_password, spawn_app, spawn_app_with, strong_password,
};
use crate::smtp::{reset_token_line, reset_token_link};

const MAIL_WAIT: Duration = Duration::from_secs(10);

async fn request_reset(app: &TestApp, email: &str) -> reqwest::Response {
    app.post("/auth/password/reset")
        .json(&json!({"email": email}))
        .send()
        .await
        .unwrap()
}

async fn complete_reset(app: &TestApp, token: &str, password: &str) -> reqwest::Response {
    app.put(&format!("/auth/password/reset/{token}"))
        .json(&json!({"password": password}))
        .send()
        .await
        .unwrap()
}

/// Requests a reset for `user` and returns the token from the mail.
async fn mailed_token(app: &TestApp, user: &TestUser) -> String {
    assert_eq!(request_reset(app, &user.email).await.status(), 202);
    let mail = app
        .smtp
        .wait_for_mail_to(&user.email, MAIL_WAIT)
        .await
        .expect("a reset mail");
    reset_token_line(&mail.data).expect("a token line in the mail")
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_requests_look_the_same_for_known_and_unknown_emails() {
    let app = spawn_app().await;
    let user = app.new_user().await;

    let known = request_reset(&app, &user.email).await;
    let unknown = request_reset(&app, "nobody-at-all@example.com").await;

    assert_eq!(known.status(), 202);
    assert_eq!(unknown.status(), 202);
    assert_eq!(
        header(&known, "content-type"),
        header(&unknown, "content-type")
    );
    let known = known.bytes().await.unwrap();
    let unknown = unknown.bytes().await.unwrap();
    assert_eq!(known, unknown, "identical bodies");

    // Mail goes only to the real account.
    app.smtp
        .wait_for_mail_to(&user.email, MAIL_WAIT)
        .await
        .expect("a mail to the user");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let strays: Vec<_> = app
        .smtp
        .messages()
        .into_iter()
        .filter(|m| m.to.iter().any(|t| t.contains("nobody-at-all")))
        .collect();
    assert!(strays.is_empty(), "no mail for an unknown address");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_mail_carries_a_strong_token_as_a_line_and_a_link() {
    let app = spawn_app().await;
    let user = app.new_user().await;

    assert_eq!(request_reset(&app, &user.email).await.status(), 202);
    let raw = app.smtp.wait_for_message(MAIL_WAIT).await.expect("a mail");

    let mail = app.smtp.messages().pop().unwrap();
    assert_eq!(mail.from, "noreply@app.test");
    assert_eq!(mail.to, vec![user.email.clone()]);
    let line = reset_token_line(&raw).expect("Reset token: line");
    let link = reset_token_link(&raw, PUBLIC_URL).expect("reset link");
    assert_eq!(line, link);
    let bytes = URL_SAFE_NO_PAD.decode(&line).expect("base64url");
    assert!(bytes.len() * 8 >= 128, "at least 128 bits");
    assert_eq!(line.len(), 43);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_is_stored_hashed() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let token = mailed_token(&app, &user).await;

    let rows = app
        .db
        .query(
            "SELECT token_hash FROM password_reset_tokens WHERE user_id = $1",
            &[&user.id],
        )
        .await
        .unwrap();

    assert_eq!(rows.len(), 1);
    let stored: Vec<u8> = rows[0].get(0);
    assert_ne!(stored, token.as_bytes());
    assert_ne!(stored, URL_SAFE_NO_PAD.decode(&token).unwrap());
    assert!(!String::from_utf8_lossy(&stored).contains(&token));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_sets_the_password_and_revokes_everything() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let token = mailed_token(&app, &user).await;
    let new_password = other_strong_password();

    let resp = complete_reset(&app, &token, &new_password).await;

    assert_eq!(resp.status(), 204);
    assert_invalid_token(app.me(&user.access).await).await;
    assert_problem(app.refresh_raw(&user.refresh).await, 401, "invalid-grant").await;
    assert_problem(
        app.login_raw(&user.username, &user.password).await,
        401,
        "invalid-credentials",
    )
    .await;
    app.login(&user.username, &new_password).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_token_works_once() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let token = mailed_token(&app, &user).await;
    assert_eq!(
        complete_reset(&app, &token, &other_strong_password())
            .await
            .status(),
        204
    );
    let final_password = strong_password();

    let again = complete_reset(&app, &token, &final_password).await;

    assert_problem(again, 400, "invalid-reset-token").await;
    assert_problem(
        app.login_raw(&user.username, &final_password).await,
        401,
        "invalid-credentials",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_reset_token_is_refused() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let token = mailed_token(&app, &user).await;
    app.db
        .execute(
            "UPDATE password_reset_tokens SET expires_at = now() - interval '1 second' WHERE user_id = $1",
            &[&user.id],
        )
        .await
        .unwrap();

    let resp = complete_reset(&app, &token, &other_strong_password()).await;

    assert_problem(resp, 400, "invalid-reset-token").await;
    app.login(&user.username, &user.password).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn password_reset_ttl_is_configurable() {
    let app = spawn_app_with(|vars| {
        vars.insert("PASSWORD_RESET_TTL".into(), "1".into());
    })
    .await;
    let user = app.new_user().await;
    let token = mailed_token(&app, &user).await;

    tokio::time::sleep(Duration::from_secs(2)).await;
    let resp = complete_reset(&app, &token, &other_strong_password()).await;

    assert_problem(resp, 400, "invalid-reset-token").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_default_expiry_is_thirty_minutes() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    mailed_token(&app, &user).await;

    let row = app
        .db
        .query_one(
            "SELECT extract(epoch FROM expires_at - created_at)::float8 \
             FROM password_reset_tokens WHERE user_id = $1",
            &[&user.id],
        )
        .await
        .unwrap();

    let secs: f64 = row.get(0);
    assert!((secs - 1800.0).abs() < 5.0, "{secs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bogus_spent_and_expired_tokens_are_refused_uniformly() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let spent = mailed_token(&app, &user).await;
    assert_eq!(
        complete_reset(&app, &spent, &other_strong_password())
            .await
            .status(),
        204
    );
    let expired = {
        let second = mailed_token_again(&app, &user).await;
        app.db
            .execute(
                "UPDATE password_reset_tokens SET expires_at = now() - interval '1 second' \
                 WHERE user_id = $1 AND spent_at IS NULL",
                &[&user.id],
            )
            .await
            .unwrap();
        second
    };
    let bogus = URL_SAFE_NO_PAD.encode([7u8; 32]);

    let mut bodies = Vec::new();
    for token in [&bogus, &spent, &expired, &"short".to_owned()] {
        let resp = complete_reset(&app, token, &strong_password()).await;
        bodies.push(assert_problem(resp, 400, "invalid-reset-token").await);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
}

/// Like [`mailed_token`] for a second mail to the same user.
async fn mailed_token_again(app: &TestApp, user: &TestUser) -> String {
    let before = app.smtp.messages().len();
    assert_eq!(request_reset(app, &user.email).await.status(), 202);
    for _ in 0..500 {
        let messages = app.smtp.messages();
        if messages.len() > before {
            return reset_token_line(&messages[before].data).expect("a token line");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no second reset mail");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_new_password_must_meet_the_policy() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let token = mailed_token(&app, &user).await;

    let resp = complete_reset(&app, &token, "password").await;

    let problem = assert_problem(resp, 422, "validation-failed").await;
    assert_eq!(error_fields(&problem), vec!["password"]);
    app.login(&user.username, &user.password).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_email_is_matched_case_insensitively() {
    let app = spawn_app().await;
    let user = app.new_user().await;

    assert_eq!(
        request_reset(&app, &user.email.to_uppercase())
            .await
            .status(),
        202
    );

    let mail = app
        .smtp
        .wait_for_mail_to(&user.email, MAIL_WAIT)
        .await
        .expect("a reset mail");
    assert!(reset_token_line(&mail.data).is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_is_audited() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let token = mailed_token(&app, &user).await;

    assert_eq!(
        complete_reset(&app, &token, &other_strong_password())
            .await
            .status(),
        204
    );

    assert!(
        app.wait_for_audit("password.reset", user.id)
            .await
            .is_some()
    );
}

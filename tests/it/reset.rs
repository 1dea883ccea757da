//! Password reset by mail: enumeration-safe requests, the mailed token (link and line), its
//! single use, expiry and uniform refusal, and the revocation that follows a reset.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::helpers::{
    Api as _, PUBLIC_URL, TestApp, TestUser, error_fields, other_strong_password,
    spawn_app_and_user, spawn_app_set, strong_password,
};
use crate::smtp::{reset_token_line, reset_token_link};

const MAIL_WAIT: Duration = Duration::from_secs(10);

/// Requests a reset for `user` and returns the token from the mail.
pub(crate) async fn mailed_token(app: &TestApp, user: &TestUser) -> String {
    app.request_reset(&user.email).await.expect_status(202);
    let mail = app
        .smtp
        .wait_for_mail_about(&user.email, crate::smtp::RESET_SUBJECT, MAIL_WAIT)
        .await
        .expect("a reset mail");
    reset_token_line(&mail.data).expect("a token line in the mail")
}

/// Resets `user`'s password with a mailed token (expecting `204`); returns the spent token.
async fn reset_once(app: &TestApp, user: &TestUser) -> String {
    let token = mailed_token(app, user).await;
    let resp = app.complete_reset(&token, &other_strong_password()).await;
    resp.expect_status(204);
    token
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_requests_look_the_same_for_known_and_unknown_emails() {
    let (app, user) = spawn_app_and_user().await;

    let known = app.request_reset(&user.email).await;
    let unknown = app.request_reset("nobody-at-all@example.com").await;

    known.expect_status(202);
    unknown.expect_status(202);
    assert_eq!(known.header("content-type"), unknown.header("content-type"));
    assert_eq!(known.text, unknown.text, "identical bodies");

    // Mail goes only to the real account.
    app.smtp
        .wait_for_mail_about(&user.email, crate::smtp::RESET_SUBJECT, MAIL_WAIT)
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
    let (app, user) = spawn_app_and_user().await;

    app.request_reset(&user.email).await.expect_status(202);
    let mail = app
        .smtp
        .wait_for_mail_about(&user.email, crate::smtp::RESET_SUBJECT, MAIL_WAIT)
        .await
        .expect("a mail");
    let raw = mail.data.clone();
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
    let (app, user) = spawn_app_and_user().await;
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
    let (app, user) = spawn_app_and_user().await;
    let new_password = other_strong_password();
    let token = mailed_token(&app, &user).await;

    let resp = app.complete_reset(&token, &new_password).await;

    resp.expect_status(204);
    app.as_user(&user).me().await.assert_invalid_token();
    let refresh = app.refresh(&user.refresh).await;
    refresh.assert_problem(401, "invalid-grant");
    app.assert_password_is(&user, &new_password).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_token_works_once() {
    let (app, user) = spawn_app_and_user().await;
    let token = reset_once(&app, &user).await;
    let final_password = strong_password();

    let again = app.complete_reset(&token, &final_password).await;

    again.assert_problem(400, "invalid-reset-token");
    let resp = app.login_raw(&user.username, &final_password).await;
    resp.assert_problem(401, "invalid-credentials");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_reset_token_is_refused() {
    let (app, user) = spawn_app_and_user().await;
    let token = mailed_token(&app, &user).await;
    app.db
        .execute(
            "UPDATE password_reset_tokens SET expires_at = now() - interval '1 second' WHERE user_id = $1",
            &[&user.id],
        )
        .await
        .unwrap();

    let resp = app.complete_reset(&token, &other_strong_password()).await;

    resp.assert_problem(400, "invalid-reset-token");
    app.login(&user.username, &user.password).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn password_reset_ttl_is_configurable() {
    let app = spawn_app_set(&[("PASSWORD_RESET_TTL", "1")]).await;
    let user = app.new_user().await;
    let token = mailed_token(&app, &user).await;

    tokio::time::sleep(Duration::from_secs(2)).await;
    let resp = app.complete_reset(&token, &other_strong_password()).await;

    resp.assert_problem(400, "invalid-reset-token");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_default_expiry_is_thirty_minutes() {
    let (app, user) = spawn_app_and_user().await;
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
    let (app, user) = spawn_app_and_user().await;
    let spent = reset_once(&app, &user).await;
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
        let resp = app.complete_reset(token, &strong_password()).await;
        bodies.push(resp.assert_problem(400, "invalid-reset-token"));
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
}

/// Like [`mailed_token`] for a second mail to the same user.
async fn mailed_token_again(app: &TestApp, user: &TestUser) -> String {
    let before = app.smtp.messages().len();
    app.request_reset(&user.email).await.expect_status(202);
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
    let (app, user) = spawn_app_and_user().await;
    let token = mailed_token(&app, &user).await;

    let resp = app.complete_reset(&token, "password").await;

    let problem = resp.assert_problem(422, "validation-failed");
    assert_eq!(error_fields(&problem), vec!["password"]);
    app.login(&user.username, &user.password).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_email_is_matched_case_insensitively() {
    let (app, user) = spawn_app_and_user().await;

    let shouted = user.email.to_uppercase();
    app.request_reset(&shouted).await.expect_status(202);

    let mail = app
        .smtp
        .wait_for_mail_about(&user.email, crate::smtp::RESET_SUBJECT, MAIL_WAIT)
        .await
        .expect("a reset mail");
    assert!(reset_token_line(&mail.data).is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_is_audited() {
    let (app, user) = spawn_app_and_user().await;

    reset_once(&app, &user).await;

    assert!(
        app.wait_for_audit("password.reset", user.id)
            .await
            .is_some()
    );
}

//! E-mail verification (SPEC §6), end to end through the real SMTP sink: the registration
//! mail and `POST /auth/email/verify`, the uniform refusal of bad tokens, the revocation the
//! first verification brings, the addresses an administrator and the bootstrap vouch for,
//! and a password reset as proof of the address.
//!
//! - [`resend`]: `POST /auth/email/verify/resend`, the mail throttle, the notice to an
//!   address's owner on a second registration, `UNVERIFIED_POLICY=block`.
//! - [`change`]: the pending e-mail change and its two confirmations; an administrator's
//!   direct setting.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::helpers::{
    Api, PUBLIC_URL, Reply, TestApp, TestUser, account_json, other_strong_password, spawn_app,
    spawn_app_and_user, unique_name,
};
use crate::jwt::jwt_parts;
use crate::smtp::{Mail, reset_token_line};

mod change;
mod resend;

/// How long a mail may take through the outbox to the sink.
const MAIL_WAIT: Duration = Duration::from_secs(10);
/// How long a test waits before concluding that no mail comes.
const NO_MAIL_WAIT: Duration = Duration::from_millis(600);

/// Every message the sink received for `to` (case-insensitively), oldest first.
fn mails_to(app: &TestApp, to: &str) -> Vec<Mail> {
    app.smtp
        .messages()
        .into_iter()
        .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(to)))
        .collect()
}

/// The `n`th (from 1) message for `to`, waiting for it.
async fn nth_mail_to(app: &TestApp, to: &str, n: usize) -> Mail {
    let deadline = tokio::time::Instant::now() + MAIL_WAIT;
    loop {
        let mails = mails_to(app, to);
        if mails.len() >= n {
            return mails[n - 1].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "mail #{n} to {to}; got {mails:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts that `to` has received exactly `n` messages, after giving a stray one time to come.
async fn assert_mail_count(app: &TestApp, to: &str, n: usize) {
    tokio::time::sleep(NO_MAIL_WAIT).await;
    let mails = mails_to(app, to);
    assert_eq!(mails.len(), n, "mails to {to}: {mails:?}");
}

/// Whether the message's subject line contains `text`.
fn subject_has(mail: &Mail, text: &str) -> bool {
    mail.data
        .lines()
        .any(|l| l.starts_with("Subject:") && l.contains(text))
}

/// The longest token after `marker` in any decoding of the message.
fn token_after(mail: &Mail, marker: &str) -> Option<String> {
    crate::smtp::longest_token_after(&mail.data, marker)
}

/// The token of a verification or change mail, asserted to be the same on its line and in
/// its link.
fn mailed_token(mail: &Mail) -> String {
    let line = token_after(mail, "Verification token:").expect("a token line");
    let link = token_after(mail, &format!("{PUBLIC_URL}/auth/email/verify?token="))
        .expect("a verification link");
    assert_eq!(line, link);
    line
}

/// The token of the `n`th mail to `to`.
async fn nth_token_to(app: &TestApp, to: &str, n: usize) -> String {
    mailed_token(&nth_mail_to(app, to, n).await)
}

/// `POST /auth/email/verify` with `token`.
async fn verify<A: Api + ?Sized>(api: &A, token: &str) -> Reply {
    api.post("/auth/email/verify")
        .json(&json!({"token": token}))
        .send()
        .await
}

/// `POST /auth/email/verify/resend` for `email`.
async fn resend<A: Api + ?Sized>(api: &A, email: &str) -> Reply {
    api.post("/auth/email/verify/resend")
        .json(&json!({"email": email}))
        .send()
        .await
}

/// Verifies `user`'s address with its registration mail and logs in again (the verification
/// revoked the old tokens); returns the user with the new pair.
async fn verified(app: &TestApp, user: TestUser) -> TestUser {
    let token = nth_token_to(app, &user.email, 1).await;
    verify(app, &token).await.expect_status(204);
    app.second_session(&user).await
}

/// The `email_verified` claim of an access token.
fn claim_verified(access: &str) -> Value {
    jwt_parts(access).1["email_verified"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn registration_mails_a_link_that_verifies_the_address() {
    let (app, user) = spawn_app_and_user().await;
    let before = app.as_user(&user).me().await.expect_json(200);
    assert_eq!(before["email_verified"], json!(false));
    assert_eq!(claim_verified(&user.access), json!(false));

    let mail = nth_mail_to(&app, &user.email, 1).await;
    assert!(
        subject_has(&mail, "Confirm your e-mail address"),
        "{mail:?}"
    );
    let token = mailed_token(&mail);
    assert!(URL_SAFE_NO_PAD.decode(&token).expect("base64url").len() * 8 >= 128);
    verify(&app, &token).await.expect_status(204);

    let pair = app.login(&user.username, &user.password).await;
    assert_eq!(claim_verified(&pair.access_token), json!(true));
    let view = app.bearer(&pair.access_token).me().await.expect_json(200);
    assert_eq!(view["email_verified"], json!(true));
    assert!(view.get("pending_email").is_none(), "{view}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_is_stored_hashed_and_expires_after_a_day() {
    let (app, user) = spawn_app_and_user().await;
    let token = nth_token_to(&app, &user.email, 1).await;

    let row = app
        .db
        .query_one(
            "SELECT token_hash, extract(epoch FROM expires_at - created_at)::float8 \
             FROM email_tokens WHERE user_id = $1",
            &[&user.id],
        )
        .await
        .unwrap();

    let stored: Vec<u8> = row.get(0);
    assert!(!String::from_utf8_lossy(&stored).contains(&token));
    assert_ne!(stored, URL_SAFE_NO_PAD.decode(&token).unwrap());
    let ttl: f64 = row.get(1);
    assert!((ttl - 86_400.0).abs() < 5.0, "{ttl}");
}

#[tokio::test(flavor = "multi_thread")]
async fn spent_unknown_expired_and_garbage_tokens_get_one_answer() {
    let (app, user) = spawn_app_and_user().await;
    let spent = nth_token_to(&app, &user.email, 1).await;
    verify(&app, &spent).await.expect_status(204);
    let other = app.new_user().await;
    let expired = nth_token_to(&app, &other.email, 1).await;
    app.db
        .execute(
            "UPDATE email_tokens SET expires_at = now() - interval '1 second' WHERE user_id = $1",
            &[&other.id],
        )
        .await
        .unwrap();
    let unknown = URL_SAFE_NO_PAD.encode([9u8; 32]);
    let too_long = "a".repeat(5000);

    let mut bodies = Vec::new();
    for token in [&spent, &expired, &unknown, &too_long, &"x".to_owned()] {
        let reply = verify(&app, token).await;
        bodies.push(reply.assert_problem(400, "invalid-email-token"));
    }

    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    let view = app.as_admin().get_user(other.id).await.expect_json(200);
    assert_eq!(
        view["email_verified"],
        json!(false),
        "an expired token verifies nothing"
    );
    let missing = app.post("/auth/email/verify").json(&json!({})).send().await;
    missing.assert_problem(422, "validation-failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_verification_revokes_earlier_sessions_and_is_audited() {
    let (app, user) = spawn_app_and_user().await;
    let token = nth_token_to(&app, &user.email, 1).await;

    verify(&app, &token).await.expect_status(204);

    app.as_user(&user).me().await.assert_invalid_token();
    app.refresh(&user.refresh)
        .await
        .assert_problem(401, "invalid-grant");
    assert!(
        app.wait_for_audit("email.verified", user.id)
            .await
            .is_some()
    );
    let fresh = app.second_session(&user).await;
    app.as_user(&fresh).me().await.expect_json(200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_verification_of_a_verified_address_revokes_nothing() {
    let app = spawn_app_set_interval_one().await;
    let user = app.new_user().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    resend(&app, &user.email).await.expect_status(202);
    let second = nth_token_to(&app, &user.email, 2).await;
    let user = verified(&app, user).await;

    verify(&app, &second).await.expect_status(204);

    app.as_user(&user).me().await.expect_json(200);
    assert_eq!(app.audit_count("email.verified", user.id).await, 1);
}

/// An origin whose mail throttle lets a second mail through after a second.
async fn spawn_app_set_interval_one() -> TestApp {
    crate::helpers::spawn_app_set(&[("EMAIL_RESEND_INTERVAL", "1")]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn one_token_sent_twice_at_once_verifies_once() {
    let (app, user) = spawn_app_and_user().await;
    let token = nth_token_to(&app, &user.email, 1).await;

    let (a, b) = tokio::join!(verify(&app, &token), verify(&app, &token));

    let mut statuses = [a.status, b.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [204, 400], "{a} / {b}");
    assert_eq!(app.audit_count("email.verified", user.id).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn administrators_choose_whether_a_new_account_is_verified() {
    let app = spawn_app().await;
    let plain = account_json(&unique_name("p"), json!({}));
    let vouched = account_json(&unique_name("v"), json!({"email_verified": true}));

    let plain_view = app.create_user(&plain).await.expect_json(201);
    let vouched_view = app.create_user(&vouched).await.expect_json(201);

    assert_eq!(plain_view["email_verified"], json!(false));
    assert_eq!(vouched_view["email_verified"], json!(true));
    let plain_email = plain["email"].as_str().unwrap();
    let token = nth_token_to(&app, plain_email, 1).await;
    verify(&app, &token).await.expect_status(204);
    assert_mail_count(&app, vouched["email"].as_str().unwrap(), 0).await;
    let me = app.as_admin().me().await.expect_json(200);
    assert_eq!(me["email_verified"], json!(true), "the bootstrap admin");
}

#[tokio::test(flavor = "multi_thread")]
async fn completing_a_password_reset_verifies_the_address() {
    let (app, user) = spawn_app_and_user().await;
    nth_mail_to(&app, &user.email, 1).await;
    app.request_reset(&user.email).await.expect_status(202);
    let reset = nth_mail_to(&app, &user.email, 2).await;
    let token = reset_token_line(&reset.data).expect("a reset token");

    let new_password = other_strong_password();
    app.complete_reset(&token, &new_password)
        .await
        .expect_status(204);

    let pair = app.login(&user.username, &new_password).await;
    assert_eq!(claim_verified(&pair.access_token), json!(true));
    let view = app.bearer(&pair.access_token).me().await.expect_json(200);
    assert_eq!(view["email_verified"], json!(true));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_mailed_to_an_address_the_account_has_left_verifies_nothing() {
    let (app, user) = spawn_app_and_user().await;
    nth_mail_to(&app, &user.email, 1).await;
    app.request_reset(&user.email).await.expect_status(202);
    let reset = nth_mail_to(&app, &user.email, 2).await;
    let token = reset_token_line(&reset.data).expect("a reset token");
    // The address changed after the link was mailed (the race of a reset request with an
    // e-mail change that a token of its own would otherwise survive).
    let moved = format!("moved-{}", user.email);
    app.db
        .execute(
            "UPDATE users SET email = $1 WHERE id = $2",
            &[&moved, &user.id],
        )
        .await
        .unwrap();

    let new_password = other_strong_password();
    app.complete_reset(&token, &new_password)
        .await
        .expect_status(204);

    let pair = app.login(&user.username, &new_password).await;
    assert_eq!(claim_verified(&pair.access_token), json!(false));
}

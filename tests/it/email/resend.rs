//! `POST /auth/email/verify/resend` (one answer for every address, one mail per account per
//! interval), the notice to an address's owner when someone registers with it again, and
//! `UNVERIFIED_POLICY=block` at login.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{Api as _, Credentials, spawn_app, spawn_app_set};

use super::{assert_mail_count, mails_to, nth_mail_to, nth_token_to, resend, subject_has, verify};

#[tokio::test(flavor = "multi_thread")]
async fn resend_answers_alike_for_unknown_verified_and_unverified_addresses() {
    let app = spawn_app().await;
    let user = app.new_user().await;

    let unverified = resend(&app, &user.email).await;
    let unknown = resend(&app, "nobody-here@example.com").await;
    let verified = resend(&app, &app.admin.email).await;

    for reply in [&unverified, &unknown, &verified] {
        reply.expect_status(202);
        assert_eq!(reply.text, unverified.text, "identical bodies");
        assert_eq!(
            reply.header("content-type"),
            unverified.header("content-type")
        );
    }
    assert_mail_count(&app, "nobody-here@example.com", 0).await;
    assert_mail_count(&app, &app.admin.email, 0).await;
    let invalid = resend(&app, "not an address").await;
    invalid.assert_problem(422, "validation-failed");
    let missing = app
        .post("/auth/email/verify/resend")
        .json(&json!({}))
        .send()
        .await;
    missing.assert_problem(422, "validation-failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resend_within_the_interval_sends_nothing() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    nth_mail_to(&app, &user.email, 1).await;

    // The registration mail took this minute's slot.
    resend(&app, &user.email).await.expect_status(202);
    resend(&app, &user.email).await.expect_status(202);

    assert_mail_count(&app, &user.email, 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn after_the_interval_a_resend_mails_a_working_link() {
    let app = spawn_app_set(&[("EMAIL_RESEND_INTERVAL", "1")]).await;
    let user = app.new_user().await;
    nth_mail_to(&app, &user.email, 1).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    resend(&app, &user.email).await.expect_status(202);

    let mail = nth_mail_to(&app, &user.email, 2).await;
    assert!(
        subject_has(&mail, "Confirm your e-mail address"),
        "{mail:?}"
    );
    let token = super::mailed_token(&mail);
    verify(&app, &token).await.expect_status(204);
    let view = app.as_admin().get_user(user.id).await.expect_json(200);
    assert_eq!(view["email_verified"], json!(true));
}

#[tokio::test(flavor = "multi_thread")]
async fn registering_a_taken_address_answers_409_and_tells_its_owner() {
    let app = spawn_app_set(&[("EMAIL_RESEND_INTERVAL", "1")]).await;
    let owner = app.new_user().await;
    nth_mail_to(&app, &owner.email, 1).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let intruder = Credentials::fresh("i");

    let taken = app
        .register(
            &intruder.username,
            &owner.email.to_uppercase(),
            &intruder.password,
        )
        .await;

    taken.assert_problem(409, "conflict");
    let notice = nth_mail_to(&app, &owner.email, 2).await;
    assert!(
        subject_has(&notice, "Someone tried to register"),
        "{notice:?}"
    );
    assert!(super::token_after(&notice, "Verification token:").is_none());
    // The notice shares the throttle: a second attempt at once mails nothing.
    let again = Credentials::fresh("i");
    app.register(&again.username, &owner.email, &again.password)
        .await
        .assert_problem(409, "conflict");
    assert_mail_count(&app, &owner.email, 2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_block_policy_refuses_unverified_logins_after_the_password_check() {
    let app = spawn_app_set(&[("UNVERIFIED_POLICY", "block")]).await;
    let account = Credentials::fresh("b");
    app.register(&account.username, &account.email, &account.password)
        .await
        .expect_status(201);

    let wrong = app
        .login_raw(&account.username, "wrong-passphrase-for-sure-here")
        .await;
    let unknown = app
        .login_raw("nobody-at-all", "wrong-passphrase-for-sure-here")
        .await;
    let right = app.login_raw(&account.username, &account.password).await;

    let wrong = wrong.assert_problem(401, "invalid-credentials");
    assert_eq!(wrong, unknown.assert_problem(401, "invalid-credentials"));
    right.assert_problem(403, "email-unverified");
    let token = nth_token_to(&app, &account.email, 1).await;
    verify(&app, &token).await.expect_status(204);
    app.login(&account.username, &account.password).await;
    assert!(mails_to(&app, &account.email).len() == 1);
}

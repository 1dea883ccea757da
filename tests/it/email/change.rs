//! Changing the e-mail address: a self-service change waits in `pending_email` until both
//! addresses confirm (only the new one when the current one was never verified), keeps the
//! old address working meanwhile and the sessions afterwards; racing confirmations commit
//! once. An administrator holding `users:update` sets `email` and `email_verified` directly.

use serde_json::{Value, json};

use crate::helpers::{Api as _, TestApp, TestUser, error_fields, spawn_app, unique_name};

use super::{
    assert_mail_count, mails_to, nth_mail_to, nth_token_to, subject_has, verified, verify,
};

/// A fresh address nobody has.
fn new_address() -> String {
    format!("{}@example.org", unique_name("n"))
}

/// `user` asks (with their password) to move to `to`; returns the answer.
async fn request_change(app: &TestApp, user: &TestUser, to: &str) -> crate::helpers::Reply {
    let patch = json!({"email": to, "current_password": user.password});
    app.as_user(user).patch_user(user.id, &patch).await
}

/// A registered user whose address is verified, logged in after the verification.
async fn verified_user(app: &TestApp) -> TestUser {
    let user = app.new_user().await;
    verified(app, user).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_waits_for_both_addresses_then_commits_and_keeps_the_sessions() {
    let app = spawn_app().await;
    let user = verified_user(&app).await;
    let to = new_address();

    let view = request_change(&app, &user, &to).await.expect_json(200);

    assert_eq!(view["email"], json!(user.email));
    assert_eq!(view["pending_email"], json!(to));
    assert_eq!(
        view["pending_email_confirmations"],
        json!({"current": false, "new": false})
    );
    let new_side = nth_mail_to(&app, &to, 1).await;
    assert!(subject_has(&new_side, "Confirm your new e-mail address"));
    let current_side = nth_mail_to(&app, &user.email, 2).await;
    assert!(subject_has(&current_side, "Confirm the change"));
    assert!(
        app.wait_for_audit("email.change_requested", user.id)
            .await
            .is_some()
    );
    // Until committed, the old address logs in.
    app.login(&user.email, &user.password).await;

    verify(&app, &super::mailed_token(&new_side))
        .await
        .expect_status(204);
    let half = app.as_user(&user).me().await.expect_json(200);
    assert_eq!(half["email"], json!(user.email));
    assert_eq!(
        half["pending_email_confirmations"],
        json!({"current": false, "new": true})
    );
    verify(&app, &super::mailed_token(&current_side))
        .await
        .expect_status(204);

    let done = app.as_user(&user).me().await.expect_json(200);
    assert_eq!(done["email"], json!(to), "the old access token still works");
    assert_eq!(done["email_verified"], json!(true));
    assert!(done.get("pending_email").is_none(), "{done}");
    assert!(done.get("pending_email_confirmations").is_none(), "{done}");
    let notice = nth_mail_to(&app, &user.email, 3).await;
    assert!(
        subject_has(&notice, "Your e-mail address was changed"),
        "{notice:?}"
    );
    app.refresh(&user.refresh).await.expect_status(200);
    app.login(&to, &user.password).await;
    app.login_raw(&user.email, &user.password)
        .await
        .assert_problem(401, "invalid-credentials");
    let details = audit_details(&app, "email.changed", user.id).await;
    assert_eq!(details, json!({"from": user.email, "to": to}));
}

/// The details of the newest audit row `action` on `target`.
async fn audit_details(app: &TestApp, action: &str, target: uuid::Uuid) -> Value {
    app.wait_for_audit(action, target)
        .await
        .expect("an audit row");
    app.db
        .query_one(
            "SELECT details FROM audit_log WHERE action = $1 AND target_id = $2 \
             ORDER BY id DESC LIMIT 1",
            &[&action, &target],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unverified_address_needs_only_the_new_side() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    nth_mail_to(&app, &user.email, 1).await;
    let to = new_address();

    let view = request_change(&app, &user, &to).await.expect_json(200);

    assert_eq!(
        view["pending_email_confirmations"],
        json!({"current": true, "new": false})
    );
    let token = nth_token_to(&app, &to, 1).await;
    assert_mail_count(&app, &user.email, 1).await;
    verify(&app, &token).await.expect_status(204);
    let done = app.as_user(&user).me().await.expect_json(200);
    assert_eq!(done["email"], json!(to));
    assert_eq!(done["email_verified"], json!(true));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_needs_the_current_password_and_a_free_address() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let other = app.new_user().await;
    let api = app.as_user(&user);

    let missing = api
        .patch_user(user.id, &json!({"email": new_address()}))
        .await;
    let wrong = json!({"email": new_address(), "current_password": "not-my-passphrase-at-all"});
    let wrong = api.patch_user(user.id, &wrong).await;
    let taken = request_change(&app, &user, &other.email.to_uppercase()).await;

    let missing = missing.assert_problem(422, "validation-failed");
    assert_eq!(error_fields(&missing), vec!["current_password"]);
    let wrong = wrong.assert_problem(403, "forbidden");
    assert!(
        wrong["detail"]
            .as_str()
            .unwrap()
            .contains("current password"),
        "{wrong}"
    );
    taken.assert_problem(409, "conflict");
    let view = api.me().await.expect_json(200);
    assert!(view.get("pending_email").is_none(), "{view}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_request_replaces_the_pending_change() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let (first, second) = (new_address(), new_address());
    request_change(&app, &user, &first).await.expect_json(200);
    let stale = nth_token_to(&app, &first, 1).await;

    let view = request_change(&app, &user, &second).await.expect_json(200);

    assert_eq!(view["pending_email"], json!(second));
    verify(&app, &stale)
        .await
        .assert_problem(400, "invalid-email-token");
    verify(&app, &nth_token_to(&app, &second, 1).await)
        .await
        .expect_status(204);
    let done = app.as_user(&user).me().await.expect_json(200);
    assert_eq!(done["email"], json!(second));
}

#[tokio::test(flavor = "multi_thread")]
async fn racing_confirmations_commit_the_change_once() {
    let app = spawn_app().await;
    let user = verified_user(&app).await;
    let to = new_address();
    request_change(&app, &user, &to).await.expect_json(200);
    let new_side = nth_token_to(&app, &to, 1).await;
    let current_side = nth_token_to(&app, &user.email, 2).await;

    let (a, b) = tokio::join!(verify(&app, &new_side), verify(&app, &current_side));

    a.expect_status(204);
    b.expect_status(204);
    let done = app.as_user(&user).me().await.expect_json(200);
    assert_eq!(done["email"], json!(to));
    assert_eq!(app.audit_count("email.changed", user.id).await, 1);
    nth_mail_to(&app, &user.email, 3).await;
    assert_mail_count(&app, &user.email, 3).await;
    let notices = mails_to(&app, &user.email)
        .iter()
        .filter(|m| subject_has(m, "Your e-mail address was changed"))
        .count();
    assert_eq!(notices, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_token_sent_twice_at_once_counts_once() {
    let app = spawn_app().await;
    let user = verified_user(&app).await;
    let to = new_address();
    request_change(&app, &user, &to).await.expect_json(200);
    let token = nth_token_to(&app, &to, 1).await;

    let (a, b) = tokio::join!(verify(&app, &token), verify(&app, &token));

    let mut statuses = [a.status, b.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [204, 400], "{a} / {b}");
    let view = app.as_user(&user).me().await.expect_json(200);
    assert_eq!(
        view["pending_email"],
        json!(to),
        "still waiting for the current side"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_administrator_sets_the_address_and_its_verification_directly() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let to = new_address();

    let moved = app
        .as_admin()
        .patch_user(user.id, &json!({"email": to}))
        .await;

    let moved = moved.expect_json(200);
    assert_eq!(moved["email"], json!(to));
    assert_eq!(moved["email_verified"], json!(false));
    assert!(moved.get("pending_email").is_none(), "{moved}");
    let token = nth_token_to(&app, &to, 1).await;
    let details = audit_details(&app, "email.set_by_admin", user.id).await;
    assert_eq!(
        details,
        json!({"from": user.email, "to": to, "verified": false})
    );
    let vouched = app
        .as_admin()
        .patch_user(user.id, &json!({"email_verified": true}))
        .await
        .expect_json(200);
    assert_eq!(vouched["email_verified"], json!(true));
    let direct = new_address();
    let both = json!({"email": direct, "email_verified": true});
    let both = app
        .as_admin()
        .patch_user(user.id, &both)
        .await
        .expect_json(200);
    assert_eq!(
        (both["email"].clone(), both["email_verified"].clone()),
        (json!(direct), json!(true))
    );
    assert_mail_count(&app, &direct, 0).await;
    verify(&app, &token)
        .await
        .assert_problem(400, "invalid-email-token");
}

#[tokio::test(flavor = "multi_thread")]
async fn only_administrators_set_email_verified_and_pending_fields_are_read_only() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let api = app.as_user(&user);

    let vouch = api
        .patch_user(user.id, &json!({"email_verified": true}))
        .await;
    let pending = api
        .patch_user(user.id, &json!({"pending_email": new_address()}))
        .await;

    vouch.assert_problem(403, "forbidden");
    pending.assert_problem(403, "forbidden");
    // A PUT may echo the view, pending change included.
    let view = request_change(&app, &user, &new_address())
        .await
        .expect_json(200);
    let mut echo = view.clone();
    echo["display_name"] = json!("Echo");
    let replaced = api
        .put(&format!("/users/{}", user.id))
        .json(&echo)
        .send()
        .await;
    let replaced = replaced.expect_json(200);
    assert_eq!(replaced["pending_email"], view["pending_email"]);
    assert_eq!(replaced["display_name"], json!("Echo"));
}

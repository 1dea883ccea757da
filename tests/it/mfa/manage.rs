//! Managing a second factor (SPEC §8): disabling it with a code or a recovery code, a new set of
//! recovery codes, the admin reset, and a password reset that keeps it.

use std::time::Duration;

use serde_json::json;

use super::{amr_of, challenge, code, enrol, verify, wrong_code};
use crate::helpers::{Api as _, TestUser, spawn_app, spawn_app_and_user};

#[tokio::test(flavor = "multi_thread")]
async fn disabling_needs_a_code_or_a_recovery_code() {
    let (app, user) = spawn_app_and_user().await;
    let enrolled = enrol(&app, &user).await;
    let out = app
        .as_user(&user)
        .delete("/users/me/mfa")
        .json(&json!({"code": wrong_code(&enrolled.secret)}))
        .send()
        .await;
    out.assert_problem(403, "invalid-mfa-code");
    let out = app
        .as_user(&user)
        .delete("/users/me/mfa")
        .json(&json!({"recovery_code": enrolled.recovery_codes[0]}))
        .send()
        .await;
    assert_eq!(out.status, 204, "{out}");
    assert_eq!(
        app.as_user(&user).me().await.expect_json(200)["mfa_enabled"],
        false
    );
    app.login(&user.username, &user.password).await;
    assert_eq!(app.audit_count("mfa.disabled", user.id).await, 1);
    let none = app
        .count(
            "SELECT count(*) FROM mfa_recovery_codes WHERE user_id = $1",
            &[&user.id],
        )
        .await;
    assert_eq!(none, 0);
    let out = app
        .as_user(&user)
        .delete("/users/me/mfa")
        .json(&json!({"code": "123456"}))
        .send()
        .await;
    out.assert_problem(404, "not-found");
}

#[tokio::test(flavor = "multi_thread")]
async fn new_recovery_codes_replace_the_old_set() {
    let (app, user) = spawn_app_and_user().await;
    let enrolled = enrol(&app, &user).await;
    let fresh = app
        .as_user(&user)
        .post("/users/me/mfa/recovery-codes")
        .json(&json!({"code": code(&enrolled.secret, 0)}))
        .send()
        .await
        .expect_json(200);
    let fresh: Vec<String> = fresh["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fresh.len(), 10);
    let token = challenge(&app, &user).await;
    verify(
        &app,
        &token,
        json!({"recovery_code": enrolled.recovery_codes[0]}),
    )
    .await
    .assert_problem(403, "invalid-mfa-code");
    verify(&app, &token, json!({"recovery_code": fresh[0]}))
        .await
        .expect_json(200);
    assert_eq!(
        app.audit_count("mfa.recovery_codes_regenerated", user.id)
            .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_reset_removes_the_factor_ends_the_sessions_and_mails_the_user() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let enrolled = enrol(&app, &user).await;
    let outsider = app.new_user().await;
    let path = format!("/users/{}/mfa", user.id);
    app.as_user(&outsider)
        .delete(&path)
        .send()
        .await
        .assert_problem(404, "not-found");

    let out = app.as_admin().delete(&path).send().await;
    assert_eq!(out.status, 204, "{out}");
    app.as_user(&enrolled.user)
        .me()
        .await
        .assert_invalid_token();
    let mail = app
        .smtp
        .wait_for_mail_about(
            &user.email,
            "Your second factor was removed",
            Duration::from_secs(10),
        )
        .await;
    assert!(mail.is_some(), "the user is mailed");
    let audit = app
        .wait_for_audit("mfa.reset", user.id)
        .await
        .expect("audited");
    assert_eq!(audit.actor, Some(app.admin.id));
    // The password alone logs in again; a second reset finds nothing to remove.
    let pair = app.login(&user.username, &user.password).await;
    assert_eq!(amr_of(&pair.access_token), json!(["pwd"]));
    app.as_admin()
        .delete(&path)
        .send()
        .await
        .assert_problem(404, "not-found");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_reset_keeps_mfa() {
    let (app, user) = spawn_app_and_user().await;
    let enrolled = enrol(&app, &user).await;
    let token = crate::reset::mailed_token(&app, &user).await;
    let password = crate::helpers::other_strong_password();
    app.complete_reset(&token, &password)
        .await
        .expect_status(204);
    let user = TestUser { password, ..user };
    let mfa_token = challenge(&app, &user).await;
    verify(&app, &mfa_token, json!({"code": code(&enrolled.secret, 0)}))
        .await
        .expect_json(200);
}

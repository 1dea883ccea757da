//! Second factors (SPEC §8) end to end: enrolment, the login step-up, replay of an accepted
//! code (also concurrently), recovery codes, disabling, new codes, the admin reset, a password
//! reset keeping MFA, and the sealed storage. [`guessing`]: the limits on wrong codes and the
//! uniform wrong-password answer. [`manage`]: disabling, new recovery codes, the admin reset
//! and a password reset. [`roles`]: `MFA_REQUIRED_ROLES`.
//!
//! Codes are computed here from the enrolment's secret with `totp-rs`. One factor accepts each
//! time step once, so a test that needs two codes uses the previous step's code first and the
//! current one after ([`fresh_step`] keeps both valid for the test's few requests).

mod guessing;
mod manage;
mod roles;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use totp_rs::{Algorithm, Secret, TOTP};
use uuid::Uuid;

use crate::helpers::{Api, Reply, TestUser, spawn_app_and_user};
use crate::jwt::jwt_parts;
use crate::sessions::{ids, my_sessions, sid_of};

/// A user whose second factor is on.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub user: TestUser,
    pub secret: Vec<u8>,
    pub recovery_codes: Vec<String>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Waits until at least 8 seconds are left in the current 30-second step, so a code of this
/// step and of the previous one both stay valid for the next few requests.
pub async fn fresh_step() {
    let into = unix_now() % 30;
    if into >= 22 {
        tokio::time::sleep(Duration::from_secs(30 - into) + Duration::from_millis(200)).await;
    }
}

/// The code of `secret` for the step `offset` steps from now (0: current, -1: previous).
pub fn code(secret: &[u8], offset: i64) -> String {
    let totp = TOTP::new_unchecked(
        Algorithm::SHA1,
        6,
        0,
        30,
        secret.to_vec(),
        None,
        String::new(),
    );
    let step = (unix_now() / 30) as i64 + offset;
    totp.generate(step as u64 * 30)
}

/// A 6-digit code that is neither the current nor the previous one.
pub fn wrong_code(secret: &[u8]) -> String {
    let right = [code(secret, 0), code(secret, -1)];
    (0..1000)
        .map(|n| format!("{:06}", (n * 7919 + 123_457) % 1_000_000))
        .find(|c| !right.contains(c))
        .unwrap()
}

/// `POST /users/me/mfa/totp` as `user` with their password, expecting `201`.
pub async fn start_enrolment(api: &impl Api, user: &TestUser) -> Value {
    api.as_user(user)
        .post("/users/me/mfa/totp")
        .json(&json!({"current_password": user.password}))
        .send()
        .await
        .expect_json(201)
}

fn secret_of(pending: &Value) -> Vec<u8> {
    let b32 = pending["secret"].as_str().expect("a secret").to_owned();
    Secret::Encoded(b32).to_bytes().expect("base32")
}

/// Enrols and confirms a TOTP factor for `user` (with the previous step's code, so the
/// current one is still free for a login).
pub async fn enrol(api: &impl Api, user: &TestUser) -> Enrolled {
    fresh_step().await;
    let pending = start_enrolment(api, user).await;
    let secret = secret_of(&pending);
    let confirmed = api
        .as_user(user)
        .post(&format!(
            "/users/me/mfa/totp/{}/confirm",
            pending["id"].as_str().unwrap()
        ))
        .json(&json!({"code": code(&secret, -1)}))
        .send()
        .await
        .expect_json(200);
    let recovery_codes = confirmed["recovery_codes"]
        .as_array()
        .expect("recovery codes")
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    Enrolled {
        user: user.clone(),
        secret,
        recovery_codes,
    }
}

/// Logs `user` in with the right password, expecting the step-up; returns its `mfa_token`.
pub async fn challenge(api: &impl Api, user: &TestUser) -> String {
    let out = api.login_raw(&user.username, &user.password).await;
    let problem = out.assert_problem(401, "mfa-required");
    assert_eq!(
        problem["methods"],
        json!(["totp", "recovery_code"]),
        "{out}"
    );
    assert!(problem.get("access_token").is_none());
    problem["mfa_token"]
        .as_str()
        .expect("an mfa_token")
        .to_owned()
}

/// The OAuth2 password form login of `user`.
pub async fn form_login(api: &impl Api, user: &TestUser) -> Reply {
    api.post("/auth/login")
        .form(&[
            ("grant_type", "password"),
            ("username", user.username.as_str()),
            ("password", user.password.as_str()),
        ])
        .send()
        .await
}

/// `POST /auth/mfa/verify`.
pub async fn verify(api: &impl Api, mfa_token: &str, proof: Value) -> Reply {
    let mut body = proof;
    body["mfa_token"] = json!(mfa_token);
    api.post("/auth/mfa/verify").json(&body).send().await
}

/// The `amr` of an access token.
pub fn amr_of(access: &str) -> Value {
    jwt_parts(access).1["amr"].clone()
}

/// `user` with the tokens of a verified step-up.
pub fn with_tokens(user: &TestUser, tokens: &Value) -> TestUser {
    TestUser {
        access: tokens["access_token"].as_str().unwrap().to_owned(),
        refresh: tokens["refresh_token"].as_str().unwrap().to_owned(),
        ..user.clone()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn enrol_then_log_in_with_the_step_up() {
    let (app, user) = spawn_app_and_user().await;
    let other = app.second_session(&user).await;
    assert_eq!(
        app.as_user(&user).me().await.expect_json(200)["mfa_enabled"],
        false
    );

    fresh_step().await;
    let pending = start_enrolment(&app, &user).await;
    assert_eq!(pending["expires_in"], 600);
    assert_eq!(
        pending["secret"].as_str().unwrap().len(),
        32,
        "160 bits of base32"
    );
    let uri = pending["otpauth_uri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/") && uri.contains(&user.username),
        "{uri}"
    );
    // Pending: not on yet, and the login still gives tokens.
    assert_eq!(
        app.as_user(&user).me().await.expect_json(200)["mfa_enabled"],
        false
    );

    let secret = secret_of(&pending);
    let path = format!(
        "/users/me/mfa/totp/{}/confirm",
        pending["id"].as_str().unwrap()
    );
    let wrong = app
        .as_user(&user)
        .post(&path)
        .json(&json!({"code": wrong_code(&secret)}))
        .send()
        .await;
    wrong.assert_problem(403, "invalid-mfa-code");
    let confirmed = app
        .as_user(&user)
        .post(&path)
        .json(&json!({"code": code(&secret, -1)}))
        .send()
        .await
        .expect_json(200);
    let codes = confirmed["recovery_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    // Confirming ended the other session, and kept this one.
    app.as_user(&other).me().await.assert_invalid_token();
    let me = app.as_user(&user).me().await.expect_json(200);
    assert_eq!(me["mfa_enabled"], true);
    assert_eq!(
        ids(&my_sessions(&app, &user).await),
        vec![sid_of(&user.access)]
    );
    // A second confirmation of the same factor finds nothing pending.
    let again = app
        .as_user(&user)
        .post(&path)
        .json(&json!({"code": code(&secret, 0)}))
        .send()
        .await;
    again.assert_problem(409, "conflict");

    let token = challenge(&app, &user).await;
    let tokens = verify(&app, &token, json!({"code": code(&secret, 0)}))
        .await
        .expect_json(200);
    let verified = with_tokens(&user, &tokens);
    assert_eq!(amr_of(&verified.access), json!(["pwd", "otp"]));
    let sessions = my_sessions(&app, &verified).await;
    let newest = sessions["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == json!(sid_of(&verified.access).to_string()))
        .expect("the new session")
        .clone();
    assert_eq!(newest["mfa"], true, "{sessions}");
    // Refreshed tokens keep how the login was proved.
    let refreshed = app.refresh(&verified.refresh).await.expect_json(200);
    assert_eq!(
        amr_of(refreshed["access_token"].as_str().unwrap()),
        json!(["pwd", "otp"])
    );
    // The mfa_token was single-use.
    verify(&app, &token, json!({"code": code(&secret, 0)}))
        .await
        .assert_problem(401, "invalid-mfa-token");

    for action in [
        "mfa.enrolment_started",
        "mfa.enabled",
        "login.mfa_required",
        "mfa.code_rejected",
    ] {
        assert!(app.audit_count(action, user.id).await >= 1, "{action}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_secret_is_sealed_and_recovery_codes_are_keyed_hashes() {
    let (app, user) = spawn_app_and_user().await;
    let enrolled = enrol(&app, &user).await;
    let row = app
        .db
        .query_one(
            "SELECT key_id, sealed_secret FROM mfa_factors WHERE user_id = $1",
            &[&user.id],
        )
        .await
        .unwrap();
    let sealed: Vec<u8> = row.get(1);
    assert!(
        !sealed
            .windows(enrolled.secret.len())
            .any(|w| w == enrolled.secret.as_slice()),
        "the secret is not stored in the clear"
    );
    assert!(
        sealed.len() >= enrolled.secret.len() + 24 + 16,
        "nonce, ciphertext and tag"
    );
    let hashes: Vec<Vec<u8>> = app
        .db
        .query(
            "SELECT code_hash FROM mfa_recovery_codes WHERE user_id = $1",
            &[&user.id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(hashes.len(), 10);
    for code in &enrolled.recovery_codes {
        let plain = code.replace('-', "");
        let unkeyed = <sha2::Sha256 as sha2::Digest>::digest(plain.as_bytes()).to_vec();
        assert!(!hashes.contains(&plain.into_bytes()));
        assert!(
            !hashes.contains(&unkeyed),
            "a keyed hash, not a bare SHA-256"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_accepted_code_is_refused_afterwards() {
    let (app, user) = spawn_app_and_user().await;
    let enrolled = enrol(&app, &user).await;
    // The confirmation accepted the previous step: neither it nor anything older passes now.
    let token = challenge(&app, &user).await;
    verify(&app, &token, json!({"code": code(&enrolled.secret, -1)}))
        .await
        .assert_problem(403, "invalid-mfa-code");
    let current = code(&enrolled.secret, 0);
    verify(&app, &token, json!({"code": current}))
        .await
        .expect_json(200);
    let token = challenge(&app, &user).await;
    verify(&app, &token, json!({"code": current}))
        .await
        .assert_problem(403, "invalid-mfa-code");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_simultaneous_verifies_of_one_code_give_exactly_one_200() {
    let (app, user) = spawn_app_and_user().await;
    let enrolled = enrol(&app, &user).await;
    let current = code(&enrolled.secret, 0);
    // Two logins, one code each way at the same moment; then one token twice.
    let (a, b) = (challenge(&app, &user).await, challenge(&app, &user).await);
    let (ra, rb) = tokio::join!(
        verify(&app, &a, json!({"code": current})),
        verify(&app, &b, json!({"code": current}))
    );
    let mut statuses = [ra.status, rb.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 403], "{ra}\n{rb}");

    let rc = enrolled.recovery_codes[0].clone();
    let c = challenge(&app, &user).await;
    let (r1, r2) = tokio::join!(
        verify(&app, &c, json!({"recovery_code": rc})),
        verify(&app, &c, json!({"recovery_code": rc}))
    );
    let mut statuses = [r1.status, r2.status];
    statuses.sort_unstable();
    assert_eq!(statuses[0], 200, "{r1}\n{r2}");
    assert!([401, 403].contains(&statuses[1]), "{r1}\n{r2}");
    let sessions = app
        .count(
            "SELECT count(*) FROM sessions WHERE user_id = $1 AND mfa",
            &[&user.id],
        )
        .await;
    assert_eq!(sessions, 2, "one session per accepted proof");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recovery_code_works_once_in_any_case_and_spacing() {
    let (app, user) = spawn_app_and_user().await;
    let enrolled = enrol(&app, &user).await;
    let rc = &enrolled.recovery_codes[3];
    let typed = rc.to_lowercase().replace('-', " ");
    let token = challenge(&app, &user).await;
    let tokens = verify(&app, &token, json!({"recovery_code": typed}))
        .await
        .expect_json(200);
    assert_eq!(
        amr_of(tokens["access_token"].as_str().unwrap()),
        json!(["pwd", "rc"])
    );
    let token = challenge(&app, &user).await;
    verify(&app, &token, json!({"recovery_code": rc}))
        .await
        .assert_problem(403, "invalid-mfa-code");
    // Another code of the set still works.
    verify(
        &app,
        &token,
        json!({"recovery_code": enrolled.recovery_codes[4]}),
    )
    .await
    .expect_json(200);
    // Neither or both of code and recovery_code: a validation problem.
    let token = challenge(&app, &user).await;
    verify(&app, &token, json!({}))
        .await
        .assert_problem(422, "validation-failed");
    verify(&app, &token, json!({"code": "123456", "recovery_code": rc}))
        .await
        .assert_problem(422, "validation-failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_oauth2_form_path_answers_the_challenge_as_an_rfc6749_error() {
    let (app, user) = spawn_app_and_user().await;
    let enrolled = enrol(&app, &user).await;
    let out = form_login(&app, &user).await;
    out.assert_oauth_error(401, "mfa-required", "mfa_required");
    assert_eq!(out.header("cache-control").as_deref(), Some("no-store"));
    let body = out.json();
    assert_eq!(body["methods"], json!(["totp", "recovery_code"]), "{body}");
    let token = body["mfa_token"].as_str().unwrap();
    verify(&app, token, json!({"code": code(&enrolled.secret, 0)}))
        .await
        .expect_json(200);
}

#[tokio::test(flavor = "multi_thread")]
async fn enrolment_needs_the_password_and_no_factor_yet() {
    let (app, user) = spawn_app_and_user().await;
    let out = app
        .as_user(&user)
        .post("/users/me/mfa/totp")
        .json(&json!({"current_password": "not the password"}))
        .send()
        .await;
    out.assert_problem(403, "forbidden");
    let out = app
        .as_user(&user)
        .post("/users/me/mfa/totp")
        .json(&json!({}))
        .send()
        .await;
    out.assert_problem(422, "validation-failed");
    let unknown = format!("/users/me/mfa/totp/{}/confirm", Uuid::now_v7());
    let out = app
        .as_user(&user)
        .post(&unknown)
        .json(&json!({"code": "123456"}))
        .send()
        .await;
    out.assert_problem(404, "not-found");
    enrol(&app, &user).await;
    let out = app
        .as_user(&user)
        .post("/users/me/mfa/totp")
        .json(&json!({"current_password": user.password}))
        .send()
        .await;
    out.assert_problem(409, "conflict");
}

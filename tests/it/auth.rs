//! Sessions: login (JSON and OAuth2 form, uniform failures, constant time, rehashing),
//! refresh rotation and reuse detection, logout, and the published keys.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use users_core::token::{Expectations, Jwks, KeySet};

use crate::helpers::{
    AUDIENCE, Api as _, PUBLIC_URL, TokenPair, spawn_app, spawn_app_and_user, spawn_app_set,
};
use crate::jwt::{jwt_parts, now_secs};

#[tokio::test(flavor = "multi_thread")]
async fn login_with_username_or_email_issues_a_verifiable_token_pair() {
    let (app, user) = spawn_app_and_user().await;

    for login in [user.username.clone(), user.email.to_uppercase()] {
        let pair = app.login(&login, &user.password).await;
        assert_eq!(pair.token_type, "Bearer");
        assert_eq!(pair.expires_in, 900);
        assert!(!pair.refresh_token.is_empty());

        let jwks: Jwks = app.get("/.well-known/jwks.json").send().await.json_as();
        let keys = KeySet::from_jwks(&jwks);
        let expect = Expectations {
            issuer: PUBLIC_URL.into(),
            audience: AUDIENCE.into(),
        };
        let verified = keys
            .verify(&pair.access_token, &expect, now_secs())
            .expect("the token verifies against the published JWKS");
        assert_eq!(verified.claims.sub, user.id);
        assert_eq!(verified.claims.roles, vec!["user".to_owned()]);
        assert!(verified.claims.perms.is_empty());
        assert_eq!(verified.expires_at - verified.issued_at, 900);

        let (head, claims) = jwt_parts(&pair.access_token);
        assert_eq!(head["alg"], json!("EdDSA"));
        assert!(head["kid"].is_string());
        for claim in [
            "iss",
            "aud",
            "sub",
            "iat",
            "nbf",
            "exp",
            "jti",
            "roles",
            "perms",
            "sv",
            "sid",
            "email_verified",
        ] {
            assert!(claims.get(claim).is_some(), "claim {claim} in {claims}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn login_accepts_the_oauth2_password_form() {
    let (app, user) = spawn_app_and_user().await;

    let resp = app
        .post("/auth/login")
        .form(&[
            ("grant_type", "password"),
            ("username", &user.username),
            ("password", &user.password),
        ])
        .send()
        .await;

    let pair: TokenPair = resp.expect_status(200).json_as();
    assert_eq!(pair.token_type, "Bearer");
    assert_eq!(app.bearer(&pair.access_token).user_id().await, user.id);
}

#[tokio::test(flavor = "multi_thread")]
async fn login_failures_are_indistinguishable() {
    let (app, user) = spawn_app_and_user().await;
    let inactive = app.new_user().await;
    let deactivate = json!({"is_active": false});
    app.as_admin()
        .patch_user(inactive.id, &deactivate)
        .await
        .expect_json(200);

    let wrong = "not-the-right-passphrase-at-all";
    let wrong_password = app.login_raw(&user.username, wrong).await;
    let wrong_password = wrong_password.assert_problem(401, "invalid-credentials");
    let unknown = app.login_raw("nobody-here", wrong).await;
    let unknown = unknown.assert_problem(401, "invalid-credentials");
    let deactivated = app.login_raw(&inactive.username, &inactive.password).await;
    let deactivated = deactivated.assert_problem(401, "invalid-credentials");

    assert_eq!(wrong_password, unknown);
    assert_eq!(wrong_password, deactivated);
}

/// Median wall time of `n` runs of `f`.
async fn median_time<F, Fut>(n: usize, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        f().await;
        times.push(start.elapsed());
    }
    times.sort();
    times[n / 2]
}

#[tokio::test(flavor = "multi_thread")]
async fn login_of_an_unknown_user_takes_as_long_as_a_wrong_password() {
    // Expensive hashing so that the difference a skipped hash makes dwarfs the noise.
    let app = spawn_app_set(&[("ARGON2_M_KIB", "32768"), ("ARGON2_T", "3")]).await;
    let admin = app.admin.clone();

    let failed_login = |login: &str| {
        let login = login.to_owned();
        let app = &app;
        async move {
            let resp = app
                .login_raw(&login, "wrong-passphrase-entirely-here")
                .await;
            resp.expect_status(401);
        }
    };
    let wrong = median_time(5, || failed_login(&admin.username)).await;
    let unknown = median_time(5, || failed_login("ghost-user")).await;

    assert!(
        unknown.as_secs_f64() >= wrong.as_secs_f64() * 0.3,
        "unknown user {unknown:?} vs wrong password {wrong:?}: a dummy hash must be verified"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_rotates_the_pair_and_spends_the_old_token() {
    let (app, user) = spawn_app_and_user().await;

    let first: TokenPair = app
        .refresh(&user.refresh)
        .await
        .expect_status(200)
        .json_as();
    assert_ne!(first.refresh_token, user.refresh);
    assert_eq!(app.bearer(&first.access_token).user_id().await, user.id);

    let second = app.refresh(&first.refresh_token).await;
    let second: TokenPair = second.expect_status(200).json_as();
    assert_ne!(second.refresh_token, first.refresh_token);
}

#[tokio::test(flavor = "multi_thread")]
async fn reusing_a_spent_refresh_token_revokes_the_whole_family() {
    let (app, user) = spawn_app_and_user().await;
    let other_session = app.login(&user.username, &user.password).await;

    let rotated: TokenPair = app
        .refresh(&user.refresh)
        .await
        .expect_status(200)
        .json_as();

    // The spent token comes back (a thief replays it): refused, and counted for the alert.
    assert_eq!(
        app.metrics().await.sum("users_refresh_reuse_total", &[]),
        0.0
    );
    let replay = app.refresh(&user.refresh).await;
    replay.assert_problem(401, "invalid-grant");
    assert_eq!(
        app.metrics().await.sum("users_refresh_reuse_total", &[]),
        1.0
    );

    // The newest token of that family is dead too.
    let newest = app.refresh(&rotated.refresh_token).await;
    newest.assert_problem(401, "invalid-grant");

    // Another login's family is unaffected.
    app.refresh(&other_session.refresh_token)
        .await
        .expect_json(200);
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_with_an_unknown_token_is_invalid_grant() {
    let app = spawn_app().await;

    let resp = app.refresh("definitely-not-a-refresh-token").await;

    resp.assert_problem(401, "invalid-grant");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_access_token_is_not_a_refresh_token() {
    let (app, user) = spawn_app_and_user().await;

    let resp = app.refresh(&user.access).await;

    resp.assert_problem(401, "invalid-grant");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_refresh_token_is_invalid_grant() {
    let (app, user) = spawn_app_and_user().await;
    app.db
        .execute(
            "UPDATE refresh_tokens SET expires_at = now() - interval '1 minute' WHERE user_id = $1",
            &[&user.id],
        )
        .await
        .unwrap();

    let resp = app.refresh(&user.refresh).await;

    resp.assert_problem(401, "invalid-grant");
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_tokens_are_stored_hashed() {
    let (app, user) = spawn_app_and_user().await;

    let rows = app
        .db
        .query(
            "SELECT token_hash FROM refresh_tokens WHERE user_id = $1",
            &[&user.id],
        )
        .await
        .unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        let stored: Vec<u8> = row.get(0);
        assert_ne!(stored, user.refresh.as_bytes());
        assert!(
            !String::from_utf8_lossy(&stored).contains(&user.refresh),
            "the raw token is not stored"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_spends_one_session_and_keeps_the_others() {
    let (app, user) = spawn_app_and_user().await;
    let second = app.login(&user.username, &user.password).await;

    let resp = app.as_user(&user).logout(&user.refresh).await;

    resp.expect_status(204);
    app.refresh(&user.refresh)
        .await
        .assert_problem(401, "invalid-grant");
    app.refresh(&second.refresh_token).await.expect_json(200);
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_all_revokes_every_session_and_access_token() {
    let (app, user) = spawn_app_and_user().await;
    let second = app.second_session(&user).await;

    app.as_user(&user).logout_all().await.expect_status(204);

    for session in [&user, &second] {
        app.as_user(session).me().await.assert_invalid_token();
    }
    for session in [&user, &second] {
        let refresh = app.refresh(&session.refresh).await;
        refresh.assert_problem(401, "invalid-grant");
    }
    // Logging in again works and yields a usable token.
    let fresh = app.second_session(&user).await;
    app.as_user(&fresh).me().await.expect_status(200);
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_needs_authentication() {
    let app = spawn_app().await;

    let resp = app.logout_all().await;

    resp.assert_unauthenticated();
}

#[tokio::test(flavor = "multi_thread")]
async fn jwks_publishes_ed25519_keys_with_kids() {
    let app = spawn_app().await;

    let resp = app.get("/.well-known/jwks.json").send().await;

    let body: Value = resp.expect_json(200);
    let keys = body["keys"].as_array().expect("keys");
    assert!(!keys.is_empty());
    for key in keys {
        assert_eq!(key["kty"], json!("OKP"));
        assert_eq!(key["crv"], json!("Ed25519"));
        assert!(key["kid"].as_str().is_some_and(|k| !k.is_empty()));
        assert!(key.get("d").is_none(), "never the private part");
    }
    let (head, _) = jwt_parts(&app.admin.access);
    assert!(
        keys.iter().any(|k| k["kid"] == head["kid"]),
        "the signing key is published"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn access_token_ttl_is_configurable() {
    let app = spawn_app_set(&[("ACCESS_TOKEN_TTL", "60")]).await;
    let user = app.new_user().await;

    let pair = app.login(&user.username, &user.password).await;

    assert_eq!(pair.expires_in, 60);
    let (_, claims) = jwt_parts(&pair.access_token);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        60
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn login_rehashes_a_password_when_the_parameters_change() {
    let (app, user) = spawn_app_and_user().await;
    let stored = || async {
        let row = app
            .db
            .query_one("SELECT password_hash FROM users WHERE id = $1", &[&user.id])
            .await
            .unwrap();
        row.get::<_, String>(0)
    };
    let before = stored().await;
    assert!(before.contains("m=1024"), "{before}");
    // A replica with stronger parameters (a configuration roll-out).
    let replica = app
        .spawn_replica_with(|vars| {
            vars.insert("ARGON2_M_KIB".into(), "2048".into());
            vars.insert("ARGON2_T".into(), "2".into());
        })
        .await;

    replica.login(&user.username, &user.password).await;

    let after = stored().await;
    assert!(after.contains("m=2048") && after.contains("t=2"), "{after}");
    // The password still works on both.
    app.login(&user.username, &user.password).await;
}

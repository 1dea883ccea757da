//! Registration, login (JSON and OAuth2 form), refresh rotation and reuse detection, logout.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use users_core::token::{Expectations, Jwks, KeySet};

use crate::helpers::{
    AUDIENCE, PUBLIC_URL, TokenPair, assert_invalid_token, assert_problem, error_fields, header,
    json_body, jwt_parts, now_secs, spawn_app, spawn_app_with, strong_password, unique_name,
};

#[tokio::test(flavor = "multi_thread")]
async fn register_returns_201_with_location_and_a_user_view() {
    let app = spawn_app().await;
    let username = unique_name("Alice");
    let email = format!("{username}@Example.com");

    let resp = app
        .post("/auth/register")
        .json(&json!({
            "username": username, "email": email,
            "password": strong_password(), "display_name": "Alice Example"
        }))
        .send()
        .await
        .unwrap();

    let location = header(&resp, "location");
    let body = json_body(resp, 201).await;
    let id = body["id"].as_str().expect("id");
    assert_eq!(location.as_deref(), Some(format!("/users/{id}").as_str()));
    assert_eq!(
        body["username"],
        json!(username.to_lowercase()),
        "stored lower-case"
    );
    assert_eq!(body["email"], json!(email));
    assert_eq!(body["display_name"], json!("Alice Example"));
    assert_eq!(body["roles"], json!(["user"]));
    assert_eq!(body["is_active"], json!(true));
    assert!(body["version"].is_i64());
    let keys: BTreeSet<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected: BTreeSet<&str> = [
        "id",
        "username",
        "email",
        "display_name",
        "roles",
        "is_active",
        "created_at",
        "updated_at",
        "version",
    ]
    .into();
    assert_eq!(
        keys, expected,
        "the user view has exactly the documented members"
    );
    let uuid: uuid::Uuid = id.parse().expect("a uuid");
    assert_eq!(uuid.get_version_num(), 7, "ids are UUID v7");
}

#[tokio::test(flavor = "multi_thread")]
async fn register_never_stores_the_password_in_clear() {
    let app = spawn_app().await;
    let user = app.new_user().await;

    let row = app
        .db
        .query_one("SELECT password_hash FROM users WHERE id = $1", &[&user.id])
        .await
        .unwrap();
    let hash: String = row.get(0);
    assert!(
        hash.starts_with("$argon2id$"),
        "a PHC Argon2id string: {hash}"
    );
    assert!(!hash.contains(&user.password));
}

#[tokio::test(flavor = "multi_thread")]
async fn register_with_a_taken_username_or_email_is_409() {
    let app = spawn_app().await;
    let user = app.new_user().await;

    let same_name = app
        .register(
            &user.username.to_uppercase(),
            "fresh@example.com",
            &strong_password(),
        )
        .await;
    assert_problem(same_name, 409, "conflict").await;

    let same_email = app
        .register(
            &unique_name("b"),
            &user.email.to_uppercase(),
            &strong_password(),
        )
        .await;
    assert_problem(same_email, 409, "conflict").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn register_validation_lists_every_bad_field() {
    let app = spawn_app().await;

    let resp = app
        .post("/auth/register")
        .json(&json!({
            "username": "no spaces allowed", "email": "not-an-email",
            "password": "short", "display_name": "bell\u{7}"
        }))
        .send()
        .await
        .unwrap();

    let problem = assert_problem(resp, 422, "validation-failed").await;
    let fields: BTreeSet<String> = error_fields(&problem).into_iter().collect();
    for field in ["username", "email", "password", "display_name"] {
        assert!(fields.contains(field), "{field} is listed: {problem}");
    }
    for error in problem["errors"].as_array().unwrap() {
        assert!(
            error["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "each field says why: {error}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn register_refuses_weak_identity_derived_and_oversized_passwords() {
    let app = spawn_app().await;
    let username = unique_name("carol");
    let email = format!("{username}@example.com");

    for password in [
        "passwordpassword".to_owned(),
        format!("{username}{username}"),
        "x".repeat(129),
        "fourteen chars".to_owned(),
    ] {
        let resp = app.register(&username, &email, &password).await;
        let problem = assert_problem(resp, 422, "validation-failed").await;
        assert_eq!(
            error_fields(&problem),
            vec!["password"],
            "{password:?}: {problem}"
        );
    }
    let row = app
        .db
        .query_one(
            "SELECT count(*) FROM users WHERE username = $1",
            &[&username],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn passwords_are_counted_in_characters_and_never_truncated() {
    let app = spawn_app().await;
    let username = unique_name("dave");
    let email = format!("{username}@example.com");
    // 128 characters, 256 bytes: at the limit.
    let long: String = "жёлтый-кит-плывёт-на-закате-"
        .chars()
        .cycle()
        .take(128)
        .collect();

    let resp = app.register(&username, &email, &long).await;
    json_body(resp, 201).await;

    // Not truncated: a prefix is a different password.
    let prefix: String = long.chars().take(72).collect();
    assert_problem(
        app.login_raw(&username, &prefix).await,
        401,
        "invalid-credentials",
    )
    .await;
    app.login(&username, &long).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn registration_can_be_disabled() {
    let app = spawn_app_with(|vars| {
        vars.insert("ALLOW_REGISTRATION".into(), "false".into());
    })
    .await;

    let resp = app
        .register(&unique_name("e"), "e@example.com", &strong_password())
        .await;

    assert_problem(resp, 403, "registration-disabled").await;
    let count: i64 = app
        .db
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 1, "only the admin exists");
}

#[tokio::test(flavor = "multi_thread")]
async fn login_with_username_or_email_issues_a_verifiable_token_pair() {
    let app = spawn_app().await;
    let user = app.new_user().await;

    for login in [user.username.clone(), user.email.to_uppercase()] {
        let pair = app.login(&login, &user.password).await;
        assert_eq!(pair.token_type, "Bearer");
        assert_eq!(pair.expires_in, 900);
        assert!(!pair.refresh_token.is_empty());

        let jwks: Jwks = app
            .get("/.well-known/jwks.json")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
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
            "iss", "aud", "sub", "iat", "nbf", "exp", "jti", "roles", "perms", "sv",
        ] {
            assert!(claims.get(claim).is_some(), "claim {claim} in {claims}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn login_accepts_the_oauth2_password_form() {
    let app = spawn_app().await;
    let user = app.new_user().await;

    let resp = app
        .post("/auth/login")
        .form(&[
            ("grant_type", "password"),
            ("username", &user.username),
            ("password", &user.password),
        ])
        .send()
        .await
        .unwrap();

    let body = json_body(resp, 200).await;
    let pair: TokenPair = serde_json::from_value(body).unwrap();
    assert_eq!(pair.token_type, "Bearer");
    assert_eq!(app.user_id_of(&pair.access_token).await, user.id);
}

#[tokio::test(flavor = "multi_thread")]
async fn login_failures_are_indistinguishable() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let inactive = app.new_user().await;
    let resp = app
        .patch_user(&app.admin.access, inactive.id, &json!({"is_active": false}))
        .await;
    json_body(resp, 200).await;

    let wrong_password = app
        .login_raw(&user.username, "not-the-right-passphrase-at-all")
        .await;
    let wrong_password = assert_problem(wrong_password, 401, "invalid-credentials").await;
    let unknown = app
        .login_raw("nobody-here", "not-the-right-passphrase-at-all")
        .await;
    let unknown = assert_problem(unknown, 401, "invalid-credentials").await;
    let deactivated = app.login_raw(&inactive.username, &inactive.password).await;
    let deactivated = assert_problem(deactivated, 401, "invalid-credentials").await;

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
    let app = spawn_app_with(|vars| {
        vars.insert("ARGON2_M_KIB".into(), "32768".into());
        vars.insert("ARGON2_T".into(), "3".into());
    })
    .await;
    let admin = app.admin.clone();

    let wrong = median_time(5, || async {
        let resp = app
            .login_raw(&admin.username, "wrong-passphrase-entirely-here")
            .await;
        assert_eq!(resp.status(), 401);
    })
    .await;
    let unknown = median_time(5, || async {
        let resp = app
            .login_raw("ghost-user", "wrong-passphrase-entirely-here")
            .await;
        assert_eq!(resp.status(), 401);
    })
    .await;

    assert!(
        unknown.as_secs_f64() >= wrong.as_secs_f64() * 0.3,
        "unknown user {unknown:?} vs wrong password {wrong:?}: a dummy hash must be verified"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_rotates_the_pair_and_spends_the_old_token() {
    let app = spawn_app().await;
    let user = app.new_user().await;

    let first = app.refresh_raw(&user.refresh).await;
    let first: TokenPair = serde_json::from_value(json_body(first, 200).await).unwrap();
    assert_ne!(first.refresh_token, user.refresh);
    assert_eq!(app.user_id_of(&first.access_token).await, user.id);

    let second = app.refresh_raw(&first.refresh_token).await;
    let second: TokenPair = serde_json::from_value(json_body(second, 200).await).unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
}

#[tokio::test(flavor = "multi_thread")]
async fn reusing_a_spent_refresh_token_revokes_the_whole_family() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let other_session = app.login(&user.username, &user.password).await;

    let rotated = app.refresh_raw(&user.refresh).await;
    let rotated: TokenPair = serde_json::from_value(json_body(rotated, 200).await).unwrap();

    // The spent token comes back (a thief replays it).
    let replay = app.refresh_raw(&user.refresh).await;
    assert_problem(replay, 401, "invalid-grant").await;

    // The newest token of that family is dead too.
    let newest = app.refresh_raw(&rotated.refresh_token).await;
    assert_problem(newest, 401, "invalid-grant").await;

    // Another login's family is unaffected.
    let other = app.refresh_raw(&other_session.refresh_token).await;
    json_body(other, 200).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_with_an_unknown_token_is_invalid_grant() {
    let app = spawn_app().await;

    let resp = app.refresh_raw("definitely-not-a-refresh-token").await;

    assert_problem(resp, 401, "invalid-grant").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_access_token_is_not_a_refresh_token() {
    let app = spawn_app().await;
    let user = app.new_user().await;

    let resp = app.refresh_raw(&user.access).await;

    assert_problem(resp, 401, "invalid-grant").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_refresh_token_is_invalid_grant() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    app.db
        .execute(
            "UPDATE refresh_tokens SET expires_at = now() - interval '1 minute' WHERE user_id = $1",
            &[&user.id],
        )
        .await
        .unwrap();

    let resp = app.refresh_raw(&user.refresh).await;

    assert_problem(resp, 401, "invalid-grant").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_tokens_are_stored_hashed() {
    let app = spawn_app().await;
    let user = app.new_user().await;

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
    let app = spawn_app().await;
    let user = app.new_user().await;
    let second = app.login(&user.username, &user.password).await;

    let resp = app
        .post("/auth/logout")
        .bearer_auth(&user.access)
        .json(&json!({"refresh_token": user.refresh}))
        .send()
        .await
        .unwrap();

    assert_eq!(resp.status(), 204);
    assert_problem(app.refresh_raw(&user.refresh).await, 401, "invalid-grant").await;
    json_body(app.refresh_raw(&second.refresh_token).await, 200).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_all_revokes_every_session_and_access_token() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let second = app.login(&user.username, &user.password).await;

    let resp = app
        .post("/auth/logout")
        .bearer_auth(&user.access)
        .json(&json!({"all": true}))
        .send()
        .await
        .unwrap();

    assert_eq!(resp.status(), 204);
    assert_invalid_token(app.me(&user.access).await).await;
    assert_invalid_token(app.me(&second.access_token).await).await;
    assert_problem(app.refresh_raw(&user.refresh).await, 401, "invalid-grant").await;
    assert_problem(
        app.refresh_raw(&second.refresh_token).await,
        401,
        "invalid-grant",
    )
    .await;
    // Logging in again works and yields a usable token.
    let fresh = app.login(&user.username, &user.password).await;
    assert_eq!(app.me(&fresh.access_token).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_needs_authentication() {
    let app = spawn_app().await;

    let resp = app
        .post("/auth/logout")
        .json(&json!({"all": true}))
        .send()
        .await
        .unwrap();

    let www = header(&resp, "www-authenticate").unwrap_or_default();
    assert_problem(resp, 401, "unauthenticated").await;
    assert!(
        www.starts_with("Bearer") && !www.contains("error="),
        "{www:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn jwks_publishes_ed25519_keys_with_kids() {
    let app = spawn_app().await;

    let resp = app.get("/.well-known/jwks.json").send().await.unwrap();

    let body: Value = json_body(resp, 200).await;
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

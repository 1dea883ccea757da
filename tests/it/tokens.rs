//! Access-token verification from the outside: forged, tampered, mis-addressed and expired
//! tokens are refused; tokens signed with a configured key (the origin's own, or a rotation key
//! from `VERIFY_KEYS_FILE`) are accepted, which proves the forgeries fail for the reason named.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwt_compact::Algorithm as _;
use jwt_compact::AlgorithmSignature as _;
use jwt_compact::alg::{Hs256, Hs256Key};
use serde_json::{Value, json};

use crate::helpers::{
    ALL_PERMS, AUDIENCE, Api as _, PUBLIC_URL, TestApp, TestUser, apply_settings, spawn_app,
    spawn_app_and_user, spawn_app_with,
};
use crate::jwt::{
    assert_signed_with, changed, compact_jws, jwt_parts, now_secs, public_key_of, random_seed,
    sign_eddsa, thumbprint, use_signing_seed, with_claims,
};

/// Claims a real token for `user` would carry, valid now.
fn claims_for(user: &TestUser, perms: &[&str], roles: &[&str]) -> Value {
    let (_, real) = jwt_parts(&user.access);
    let now = now_secs();
    json!({
        "iss": PUBLIC_URL, "aud": AUDIENCE, "sub": user.id.to_string(),
        "iat": now, "nbf": now, "exp": now + 300, "jti": uuid::Uuid::new_v4().to_string(),
        "roles": roles, "perms": perms, "sv": real["sv"],
    })
}

/// An app whose signing key is a seed of the test's, one of its users, and the key's kid.
struct Seeded {
    app: TestApp,
    user: TestUser,
    seed: [u8; 32],
    kid: String,
}

impl Seeded {
    /// Starts the app with `settings` (see [`apply_settings`]) and a fresh signing seed.
    async fn start(settings: &[(&str, &str)]) -> Self {
        let seed = random_seed();
        let app = spawn_app_with(|vars| {
            use_signing_seed(vars, seed);
            apply_settings(vars, settings);
        })
        .await;
        let user = app.new_user().await;
        let kid = assert_signed_with(&user.access, seed);
        Self {
            app,
            user,
            seed,
            kid,
        }
    }

    /// The claims of a plain user's token (see [`claims_for`]), with `changes` (see [`changed`]).
    fn claims(&self, changes: Value) -> Value {
        changed(&claims_for(&self.user, &[], &["user"]), changes)
    }

    /// `claims` signed with the app's own key.
    fn sign(&self, claims: &Value) -> String {
        sign_eddsa(self.seed, &self.kid, claims)
    }
}

/// Asserts that `token` is refused on `GET /users/me`.
async fn assert_refused(app: &TestApp, token: &str) {
    app.bearer(token).me().await.assert_invalid_token();
}

/// Asserts that `token` is refused on `GET /users` (which needs `users:read`) too.
async fn assert_refused_everywhere(app: &TestApp, token: &str) {
    assert_refused(app, token).await;
    app.bearer(token)
        .list_users(&[])
        .await
        .assert_invalid_token();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_without_a_token_is_unauthenticated() {
    let app = spawn_app().await;

    let resp = app.get("/users/me").send().await;

    resp.assert_unauthenticated();
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_and_non_bearer_credentials_are_refused() {
    let app = spawn_app().await;

    for garbage in ["not.a.jwt", "abc", "a".repeat(8000).as_str()] {
        assert_refused(&app, garbage).await;
    }

    let basic = app
        .get("/users/me")
        .basic_auth(&app.admin.username, &app.admin.password)
        .send()
        .await;
    assert_eq!(basic.status, 401, "Basic credentials are no access token");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_signed_with_the_configured_seed_is_accepted() {
    // Positive control for the forgeries below: the harness signs tokens the origin accepts.
    let s = Seeded::start(&[]).await;

    let token = s.sign(&s.claims(json!({})));

    assert_eq!(s.app.bearer(&token).user_id().await, s.user.id);
}

#[tokio::test(flavor = "multi_thread")]
async fn alg_none_is_refused() {
    let (app, user) = spawn_app_and_user().await;
    let (real_head, _) = jwt_parts(&user.access);
    let claims = claims_for(&user, &ALL_PERMS, &["admin"]);

    for alg in ["none", "None", "NONE"] {
        let head = json!({"alg": alg, "typ": "JWT", "kid": real_head["kid"]});
        let unsigned = compact_jws(&head, &claims, |_| Vec::new());
        assert_refused_everywhere(&app, &unsigned).await;
        // Without the trailing dot as well.
        assert_refused(&app, unsigned.trim_end_matches('.')).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_claims_are_refused() {
    let (app, user) = spawn_app_and_user().await;
    let parts: Vec<&str> = user.access.split('.').collect();
    let (_, claims) = jwt_parts(&user.access);
    let admin = json!({"perms": ALL_PERMS, "roles": ["admin"]});
    let forged = with_claims(&user.access, &changed(&claims, admin));

    let listed = app.bearer(&forged).list_users(&[]).await;
    listed.assert_invalid_token();

    // Another user's id under this user's signature.
    let someone_else = json!({"sub": app.admin.id.to_string()});
    let forged = with_claims(&user.access, &changed(&claims, someone_else));
    assert_refused(&app, &forged).await;

    // A flipped signature bit.
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[0] ^= 1;
    let flipped = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig));
    assert_refused(&app, &flipped).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hs256_signed_with_the_public_key_is_refused() {
    let (app, user) = spawn_app_and_user().await;
    let (real_head, _) = jwt_parts(&user.access);
    let jwks = app.get("/.well-known/jwks.json").send().await.json();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == real_head["kid"])
        .expect("the signing key in the JWKS")
        .clone();
    let x = jwk["x"].as_str().unwrap().to_owned();
    let raw = URL_SAFE_NO_PAD.decode(&x).unwrap();
    let claims = claims_for(&user, &ALL_PERMS, &["admin"]);

    // The classic confusion: the verifier's public key used as an HMAC secret, in every form
    // a confused verifier might hold it.
    for secret in [
        raw,
        x.into_bytes(),
        jwk.to_string().into_bytes(),
        jwks.to_string().into_bytes(),
    ] {
        let key = Hs256Key::new(&secret);
        let head = json!({"alg": "HS256", "typ": "JWT", "kid": real_head["kid"]});
        let forged = compact_jws(&head, &claims, |input| {
            Hs256.sign(&key, input).as_bytes().to_vec()
        });
        assert_refused_everywhere(&app, &forged).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_signed_by_an_unknown_key_is_refused() {
    let (app, user) = spawn_app_and_user().await;
    let (real_head, _) = jwt_parts(&user.access);
    let stranger = random_seed();
    let claims = claims_for(&user, &ALL_PERMS, &["admin"]);

    let own = thumbprint(&public_key_of(stranger));
    let head = json!({"alg": "EdDSA", "typ": "JWT"});
    let pair = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(stranger));
    for token in [
        // Claiming the origin's kid.
        sign_eddsa(stranger, real_head["kid"].as_str().unwrap(), &claims),
        // Naming its own kid.
        sign_eddsa(stranger, &own, &claims),
        // Naming none.
        compact_jws(&head, &claims, |i| pair.sk.sign(i, None).to_vec()),
    ] {
        app.bearer(&token)
            .list_users(&[])
            .await
            .assert_invalid_token();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_audience_or_issuer_is_refused_even_when_properly_signed() {
    let s = Seeded::start(&[]).await;

    for changes in [
        json!({"aud": "some-other-api"}),
        json!({"iss": "https://evil.example"}),
        json!({"aud": null}),
    ] {
        assert_refused(&s.app, &s.sign(&s.claims(changes))).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_and_not_yet_valid_tokens_are_refused() {
    let s = Seeded::start(&[]).await;
    let now = now_secs();

    for changes in [
        json!({"iat": now - 3600, "nbf": now - 3600, "exp": now - 600}),
        json!({"iat": now + 3600, "nbf": now + 3600, "exp": now + 7200}),
        json!({"exp": null}),
    ] {
        assert_refused(&s.app, &s.sign(&s.claims(changes))).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_below_the_users_security_version_is_refused() {
    let s = Seeded::start(&[]).await;
    let sv = s.claims(json!({}))["sv"]
        .as_i64()
        .expect("sv is an integer");

    let stale = s.sign(&s.claims(json!({"sv": sv - 1})));
    assert_refused(&s.app, &stale).await;
    // The same token at the current version is fine (the control).
    let current = s.sign(&s.claims(json!({"sv": sv})));
    s.app.bearer(&current).me().await.expect_status(200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_validly_signed_token_for_a_missing_user_is_refused() {
    let s = Seeded::start(&[]).await;
    let ghost = json!({"sub": uuid::Uuid::now_v7().to_string()});
    let ghost = changed(&claims_for(&s.user, &ALL_PERMS, &["admin"]), ghost);

    assert_refused_everywhere(&s.app, &s.sign(&ghost)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_keys_from_verify_keys_file_are_accepted_and_published() {
    let old = random_seed();
    let old_kid = thumbprint(&public_key_of(old));
    let app = spawn_app_with(|vars| {
        let jwks = json!({"keys": [{
            "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": old_kid,
            "x": URL_SAFE_NO_PAD.encode(public_key_of(old)),
        }]});
        let path = std::path::Path::new(&vars["DATA_DIR"]).join("verify-keys.json");
        std::fs::write(&path, jwks.to_string()).unwrap();
        vars.insert("VERIFY_KEYS_FILE".into(), path.display().to_string());
    })
    .await;
    let user = app.new_user().await;

    let jwks = app
        .get("/.well-known/jwks.json")
        .send()
        .await
        .expect_json(200);
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    let (real_head, _) = jwt_parts(&user.access);
    assert!(kids.contains(&old_kid.as_str()), "{kids:?}");
    assert!(
        kids.contains(&real_head["kid"].as_str().unwrap()),
        "{kids:?}"
    );

    let token = sign_eddsa(old, &old_kid, &claims_for(&user, &[], &["user"]));
    assert_eq!(
        app.bearer(&token).user_id().await,
        user.id,
        "a rotation key verifies"
    );

    let wrong_aud = json!({"aud": "another-audience"});
    let wrong_aud = changed(&claims_for(&user, &[], &["user"]), wrong_aud);
    assert_refused(&app, &sign_eddsa(old, &old_kid, &wrong_aud)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn custom_issuer_and_audience_are_enforced() {
    let custom = [
        ("JWT_ISSUER", "https://issuer.test"),
        ("JWT_AUDIENCE", "custom-aud"),
    ];
    let s = Seeded::start(&custom).await;

    let (_, claims) = jwt_parts(&s.user.access);
    assert_eq!(claims["iss"], json!("https://issuer.test"));
    assert!(
        claims["aud"] == json!("custom-aud") || claims["aud"] == json!(["custom-aud"]),
        "{claims}"
    );
    // A token made for the defaults is now mis-addressed.
    assert_refused(&s.app, &s.sign(&s.claims(json!({})))).await;
}

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
    ALL_PERMS, AUDIENCE, PUBLIC_URL, TestApp, TestUser, assert_invalid_token, assert_problem,
    header, json_body, spawn_app, spawn_app_with,
};
use crate::jwt::{
    compact_jws, jwt_parts, now_secs, public_key_of, random_seed, sign_eddsa, thumbprint,
    use_signing_seed,
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

/// An app whose signing key is `seed`.
async fn app_with_seed(seed: [u8; 32]) -> TestApp {
    spawn_app_with(|vars| use_signing_seed(vars, seed)).await
}

/// `GET /users` (needs `users:read`) with `token`.
async fn list_users(app: &TestApp, token: &str) -> reqwest::Response {
    app.get("/users").bearer_auth(token).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_without_a_token_is_unauthenticated() {
    let app = spawn_app().await;

    let resp = app.get("/users/me").send().await.unwrap();

    let www = header(&resp, "www-authenticate").unwrap_or_default();
    assert_problem(resp, 401, "unauthenticated").await;
    assert!(
        www.starts_with("Bearer") && !www.contains("error="),
        "{www:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_and_non_bearer_credentials_are_refused() {
    let app = spawn_app().await;

    assert_invalid_token(app.me("not.a.jwt").await).await;
    assert_invalid_token(app.me("abc").await).await;
    assert_invalid_token(app.me(&"a".repeat(8000)).await).await;

    let basic = app
        .get("/users/me")
        .basic_auth(&app.admin.username, Some(&app.admin.password))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401, "Basic credentials are no access token");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_signed_with_the_configured_seed_is_accepted() {
    // Positive control for the forgeries below: the harness signs tokens the origin accepts.
    let seed = random_seed();
    let app = app_with_seed(seed).await;
    let user = app.new_user().await;
    let kid = thumbprint(&public_key_of(seed));

    let (real_head, _) = jwt_parts(&user.access);
    assert_eq!(
        real_head["kid"],
        json!(kid),
        "the origin signs with SIGNING_KEY_FILE"
    );
    let token = sign_eddsa(seed, &kid, &claims_for(&user, &[], &["user"]));

    assert_eq!(app.user_id_of(&token).await, user.id);
}

#[tokio::test(flavor = "multi_thread")]
async fn alg_none_is_refused() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let (real_head, _) = jwt_parts(&user.access);
    let claims = claims_for(&user, &ALL_PERMS, &["admin"]);

    for alg in ["none", "None", "NONE"] {
        let head = json!({"alg": alg, "typ": "JWT", "kid": real_head["kid"]});
        let unsigned = compact_jws(&head, &claims, |_| Vec::new());
        assert_invalid_token(app.me(&unsigned).await).await;
        assert_invalid_token(list_users(&app, &unsigned).await).await;
        // Without the trailing dot as well.
        let bare = unsigned.trim_end_matches('.').to_owned();
        assert_invalid_token(app.me(&bare).await).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_claims_are_refused() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let parts: Vec<&str> = user.access.split('.').collect();
    let (_, mut claims) = jwt_parts(&user.access);
    claims["perms"] = json!(ALL_PERMS);
    claims["roles"] = json!(["admin"]);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );

    assert_invalid_token(list_users(&app, &forged).await).await;

    // Another user's id under this user's signature.
    let (_, mut claims) = jwt_parts(&user.access);
    claims["sub"] = json!(app.admin.id.to_string());
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    assert_invalid_token(app.me(&forged).await).await;

    // A flipped signature bit.
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[0] ^= 1;
    let flipped = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig));
    assert_invalid_token(app.me(&flipped).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hs256_signed_with_the_public_key_is_refused() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let (real_head, _) = jwt_parts(&user.access);
    let jwks: Value = app
        .get("/.well-known/jwks.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
        assert_invalid_token(list_users(&app, &forged).await).await;
        assert_invalid_token(app.me(&forged).await).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_signed_by_an_unknown_key_is_refused() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let (real_head, _) = jwt_parts(&user.access);
    let stranger = random_seed();
    let claims = claims_for(&user, &ALL_PERMS, &["admin"]);

    // Claiming the origin's kid.
    let kid = real_head["kid"].as_str().unwrap();
    assert_invalid_token(list_users(&app, &sign_eddsa(stranger, kid, &claims)).await).await;
    // Naming its own kid.
    let own = thumbprint(&public_key_of(stranger));
    assert_invalid_token(list_users(&app, &sign_eddsa(stranger, &own, &claims)).await).await;
    // Naming none.
    let head = json!({"alg": "EdDSA", "typ": "JWT"});
    let pair = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(stranger));
    let no_kid = compact_jws(&head, &claims, |i| pair.sk.sign(i, None).to_vec());
    assert_invalid_token(list_users(&app, &no_kid).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_audience_or_issuer_is_refused_even_when_properly_signed() {
    let seed = random_seed();
    let app = app_with_seed(seed).await;
    let user = app.new_user().await;
    let kid = thumbprint(&public_key_of(seed));

    let mut wrong_aud = claims_for(&user, &[], &["user"]);
    wrong_aud["aud"] = json!("some-other-api");
    assert_invalid_token(app.me(&sign_eddsa(seed, &kid, &wrong_aud)).await).await;

    let mut wrong_iss = claims_for(&user, &[], &["user"]);
    wrong_iss["iss"] = json!("https://evil.example");
    assert_invalid_token(app.me(&sign_eddsa(seed, &kid, &wrong_iss)).await).await;

    let mut no_aud = claims_for(&user, &[], &["user"]);
    no_aud.as_object_mut().unwrap().remove("aud");
    assert_invalid_token(app.me(&sign_eddsa(seed, &kid, &no_aud)).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_and_not_yet_valid_tokens_are_refused() {
    let seed = random_seed();
    let app = app_with_seed(seed).await;
    let user = app.new_user().await;
    let kid = thumbprint(&public_key_of(seed));
    let now = now_secs();

    let mut expired = claims_for(&user, &[], &["user"]);
    expired["iat"] = json!(now - 3600);
    expired["nbf"] = json!(now - 3600);
    expired["exp"] = json!(now - 600);
    assert_invalid_token(app.me(&sign_eddsa(seed, &kid, &expired)).await).await;

    let mut early = claims_for(&user, &[], &["user"]);
    early["iat"] = json!(now + 3600);
    early["nbf"] = json!(now + 3600);
    early["exp"] = json!(now + 7200);
    assert_invalid_token(app.me(&sign_eddsa(seed, &kid, &early)).await).await;

    let mut no_exp = claims_for(&user, &[], &["user"]);
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_invalid_token(app.me(&sign_eddsa(seed, &kid, &no_exp)).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_below_the_users_security_version_is_refused() {
    let seed = random_seed();
    let app = app_with_seed(seed).await;
    let user = app.new_user().await;
    let kid = thumbprint(&public_key_of(seed));
    let mut stale = claims_for(&user, &[], &["user"]);
    let sv = stale["sv"].as_i64().expect("sv is an integer");
    stale["sv"] = json!(sv - 1);

    assert_invalid_token(app.me(&sign_eddsa(seed, &kid, &stale)).await).await;
    // The same token at the current version is fine (the control).
    stale["sv"] = json!(sv);
    assert_eq!(app.me(&sign_eddsa(seed, &kid, &stale)).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_validly_signed_token_for_a_missing_user_is_refused() {
    let seed = random_seed();
    let app = app_with_seed(seed).await;
    let user = app.new_user().await;
    let kid = thumbprint(&public_key_of(seed));
    let mut ghost = claims_for(&user, &ALL_PERMS, &["admin"]);
    ghost["sub"] = json!(uuid::Uuid::now_v7().to_string());

    assert_invalid_token(app.me(&sign_eddsa(seed, &kid, &ghost)).await).await;
    assert_invalid_token(list_users(&app, &sign_eddsa(seed, &kid, &ghost)).await).await;
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

    let jwks: Value = json_body(app.get("/.well-known/jwks.json").send().await.unwrap(), 200).await;
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
        app.user_id_of(&token).await,
        user.id,
        "a rotation key verifies"
    );

    let mut wrong_aud = claims_for(&user, &[], &["user"]);
    wrong_aud["aud"] = json!("another-audience");
    assert_invalid_token(app.me(&sign_eddsa(old, &old_kid, &wrong_aud)).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn custom_issuer_and_audience_are_enforced() {
    let seed = random_seed();
    let app = spawn_app_with(|vars| {
        use_signing_seed(vars, seed);
        vars.insert("JWT_ISSUER".into(), "https://issuer.test".into());
        vars.insert("JWT_AUDIENCE".into(), "custom-aud".into());
    })
    .await;
    let user = app.new_user().await;
    let kid = thumbprint(&public_key_of(seed));

    let (_, claims) = jwt_parts(&user.access);
    assert_eq!(claims["iss"], json!("https://issuer.test"));
    assert!(
        claims["aud"] == json!("custom-aud") || claims["aud"] == json!(["custom-aud"]),
        "{claims}"
    );
    // A token made for the defaults is now mis-addressed.
    let defaults = claims_for(&user, &[], &["user"]);
    assert_invalid_token(app.me(&sign_eddsa(seed, &kid, &defaults)).await).await;
}

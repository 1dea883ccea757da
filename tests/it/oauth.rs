//! The OAuth2 token endpoint (SPEC §9): `POST /auth/login` form posts with the password and
//! the refresh grant, their RFC 6749 §5.2 errors inside the problems, `no-store` on token
//! answers, and the authorization server metadata (RFC 8414).

use serde_json::{Value, json};

use crate::helpers::{
    Api, PUBLIC_URL, Reply, TestApp, TestUser, TokenPair, spawn_app, spawn_app_and_user,
};

/// A form post to the token endpoint.
pub async fn token_form(api: &impl Api, form: &[(&str, &str)]) -> Reply {
    api.post("/auth/login").form(&form).send().await
}

/// The password grant of `user`, as an OAuth2 client library sends it (`client_id` and
/// `scope` included).
pub async fn password_grant(api: &impl Api, user: &TestUser) -> Reply {
    let form = [
        ("grant_type", "password"),
        ("username", user.username.as_str()),
        ("password", user.password.as_str()),
        ("client_id", "some-client"),
        ("scope", "openid profile"),
    ];
    token_form(api, &form).await
}

/// The refresh grant of `refresh_token`.
pub async fn refresh_grant(api: &impl Api, refresh_token: &str) -> Reply {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_id", "some-client"),
    ];
    token_form(api, &form).await
}

/// Asserts a token answer (RFC 6749 §5.1): `200`, the pair, `no-store` and `no-cache`.
#[track_caller]
pub fn assert_token_answer(reply: &Reply) -> TokenPair {
    let pair: TokenPair = reply.expect_status(200).json_as();
    assert_eq!(pair.token_type, "Bearer");
    assert!(pair.expires_in > 0);
    assert_eq!(reply.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(reply.header("pragma").as_deref(), Some("no-cache"));
    pair
}

#[tokio::test(flavor = "multi_thread")]
async fn the_password_grant_ignores_client_id_and_scope() {
    let (app, user) = spawn_app_and_user().await;
    let pair = assert_token_answer(&password_grant(&app, &user).await);
    assert_eq!(app.bearer(&pair.access_token).user_id().await, user.id);
    // The JSON login is a token answer too.
    assert_token_answer(&app.login_raw(&user.username, &user.password).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_refresh_grant_rotates_like_auth_refresh() {
    let (app, user) = spawn_app_and_user().await;
    let first = assert_token_answer(&password_grant(&app, &user).await);
    let second = assert_token_answer(&refresh_grant(&app, &first.refresh_token).await);
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(app.bearer(&second.access_token).user_id().await, user.id);
    // The JSON route takes the form grant's tokens and the other way round: one rotation.
    let third: TokenPair = app.refresh(&second.refresh_token).await.json_as();
    assert_token_answer(&refresh_grant(&app, &third.refresh_token).await);
    assert_token_answer(&app.refresh(&user.refresh).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn reusing_a_spent_refresh_token_at_the_token_endpoint_revokes_its_family() {
    let (app, user) = spawn_app_and_user().await;
    let first = assert_token_answer(&password_grant(&app, &user).await);
    let second = assert_token_answer(&refresh_grant(&app, &first.refresh_token).await);

    refresh_grant(&app, &first.refresh_token)
        .await
        .assert_oauth_error(401, "invalid-grant", "invalid_grant");
    // The family is gone: its newest token and its access token too.
    refresh_grant(&app, &second.refresh_token)
        .await
        .assert_oauth_error(401, "invalid-grant", "invalid_grant");
    app.bearer(&second.access_token)
        .me()
        .await
        .assert_invalid_token();
    let reused = app
        .count(
            "SELECT count(*) FROM audit_log WHERE action = 'refresh.reused'",
            &[],
        )
        .await;
    assert_eq!(reused, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn credential_failures_are_the_uniform_401_with_invalid_grant() {
    let (app, user) = spawn_app_and_user().await;
    let wrong = token_form(
        &app,
        &[
            ("grant_type", "password"),
            ("username", &user.username),
            ("password", "not-the-right-passphrase-at-all"),
        ],
    )
    .await;
    let unknown = token_form(
        &app,
        &[
            ("grant_type", "password"),
            ("username", "nobody-of-that-name"),
            ("password", "not-the-right-passphrase-at-all"),
        ],
    )
    .await;
    let a = wrong.assert_oauth_error(401, "invalid-credentials", "invalid_grant");
    let b = unknown.assert_oauth_error(401, "invalid-credentials", "invalid_grant");
    assert_eq!(a, b, "one body for every credential failure");
    for token in ["never-issued", &"x".repeat(500)] {
        refresh_grant(&app, token)
            .await
            .assert_oauth_error(401, "invalid-grant", "invalid_grant");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_token_requests_are_400_invalid_request() {
    let (app, user) = spawn_app_and_user().await;
    let missing_password = token_form(&app, &[("username", &user.username)]).await;
    let body = missing_password.assert_oauth_error(400, "malformed-request", "invalid_request");
    assert_eq!(crate::helpers::error_fields(&body), ["password"], "{body}");

    let missing_refresh = token_form(&app, &[("grant_type", "refresh_token")]).await;
    let body = missing_refresh.assert_oauth_error(400, "malformed-request", "invalid_request");
    assert_eq!(crate::helpers::error_fields(&body), ["refresh_token"]);

    let twice = app
        .post("/auth/login")
        .typed_body(
            "application/x-www-form-urlencoded",
            "grant_type=password&username=a&username=b&password=c",
        )
        .send()
        .await;
    twice.assert_oauth_error(400, "malformed-request", "invalid_request");

    let invalid_utf8 = app
        .post("/auth/login")
        .typed_body(
            "application/x-www-form-urlencoded",
            b"username=%FF%FE&password=x".to_vec(),
        )
        .send()
        .await;
    assert!(
        [400, 401].contains(&invalid_utf8.status),
        "undecodable form: {invalid_utf8}"
    );
    assert!(invalid_utf8.json()["error"].is_string(), "{invalid_utf8}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_grant_is_400_unsupported_grant_type() {
    let app = spawn_app().await;
    for grant in ["client_credentials", "authorization_code", ""] {
        token_form(&app, &[("grant_type", grant), ("code", "x")])
            .await
            .assert_oauth_error(400, "unsupported-grant-type", "unsupported_grant_type");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_json_path_keeps_its_problems_without_oauth_members() {
    let (app, user) = spawn_app_and_user().await;
    let wrong = app
        .login_raw(&user.username, "not-the-right-passphrase-at-all")
        .await;
    let body = wrong.assert_problem(401, "invalid-credentials");
    assert!(body.get("error").is_none(), "{body}");
    let missing = app
        .post("/auth/login")
        .json(&json!({"login": user.username}))
        .send()
        .await;
    let body = missing.assert_problem(422, "validation-failed");
    assert!(body.get("error").is_none(), "{body}");
    let refused = app.refresh("never-issued").await;
    let body = refused.assert_problem(401, "invalid-grant");
    assert!(body.get("error").is_none(), "{body}");
}

/// Asserts the metadata document of an origin whose public URL is [`PUBLIC_URL`].
pub fn assert_metadata(reply: &Reply) {
    let doc: Value = reply.expect_json(200);
    assert_eq!(doc["issuer"], PUBLIC_URL);
    assert_eq!(doc["token_endpoint"], format!("{PUBLIC_URL}/auth/login"));
    assert_eq!(
        doc["jwks_uri"],
        format!("{PUBLIC_URL}/.well-known/jwks.json")
    );
    assert_eq!(
        doc["grant_types_supported"],
        json!(["password", "refresh_token"])
    );
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        json!(["none"])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_authorization_server_metadata_names_the_token_endpoint() {
    let app = spawn_app().await;
    let reply = app
        .get("/.well-known/oauth-authorization-server")
        .send()
        .await;
    assert_metadata(&reply);
    // Its addresses are served here: the keys, and a token from the endpoint it names.
    let jwks = app
        .get("/.well-known/jwks.json")
        .send()
        .await
        .expect_json(200);
    assert!(jwks["keys"].as_array().is_some_and(|k| !k.is_empty()));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_offers_the_password_flow_beside_the_bearer_scheme() {
    let app: TestApp = spawn_app().await;
    let doc = app.get("/openapi.json").send().await.expect_json(200);
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer", "{schemes}");
    let password = &schemes["oauth2"]["flows"]["password"];
    assert_eq!(password["tokenUrl"], "/auth/login", "{schemes}");
    assert_eq!(password["refreshUrl"], "/auth/login", "{schemes}");
    // An operation that takes a token accepts either scheme.
    let me = &doc["paths"]["/users/me"]["get"]["security"];
    assert_eq!(me, &json!([{"bearer": []}, {"oauth2": []}]), "{me}");
}

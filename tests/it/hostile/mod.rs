//! Hostile input never reaches a `500`: strings PostgreSQL cannot store (NUL), bytes that are
//! not UTF-8 once percent-decoded, lone surrogates in JSON, and the security headers on every
//! origin answer.
//!
//! [`nul_cases`] are the reported attacks, asserted one by one; the origin runs them here and
//! both edges run them through [`crate::edge::scenarios::headers`]. [`sweep`] feeds hostile
//! values into every parameter of every route.

mod operations;
pub mod sweep;
mod values;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Api, TestApp, error_fields, spawn_app};

/// The answer of a problem, without what differs between two requests.
fn comparable(problem: &Value) -> Value {
    let mut p = problem.clone();
    if let Some(o) = p.as_object_mut() {
        o.remove("instance");
    }
    p
}

/// The reported NUL attacks and their neighbours, against `api` (the origin, or an edge in
/// front of `app`), as an anonymous client and as the admin.
pub async fn nul_cases(api: &impl Api, app: &TestApp) {
    // A login holding NUL is an unknown account: the uniform 401, the same body.
    let unknown = api
        .post("/auth/login")
        .json(&json!({"login": "nobody-at-all", "password": "wrong-password-123"}))
        .send()
        .await
        .assert_problem(401, "invalid-credentials");
    for login in [
        "ad\u{0}min",
        "\u{0}",
        &format!("{}\u{0}", app.admin.username),
    ] {
        let answer = api
            .post("/auth/login")
            .json(&json!({"login": login, "password": "wrong-password-123"}))
            .send()
            .await
            .assert_problem(401, "invalid-credentials");
        assert_eq!(comparable(&answer), comparable(&unknown), "login {login:?}");
    }
    // The admin's own password next to a NUL-spoiled login does not log in.
    api.post("/auth/login")
        .json(&json!({"login": format!("{}\u{0}", app.admin.username), "password": app.admin.password}))
        .send()
        .await
        .assert_problem(401, "invalid-credentials");
    for form in [
        "username=ad%00min&password=x",
        "username=%FF%FE&password=x",
        "username=a&password=%00",
    ] {
        api.post("/auth/login")
            .typed_body("application/x-www-form-urlencoded", form)
            .send()
            .await
            .assert_problem(401, "invalid-credentials");
    }
    // A NUL in the password of a JSON login is a failed login too.
    api.post("/auth/login")
        .json(&json!({"login": app.admin.username, "password": "a\u{0}b"}))
        .send()
        .await
        .assert_problem(401, "invalid-credentials");

    // Query parameters: a 422 naming the parameter.
    let admin_token = api
        .login(&app.admin.username, &app.admin.password)
        .await
        .access_token;
    let admin = api.bearer(&admin_token);
    for param in ["q", "email", "username", "role"] {
        for value in ["a%00b", "%00", "%FF", "%C3", "%ED%A0%80"] {
            let problem = admin
                .get(&format!("/users?{param}={value}"))
                .send()
                .await
                .assert_problem(422, "validation-failed");
            assert_eq!(error_fields(&problem), [param], "{param}={value}");
        }
    }
    // A role name that cannot exist names no role.
    for name in ["a%00b", "%00", "admin%00"] {
        admin
            .get(&format!("/roles/{name}"))
            .send()
            .await
            .assert_problem(404, "not-found");
        admin
            .request(
                Method::PUT,
                &format!("/users/{}/roles/{name}", app.admin.id),
            )
            .send()
            .await
            .assert_problem(404, "not-found");
    }
    // JSON bodies: NUL anywhere is a 422 naming the field; a lone surrogate is malformed.
    let problem = api
        .post("/auth/register")
        .json(&json!({"username": "ad\u{0}min", "email": "nul@example.com", "password": "violet-harbor-copper-lantern-1"}))
        .send()
        .await
        .assert_problem(422, "validation-failed");
    assert_eq!(error_fields(&problem), ["username"]);
    let problem = admin
        .post("/users")
        .json(&json!({"username": "nulroles", "email": "nulroles@example.com", "password": "violet-harbor-copper-lantern-2", "roles": ["user", "x\u{0}"]}))
        .send()
        .await
        .assert_problem(422, "validation-failed");
    assert_eq!(error_fields(&problem), ["roles[1]"]);
    api.post("/auth/register")
        .typed_body(
            "application/json",
            r#"{"username": "surrogate", "email": "s@example.com", "password": "p\ud800"}"#,
        )
        .send()
        .await
        .assert_problem(400, "malformed-request");
    // Nothing of the above created an account.
    let users = admin.list_users(&[("q", "nul")]).await.expect_json(200);
    assert_eq!(users["items"], json!([]), "{users}");
}

#[tokio::test]
async fn nul_and_undecodable_strings_get_problems_at_the_origin() {
    let app = spawn_app().await;
    nul_cases(&app, &app).await;
    // The failed login of an unknown identifier is audited as typed, NUL replaced.
    let request_id = format!("nul-{}", uuid::Uuid::new_v4().simple());
    app.post("/auth/login")
        .request_id(&request_id)
        .json(&json!({"login": "nul\u{0}login", "password": "wrong-password-123"}))
        .send()
        .await
        .assert_problem(401, "invalid-credentials");
    app.audit_of_request("login.failed", &request_id)
        .await
        .expect("the failed login is audited");
    let login: String = app
        .db
        .query_one(
            "SELECT details->>'login' FROM audit_log WHERE request_id = $1",
            &[&request_id],
        )
        .await
        .expect("one audit row")
        .get(0);
    assert_eq!(login, "nul\u{fffd}login");
}

/// Every origin answer carries the shared security headers; token, session and user answers
/// are `no-store`; the docs page has the strict docs policy and the JWKS stays cacheable.
#[tokio::test]
async fn every_origin_answer_carries_the_security_headers() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let login = app
        .post("/auth/login")
        .json(&json!({"login": user.username, "password": user.password}))
        .send()
        .await;
    let tokens = login.expect_json(200);
    let refresh = app
        .refresh(tokens["refresh_token"].as_str().expect("a refresh token"))
        .await;
    let form_login = app
        .post("/auth/login")
        .typed_body(
            "application/x-www-form-urlencoded",
            format!("username={}&password={}", user.username, user.password),
        )
        .send()
        .await;
    let me = app.as_user(&user).me().await;
    let list = app.as_admin().list_users(&[]).await;
    let answers = [
        ("a JSON login", login, "no-store"),
        ("a form login", form_login, "no-store"),
        ("a refresh", refresh, "no-store"),
        ("a profile read", me, "no-store"),
        ("a user list", list, "no-store"),
        ("a 404", app.get("/no/such/thing").send().await, "no-store"),
        ("a 401", app.get("/users/me").send().await, "no-store"),
        ("health", app.get("/healthz").send().await, "no-store"),
        (
            "the JWKS",
            app.get("/.well-known/jwks.json").send().await,
            "public, max-age=300",
        ),
    ];
    for (what, reply, cache) in &answers {
        assert!(reply.status < 500, "{what}: {reply}");
        let expected = [
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("referrer-policy", "no-referrer"),
            (
                "content-security-policy",
                "default-src 'none'; frame-ancestors 'none'",
            ),
            ("cache-control", cache),
        ];
        for (name, value) in expected {
            assert_eq!(reply.header(name).as_deref(), Some(value), "{what}: {name}");
        }
    }

    let docs = app.get("/docs/").send().await;
    docs.expect_status(200);
    let csp = docs
        .header("content-security-policy")
        .expect("a CSP on /docs");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        !csp.contains("script-src 'self' 'unsafe"),
        "no inline scripts: {csp}"
    );
    assert_eq!(
        docs.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    // The page's scripts are files of this origin, and none is inline: the policy lets the
    // page run.
    let scripts: Vec<&str> = docs.text.split("<script").skip(1).collect();
    assert!(!scripts.is_empty(), "{}", docs.text);
    for tag in scripts {
        let (attrs, rest) = tag.split_once('>').expect("a script tag");
        assert!(
            attrs.contains("src=\"./"),
            "a script of this origin: {attrs}"
        );
        assert!(
            rest.trim_start().starts_with("</script>"),
            "an inline script: {tag}"
        );
        let src = attrs
            .split("src=\"./")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("src");
        let asset = app.get(&format!("/docs/{src}")).send().await;
        asset.expect_status(200);
        assert_eq!(
            asset.header("x-content-type-options").as_deref(),
            Some("nosniff")
        );
    }
}

/// The sweep of [`sweep::sweep`] against the origin itself, with the fixed hostile values and
/// random strings.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_values_in_every_parameter_never_break_the_origin() {
    let app = spawn_app().await;
    let mut values = sweep::fixed_values();
    values.extend(sweep::random_values(11, 6));
    let report = sweep::sweep(&app, &app.endpoint(), &values).await;
    println!("origin sweep: {report}");
    assert!(report.requests > 1000, "the sweep ran: {report}");
}

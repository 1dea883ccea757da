//! Rate limits (SPEC §4): the per-IP quota on `/auth/*` with its `RateLimit-*` headers, the
//! per-user quota on authenticated routes, the growing lock-out of an identifier after failed
//! logins, sharing through Redis and the in-process fallback, and whose `X-Forwarded-For` is
//! believed when the client address is worked out.
//!
//! The default test configuration has limits too high to meet; these tests set their own, on
//! an extra origin over the app's database whose limiter keys start empty (see
//! [`fresh_origin`]), so the harness's own logins are not counted.

use std::time::Duration;

use reqwest::Response;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{TestApp, assert_problem, header, spawn_app, spawn_app_with, unique_name};
use crate::scrape::scrape;
use crate::testdb::{redis_connection, redis_keys};

/// A shared secret for the edge-secret tests (at least 16 characters).
const EDGE_SECRET: &str = "edge-secret-for-tests-0123456789";

/// Starts another origin over `app`'s database whose Redis keys live under
/// `<app prefix><tag>:` (so its limiter state starts empty and is removed with the app), after
/// `configure`; returns its address. Origins started with the same `tag` share that state.
async fn fresh_origin(
    app: &TestApp,
    tag: &str,
    configure: impl FnOnce(&mut std::collections::HashMap<String, String>),
) -> String {
    let prefix = format!("{}{tag}:", app.redis_prefix());
    app.spawn_replica_with(|vars| {
        vars.insert("REDIS_PREFIX".into(), prefix);
        configure(vars);
    })
    .await
}

/// `POST {base}/auth/login` (JSON) with extra request headers.
async fn login_at(
    app: &TestApp,
    base: &str,
    login: &str,
    password: &str,
    headers: &[(&str, &str)],
) -> Response {
    let mut req = app
        .client
        .post(format!("{base}/auth/login"))
        .json(&json!({"login": login, "password": password}));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.expect("send login")
}

/// `GET {base}/users/me` with `token`.
async fn me_at(app: &TestApp, base: &str, token: &str) -> Response {
    app.client
        .get(format!("{base}/users/me"))
        .bearer_auth(token)
        .send()
        .await
        .expect("send GET /users/me")
}

/// The `Retry-After` of a response, in seconds.
fn retry_after(resp: &Response) -> i64 {
    header(resp, "retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a numeric Retry-After, headers {:?}", resp.headers()))
}

/// A parameter of a structured `RateLimit`/`RateLimit-Policy` header for `"auth-ip"`.
fn limit_param(resp: &Response, name: &str, param: &str) -> i64 {
    let value = header(resp, name).unwrap_or_else(|| panic!("a {name} header"));
    let mut items = value.split(';').map(str::trim);
    assert_eq!(items.next(), Some("\"auth-ip\""), "{name}: {value}");
    items
        .find_map(|p| p.strip_prefix(&format!("{param}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name}: {value} has no {param}"))
}

/// `users_rate_limited_total{scope}` of the origin at `base`.
async fn limited_count(app: &TestApp, base: &str, scope: &str) -> f64 {
    scrape(&app.client, base)
        .await
        .sum("users_rate_limited_total", &[("scope", scope)])
}

/// The audit `ip` of the request with id `request_id`.
async fn audit_ip(app: &TestApp, request_id: &str) -> Option<String> {
    for _ in 0..50 {
        if let Some(row) = app
            .db
            .query_opt(
                "SELECT ip FROM audit_log WHERE request_id = $1 ORDER BY id DESC LIMIT 1",
                &[&request_id],
            )
            .await
            .expect("query audit_log")
        {
            return row.get(0);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no audit record for request {request_id}");
}

fn request_id() -> String {
    format!("rl-{}", Uuid::new_v4().simple())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fourth_auth_request_from_one_ip_is_refused_with_rate_limit_headers() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let origin = fresh_origin(&app, "ip", |v| {
        v.insert("RATE_LIMIT_AUTH_IP".into(), "3/60s".into());
    })
    .await;

    // Three /auth requests of any kind and outcome: each says what is left.
    let refresh = app
        .client
        .post(format!("{origin}/auth/refresh"))
        .json(&json!({"refresh_token": "not-a-refresh-token"}))
        .send()
        .await
        .unwrap();
    let login = login_at(&app, &origin, &user.username, &user.password, &[]).await;
    let reset = app
        .client
        .post(format!("{origin}/auth/password/reset"))
        .json(&json!({"email": user.email}))
        .send()
        .await
        .unwrap();
    let mut remaining = Vec::new();
    for (resp, status) in [(&refresh, 401), (&login, 200), (&reset, 202)] {
        assert_eq!(resp.status(), status, "{}", resp.url());
        assert_eq!(limit_param(resp, "ratelimit-policy", "q"), 3);
        assert_eq!(limit_param(resp, "ratelimit-policy", "w"), 60);
        remaining.push(limit_param(resp, "ratelimit", "r"));
    }
    let fourth = login_at(&app, &origin, &user.username, &user.password, &[]).await;
    let versioned = app
        .client
        .post(format!("{origin}/v1/auth/login"))
        .json(&json!({"login": user.username, "password": user.password}))
        .send()
        .await
        .unwrap();

    assert_eq!(remaining, vec![2, 1, 0]);
    let wait = retry_after(&fourth);
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    assert_eq!(limit_param(&fourth, "ratelimit", "r"), 0);
    let reset_in = limit_param(&fourth, "ratelimit", "t");
    assert!((1..=60).contains(&reset_in), "RateLimit t={reset_in}");
    assert_eq!(limit_param(&fourth, "ratelimit-policy", "q"), 3);
    assert_problem(fourth, 429, "rate-limited").await;
    assert!(retry_after(&versioned) >= 1);
    assert_problem(versioned, 429, "rate-limited").await;
    // Routes outside /auth are not under the per-IP quota.
    let me = me_at(&app, &origin, &user.access).await;
    assert_eq!(me.status(), 200);
    assert_eq!(header(&me, "ratelimit-policy"), None);
    let health = app
        .client
        .get(format!("{origin}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(limited_count(&app, &origin, "auth-ip").await, 2.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fourth_authenticated_request_of_one_user_is_refused_and_others_are_not() {
    let app = spawn_app_with(|v| {
        v.insert("RATE_LIMIT_USER".into(), "3/60s".into());
    })
    .await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;

    for _ in 0..3 {
        assert_eq!(app.me(&alice.access).await.status(), 200);
    }
    let fourth = app.me(&alice.access).await;
    let by_id = app.get_user(&alice.access, alice.id).await;
    let other = app.me(&bob.access).await;

    let wait = retry_after(&fourth);
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    assert_problem(fourth, 429, "rate-limited").await;
    assert_problem(by_id, 429, "rate-limited").await;
    assert_eq!(other.status(), 200, "another user has a quota of their own");
    assert_eq!(app.get("/healthz").send().await.unwrap().status(), 200);
    assert_eq!(limited_count(&app, &app.address, "user").await, 2.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_logins_lock_the_identifier_for_growing_times_and_a_success_clears_them() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let wrong = "not-the-password-at-all-000";

    for i in 1..=5 {
        let resp = app.login_raw(&user.username, wrong).await;
        assert_eq!(resp.status(), 401, "failure {i} is answered normally");
    }
    let locked = app.login_raw(&user.username, wrong).await;
    let first_wait = retry_after(&locked);
    assert_problem(locked, 429, "rate-limited").await;
    let right_but_locked = app.login_raw(&user.username, &user.password).await;
    assert!(retry_after(&right_but_locked) >= 1);
    assert_problem(right_but_locked, 429, "rate-limited").await;
    assert_eq!(first_wait, 1, "the first lock-out lasts 1 s");

    // After the lock-out, one more failure locks for twice as long.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let sixth_failure = app.login_raw(&user.username, wrong).await;
    assert_eq!(sixth_failure.status(), 401);
    let locked_again = app.login_raw(&user.username, wrong).await;
    let second_wait = retry_after(&locked_again);
    assert_problem(locked_again, 429, "rate-limited").await;
    assert_eq!(second_wait, 2, "the lock-out doubles");

    // When it has passed, the right password works and clears the failures.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    app.login(&user.username, &user.password).await;
    let failure_after_success = app.login_raw(&user.username, wrong).await;
    assert_eq!(
        failure_after_success.status(),
        401,
        "the counter starts again"
    );
    app.login(&user.username, &user.password).await;
    assert_eq!(
        limited_count(&app, &app.address, "login-failures").await,
        3.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_identifiers_are_locked_the_same_way_after_normalisation() {
    let app = spawn_app().await;
    let ghost = unique_name("ghost");
    let password = "whatever-password-0000000";

    for _ in 0..5 {
        assert_eq!(app.login_raw(&ghost, password).await.status(), 401);
    }
    let same = app.login_raw(&ghost, password).await;
    let shouted = app
        .login_raw(&format!("  {}  ", ghost.to_uppercase()), password)
        .await;
    let someone_else = app.login_raw(&unique_name("ghost"), password).await;

    assert!(retry_after(&same) >= 1);
    assert_problem(same, 429, "rate-limited").await;
    assert!(retry_after(&shouted) >= 1);
    assert_problem(shouted, 429, "rate-limited").await;
    assert_problem(someone_else, 401, "invalid-credentials").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_share_every_limit_through_redis() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let limits = |v: &mut std::collections::HashMap<String, String>| {
        v.insert("RATE_LIMIT_AUTH_IP".into(), "3/60s".into());
        v.insert("RATE_LIMIT_USER".into(), "3/60s".into());
    };
    let a = fresh_origin(&app, "shared", limits).await;
    let b = fresh_origin(&app, "shared", limits).await;

    // Per IP on /auth: A, B, A pass; B refuses the fourth.
    for base in [&a, &b, &a] {
        let resp = login_at(&app, base, &user.username, &user.password, &[]).await;
        assert_eq!(resp.status(), 200);
    }
    let auth = login_at(&app, &b, &user.username, &user.password, &[]).await;
    assert_problem(auth, 429, "rate-limited").await;
    // Per user: the same.
    for base in [&b, &a, &b] {
        assert_eq!(me_at(&app, base, &user.access).await.status(), 200);
    }
    assert_problem(me_at(&app, &a, &user.access).await, 429, "rate-limited").await;
    // Login failures: counted on both, locked on both. Two more origins sharing other keys, with
    // the default (unreachable) quotas, so the exhausted per-IP quota above stays out of it.
    let c = fresh_origin(&app, "failures", |_| {}).await;
    let d = fresh_origin(&app, "failures", |_| {}).await;
    for base in [&c, &d, &c, &d, &c] {
        let resp = login_at(&app, base, &user.email, "wrong-password-000000000", &[]).await;
        assert_eq!(resp.status(), 401);
    }
    let locked = login_at(&app, &d, &user.email, &user.password, &[]).await;
    assert_problem(locked, 429, "rate-limited").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_redis_limits_hold_in_process_for_each_replica() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let local = |v: &mut std::collections::HashMap<String, String>| {
        v.remove("REDIS_URL");
        v.insert("RATE_LIMIT_AUTH_IP".into(), "3/60s".into());
        v.insert("RATE_LIMIT_USER".into(), "3/60s".into());
    };
    let a = fresh_origin(&app, "local", local).await;
    let b = fresh_origin(&app, "local", local).await;

    for _ in 0..3 {
        let resp = login_at(&app, &a, &user.username, &user.password, &[]).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(me_at(&app, &a, &user.access).await.status(), 200);
    }
    let auth = login_at(&app, &a, &user.username, &user.password, &[]).await;
    let me = me_at(&app, &a, &user.access).await;
    let auth_elsewhere = login_at(&app, &b, &user.username, &user.password, &[]).await;
    let me_elsewhere = me_at(&app, &b, &user.access).await;

    assert_problem(auth, 429, "rate-limited").await;
    assert_problem(me, 429, "rate-limited").await;
    assert_eq!(
        auth_elsewhere.status(),
        200,
        "in-process limits are per replica"
    );
    assert_eq!(me_elsewhere.status(), 200);
    let mut redis = redis_connection().await;
    let keys = redis_keys(&mut redis, &format!("{}local:", app.redis_prefix())).await;
    assert_eq!(keys, Vec::<String>::new(), "nothing is kept in Redis");
    // The login lock-out works in process too.
    let c = fresh_origin(&app, "local", |v| {
        v.remove("REDIS_URL");
    })
    .await;
    for _ in 0..5 {
        let resp = login_at(&app, &c, &user.username, "wrong-password-000000000", &[]).await;
        assert_eq!(resp.status(), 401);
    }
    let locked = login_at(&app, &c, &user.username, &user.password, &[]).await;
    assert_problem(locked, 429, "rate-limited").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn x_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let origin = fresh_origin(&app, "untrusted", |v| {
        v.insert("RATE_LIMIT_AUTH_IP".into(), "3/60s".into());
    })
    .await;
    let id = request_id();

    let mut statuses = Vec::new();
    for (i, xff) in ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
        .iter()
        .enumerate()
    {
        let rid = if i == 0 { id.clone() } else { request_id() };
        let headers = [("x-forwarded-for", *xff), ("x-request-id", rid.as_str())];
        let resp = login_at(&app, &origin, &user.username, &user.password, &headers).await;
        statuses.push(resp.status().as_u16());
    }
    let fourth = login_at(
        &app,
        &origin,
        &user.username,
        &user.password,
        &[("x-forwarded-for", "203.0.113.4")],
    )
    .await;

    assert_eq!(statuses, vec![200, 200, 200]);
    assert_problem(fourth, 429, "rate-limited").await;
    assert_eq!(audit_ip(&app, &id).await.as_deref(), Some("127.0.0.1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn x_forwarded_for_from_a_trusted_proxy_is_believed() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let origin = fresh_origin(&app, "trusted", |v| {
        v.insert("RATE_LIMIT_AUTH_IP".into(), "3/60s".into());
        v.insert("TRUSTED_PROXIES".into(), "127.0.0.1, 10.0.0.0/8".into());
    })
    .await;
    let from = |ip: &'static str| [("x-forwarded-for", ip)];

    for _ in 0..3 {
        let resp = login_at(
            &app,
            &origin,
            &user.username,
            &user.password,
            &from("203.0.113.7"),
        )
        .await;
        assert_eq!(resp.status(), 200);
    }
    let fourth = login_at(
        &app,
        &origin,
        &user.username,
        &user.password,
        &from("203.0.113.7"),
    )
    .await;
    let id = request_id();
    let other_client = login_at(
        &app,
        &origin,
        &user.username,
        &user.password,
        &[
            ("x-forwarded-for", "203.0.113.8, 10.1.2.3"),
            ("x-request-id", &id),
        ],
    )
    .await;

    assert_problem(fourth, 429, "rate-limited").await;
    assert_eq!(other_client.status(), 200, "another client, another bucket");
    assert_eq!(limit_param(&other_client, "ratelimit", "r"), 2);
    assert_eq!(
        audit_ip(&app, &id).await.as_deref(),
        Some("203.0.113.8"),
        "the nearest untrusted address is the client"
    );
    let direct = login_at(&app, &origin, &user.username, &user.password, &[]).await;
    assert_eq!(
        direct.status(),
        200,
        "the proxy itself has a bucket of its own"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn x_forwarded_for_with_the_edge_secret_is_believed_and_with_a_wrong_one_is_not() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let origin = fresh_origin(&app, "edge", |v| {
        v.insert("RATE_LIMIT_AUTH_IP".into(), "3/60s".into());
        v.insert("EDGE_SHARED_SECRET".into(), EDGE_SECRET.into());
    })
    .await;
    let login = |headers: Vec<(&'static str, String)>| {
        let (app, origin, user) = (&app, &origin, &user);
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            login_at(app, origin, &user.username, &user.password, &headers).await
        }
    };
    let edge = |ip: &str| {
        vec![
            ("x-edge-secret", EDGE_SECRET.to_owned()),
            ("x-forwarded-for", ip.to_owned()),
        ]
    };
    let forged = |ip: &str| {
        vec![
            ("x-edge-secret", "not-the-edge-secret-0123456789".to_owned()),
            ("x-forwarded-for", ip.to_owned()),
        ]
    };

    for _ in 0..3 {
        assert_eq!(login(edge("198.51.100.1")).await.status(), 200);
    }
    let fourth = login(edge("198.51.100.1")).await;
    let believed_id = request_id();
    let mut headers = edge("198.51.100.2");
    headers.push(("x-request-id", believed_id.clone()));
    let other_client = login(headers).await;
    // A wrong secret is not believed: every such request counts against 127.0.0.1.
    let forged_id = request_id();
    let mut forged_statuses = Vec::new();
    for (i, ip) in [
        "198.51.100.3",
        "198.51.100.4",
        "198.51.100.5",
        "198.51.100.6",
    ]
    .iter()
    .enumerate()
    {
        let mut headers = forged(ip);
        if i == 0 {
            headers.push(("x-request-id", forged_id.clone()));
        }
        forged_statuses.push(login(headers).await.status().as_u16());
    }

    assert_problem(fourth, 429, "rate-limited").await;
    assert_eq!(other_client.status(), 200);
    assert_eq!(
        audit_ip(&app, &believed_id).await.as_deref(),
        Some("198.51.100.2")
    );
    assert_eq!(forged_statuses, vec![200, 200, 200, 429]);
    assert_eq!(
        audit_ip(&app, &forged_id).await.as_deref(),
        Some("127.0.0.1")
    );
}

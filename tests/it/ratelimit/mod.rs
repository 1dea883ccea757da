//! Rate limits (SPEC §4): the per-IP quota on `/auth/*` with its `RateLimit-*` headers, the
//! per-user quota on authenticated routes, the growing lock-out of an identifier after failed
//! logins, sharing through Redis and the in-process fallback; whose `X-Forwarded-For` is
//! believed when the client address is worked out is in [`clients`].
//!
//! The default test configuration has limits too high to meet; these tests set their own, on
//! an extra origin over the app's database whose limiter keys start empty (see
//! [`fresh_origin`]), so the harness's own logins are not counted. Each test over Redis runs
//! twice ([`redis_test!`]): on the test Redis server and on the test Redis Cluster; what a
//! cluster needs of the keys (one hash slot per lock-out, whatever the identifier) is in
//! [`cluster`].

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use crate::helpers::{
    Api, Endpoint, RedisKind, Reply, TestApp, TestUser, apply_settings, redis_test,
    spawn_app_and_user, spawn_app_and_user_on, spawn_app_on, unique_name,
};
use crate::scrape::scrape;

mod clients;
mod cluster;

/// A shared secret for the edge-secret tests (at least 16 characters).
const EDGE_SECRET: &str = "edge-secret-for-tests-0123456789";

/// A per-IP quota on `/auth/*` of 3 a minute.
const AUTH_IP_3: (&str, &str) = ("RATE_LIMIT_AUTH_IP", "3/60s");
/// A per-user quota of 3 a minute.
const USER_3: (&str, &str) = ("RATE_LIMIT_USER", "3/60s");
/// No Redis: the in-process limiter.
const NO_REDIS: (&str, &str) = ("REDIS_URL", "");

/// Starts another origin over `app`'s database whose Redis keys live under
/// `<app prefix><tag>:` (so its limiter state starts empty and is removed with the app), with
/// `settings` (see [`apply_settings`]). Origins started with the same `tag` share that state.
async fn fresh_origin(app: &TestApp, tag: &str, settings: &[(&str, &str)]) -> Endpoint {
    let prefix = format!("{}{tag}:", app.redis_prefix());
    app.spawn_replica_with(|vars| {
        vars.insert("REDIS_PREFIX".into(), prefix);
        apply_settings(vars, settings);
    })
    .await
}

/// `POST /auth/login` (JSON) of `user` at `origin` with extra request headers.
async fn login_with(origin: &impl Api, user: &TestUser, headers: &[(&str, &str)]) -> Reply {
    origin
        .post("/auth/login")
        .headers(headers)
        .json(&json!({"login": user.username, "password": user.password}))
        .send()
        .await
}

/// The `Retry-After` of a response, in seconds.
fn retry_after(resp: &Reply) -> i64 {
    resp.header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a numeric Retry-After: {resp}"))
}

/// A parameter of a structured `RateLimit`/`RateLimit-Policy` header for `"auth-ip"`.
fn limit_param(resp: &Reply, name: &str, param: &str) -> i64 {
    let value = resp
        .header(name)
        .unwrap_or_else(|| panic!("a {name} header"));
    let mut items = value.split(';').map(str::trim);
    assert_eq!(items.next(), Some("\"auth-ip\""), "{name}: {value}");
    items
        .find_map(|p| p.strip_prefix(&format!("{param}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name}: {value} has no {param}"))
}

/// `users_rate_limited_total{scope}` of `origin`.
async fn limited_count(origin: &impl Api, scope: &str) -> f64 {
    scrape(origin)
        .await
        .sum("users_rate_limited_total", &[("scope", scope)])
}

/// The audited `ip` of the successful login with request id `request_id`.
async fn audit_ip(app: &TestApp, request_id: &str) -> Option<String> {
    app.audit_of_request("login.succeeded", request_id)
        .await
        .unwrap_or_else(|| panic!("no audit record for request {request_id}"))
        .ip
}

/// A wrong passphrase for the lock-out tests.
const WRONG_PASSWORD: &str = "wrong-password-000000000";

fn request_id() -> String {
    format!("rl-{}", Uuid::new_v4().simple())
}

async fn the_fourth_auth_request_from_one_ip_is_refused_with_rate_limit_headers(kind: RedisKind) {
    let (app, user) = spawn_app_and_user_on(kind).await;
    let origin = fresh_origin(&app, "ip", &[AUTH_IP_3]).await;

    // Three /auth requests of any kind and outcome: each says what is left.
    let refresh = origin.refresh("not-a-refresh-token").await;
    let login = login_with(&origin, &user, &[]).await;
    let reset = origin.request_reset(&user.email).await;
    let mut remaining = Vec::new();
    for (resp, status) in [(&refresh, 401), (&login, 200), (&reset, 202)] {
        resp.expect_status(status);
        assert_eq!(limit_param(resp, "ratelimit-policy", "q"), 3);
        assert_eq!(limit_param(resp, "ratelimit-policy", "w"), 60);
        remaining.push(limit_param(resp, "ratelimit", "r"));
    }
    let fourth = login_with(&origin, &user, &[]).await;
    let versioned = origin
        .post("/v1/auth/login")
        .json(&json!({"login": user.username, "password": user.password}))
        .send()
        .await;

    assert_eq!(remaining, vec![2, 1, 0]);
    let wait = retry_after(&fourth);
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    assert_eq!(limit_param(&fourth, "ratelimit", "r"), 0);
    let reset_in = limit_param(&fourth, "ratelimit", "t");
    assert!((1..=60).contains(&reset_in), "RateLimit t={reset_in}");
    assert_eq!(limit_param(&fourth, "ratelimit-policy", "q"), 3);
    fourth.assert_problem(429, "rate-limited");
    assert!(retry_after(&versioned) >= 1);
    versioned.assert_problem(429, "rate-limited");
    // Routes outside /auth are not under the per-IP quota.
    let me = origin.as_user(&user).me().await;
    me.expect_status(200);
    assert_eq!(me.header("ratelimit-policy"), None);
    origin.get("/healthz").send().await.expect_status(200);
    assert_eq!(limited_count(&origin, "auth-ip").await, 2.0);
}
redis_test!(the_fourth_auth_request_from_one_ip_is_refused_with_rate_limit_headers);

async fn the_fourth_authenticated_request_of_one_user_is_refused_and_others_are_not(
    kind: RedisKind,
) {
    let app = spawn_app_on(kind, &[USER_3]).await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;

    let as_alice = app.as_user(&alice);
    for _ in 0..3 {
        as_alice.me().await.expect_status(200);
    }
    let fourth = as_alice.me().await;
    let by_id = as_alice.get_user(alice.id).await;
    let other = app.as_user(&bob).me().await;

    let wait = retry_after(&fourth);
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    fourth.assert_problem(429, "rate-limited");
    by_id.assert_problem(429, "rate-limited");
    assert_eq!(other.status, 200, "another user has a quota of their own");
    app.get("/healthz").send().await.expect_status(200);
    assert_eq!(limited_count(&app, "user").await, 2.0);
}
redis_test!(the_fourth_authenticated_request_of_one_user_is_refused_and_others_are_not);

async fn failed_logins_lock_the_identifier_for_growing_times_and_a_success_clears_them(
    kind: RedisKind,
) {
    let (app, user) = spawn_app_and_user_on(kind).await;
    let wrong = "not-the-password-at-all-000";

    for i in 1..=5 {
        let resp = app.login_raw(&user.username, wrong).await;
        assert_eq!(resp.status, 401, "failure {i} is answered normally: {resp}");
    }
    let locked = app.login_raw(&user.username, wrong).await;
    let first_wait = retry_after(&locked);
    locked.assert_problem(429, "rate-limited");
    let right_but_locked = app.login_raw(&user.username, &user.password).await;
    assert!(retry_after(&right_but_locked) >= 1);
    right_but_locked.assert_problem(429, "rate-limited");
    assert_eq!(first_wait, 1, "the first lock-out lasts 1 s");

    // After the lock-out, one more failure locks for twice as long.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.login_raw(&user.username, wrong)
        .await
        .expect_status(401);
    let locked_again = app.login_raw(&user.username, wrong).await;
    let second_wait = retry_after(&locked_again);
    locked_again.assert_problem(429, "rate-limited");
    assert_eq!(second_wait, 2, "the lock-out doubles");

    // When it has passed, the right password works and clears the failures.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    app.login(&user.username, &user.password).await;
    let failure_after_success = app.login_raw(&user.username, wrong).await;
    assert_eq!(
        failure_after_success.status, 401,
        "the counter starts again"
    );
    app.login(&user.username, &user.password).await;
    assert_eq!(limited_count(&app, "login-failures").await, 3.0);
}
redis_test!(failed_logins_lock_the_identifier_for_growing_times_and_a_success_clears_them);

async fn unknown_identifiers_are_locked_the_same_way_after_normalisation(kind: RedisKind) {
    let app = spawn_app_on(kind, &[]).await;
    let ghost = unique_name("ghost");
    let password = "whatever-password-0000000";

    for _ in 0..5 {
        app.login_raw(&ghost, password).await.expect_status(401);
    }
    let same = app.login_raw(&ghost, password).await;
    let shouted = format!("  {}  ", ghost.to_uppercase());
    let shouted = app.login_raw(&shouted, password).await;
    let someone_else = app.login_raw(&unique_name("ghost"), password).await;

    for locked in [same, shouted] {
        assert!(retry_after(&locked) >= 1);
        locked.assert_problem(429, "rate-limited");
    }
    someone_else.assert_problem(401, "invalid-credentials");
}
redis_test!(unknown_identifiers_are_locked_the_same_way_after_normalisation);

async fn replicas_share_every_limit_through_redis(kind: RedisKind) {
    let (app, user) = spawn_app_and_user_on(kind).await;
    let a = fresh_origin(&app, "shared", &[AUTH_IP_3, USER_3]).await;
    let b = fresh_origin(&app, "shared", &[AUTH_IP_3, USER_3]).await;

    // Per IP on /auth: A, B, A pass; B refuses the fourth.
    for origin in [&a, &b, &a] {
        login_with(origin, &user, &[]).await.expect_status(200);
    }
    let auth = login_with(&b, &user, &[]).await;
    auth.assert_problem(429, "rate-limited");
    // Per user: the same.
    for origin in [&b, &a, &b] {
        origin.as_user(&user).me().await.expect_status(200);
    }
    a.as_user(&user)
        .me()
        .await
        .assert_problem(429, "rate-limited");
    // Login failures: counted on both, locked on both. Two more origins sharing other keys, with
    // the default (unreachable) quotas, so the exhausted per-IP quota above stays out of it.
    let c = fresh_origin(&app, "failures", &[]).await;
    let d = fresh_origin(&app, "failures", &[]).await;
    for origin in [&c, &d, &c, &d, &c] {
        let resp = origin.login_raw(&user.email, WRONG_PASSWORD).await;
        resp.expect_status(401);
    }
    let locked = d.login_raw(&user.email, &user.password).await;
    locked.assert_problem(429, "rate-limited");
}
redis_test!(replicas_share_every_limit_through_redis);

#[tokio::test(flavor = "multi_thread")]
async fn without_redis_limits_hold_in_process_for_each_replica() {
    let (app, user) = spawn_app_and_user().await;
    let a = fresh_origin(&app, "local", &[NO_REDIS, AUTH_IP_3, USER_3]).await;
    let b = fresh_origin(&app, "local", &[NO_REDIS, AUTH_IP_3, USER_3]).await;

    for _ in 0..3 {
        login_with(&a, &user, &[]).await.expect_status(200);
        a.as_user(&user).me().await.expect_status(200);
    }
    let auth = login_with(&a, &user, &[]).await;
    let me = a.as_user(&user).me().await;
    let auth_elsewhere = login_with(&b, &user, &[]).await;
    let me_elsewhere = b.as_user(&user).me().await;

    auth.assert_problem(429, "rate-limited");
    me.assert_problem(429, "rate-limited");
    assert_eq!(
        auth_elsewhere.status, 200,
        "in-process limits are per replica"
    );
    me_elsewhere.expect_status(200);
    let keys = app
        .redis_keys(&format!("{}local:", app.redis_prefix()))
        .await;
    assert_eq!(keys, Vec::<String>::new(), "nothing is kept in Redis");
    // The login lock-out works in process too.
    let c = fresh_origin(&app, "local", &[NO_REDIS]).await;
    for _ in 0..5 {
        c.login_raw(&user.username, WRONG_PASSWORD)
            .await
            .expect_status(401);
    }
    let locked = login_with(&c, &user, &[]).await;
    locked.assert_problem(429, "rate-limited");
}

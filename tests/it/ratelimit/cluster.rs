//! The limits where a Redis Cluster puts keys by hash slot: an identifier whose braces try to
//! choose its keys' slot still has its lock-out keys in one slot, so the lock-out's pipeline and
//! `DEL` work (no `CROSSSLOT`), and the quota script runs there too. Run on the test Redis
//! server as well ([`redis_test!`]).

use std::time::Duration;

use redis::cluster_routing::Slot;

use super::{WRONG_PASSWORD, fresh_origin, limit_param};
use crate::helpers::{Api as _, RedisKind, redis_test, spawn_app_on, strong_password, unique_name};
use crate::scrape::scrape;

/// Two origins sharing their limiter state, each request of `/auth/*` through both: the
/// remaining per-IP quota goes down by one each time, failed logins of an identifier full of
/// braces lock it on both, a success clears the failures on both, and Redis never failed.
async fn an_identifier_with_braces_is_locked_out_and_cleared_through_redis(kind: RedisKind) {
    let app = spawn_app_on(kind, &[]).await;
    let username = unique_name("brace");
    // Hash tags of its own: `{x}`, and an unmatched `}` and `{` around them.
    let email = format!("{username}}}{{x}}{{@app.test");
    let password = strong_password();
    app.register(&username, &email, &password)
        .await
        .expect_status(201);
    let quota = ("RATE_LIMIT_AUTH_IP", "20/60s");
    let a = fresh_origin(&app, "braces", &[quota]).await;
    let b = fresh_origin(&app, "braces", &[quota]).await;
    let mut remaining = Vec::new();

    for origin in [&a, &b, &a, &b, &a] {
        let failed = origin.login_raw(&email, WRONG_PASSWORD).await;
        failed.assert_problem(401, "invalid-credentials");
        remaining.push(limit_param(&failed, "ratelimit", "r"));
    }
    for origin in [&b, &a] {
        let locked = origin.login_raw(&email, &password).await;
        locked.assert_problem(429, "rate-limited");
        remaining.push(limit_param(&locked, "ratelimit", "r"));
    }
    let prefix = format!("{}braces:", app.redis_prefix());
    let keys = app.redis_keys(&prefix).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    b.login(&email, &password).await;
    let failure_after_success = a.login_raw(&email, WRONG_PASSWORD).await;
    a.login(&email, &password).await;

    assert_eq!(remaining, (13..=19).rev().collect::<Vec<_>>(), "one quota");
    let failures = keys.iter().find(|k| k.ends_with(&format!("lf:{email}")));
    let lock = keys.iter().find(|k| k.ends_with(&format!("ll:{email}")));
    let (Some(failures), Some(lock)) = (failures, lock) else {
        panic!("the failure count and the lock are kept in Redis: {keys:?}");
    };
    assert_eq!(
        Slot::for_key(failures),
        Slot::for_key(lock),
        "{failures}, {lock}"
    );
    failure_after_success.assert_problem(401, "invalid-credentials");
    for origin in [&a, &b] {
        let errors = scrape(origin).await.sum("users_redis_errors_total", &[]);
        assert_eq!(errors, 0.0, "{}: every Redis call answered", origin.base());
    }
}
redis_test!(an_identifier_with_braces_is_locked_out_and_cleared_through_redis);

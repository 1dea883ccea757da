//! Limits enforced at the edge: the per-address quota on `/auth/*` and the per-user quota
//! elsewhere, with their `RateLimit` headers, and the origin's body limit; what the edge
//! refuses never reaches the origin.

use super::{EdgeRuntime, LOGIN, assert_edge_headers, stack};
use crate::helpers::{Api as _, Reply, strong_password, unique_name};

/// Asserts the edge's `429` with `Retry-After` and a `RateLimit` header for `policy`
/// (`"auth-ip"`, `"user"`) with nothing left.
#[track_caller]
fn assert_limited(limited: &Reply, policy: &str) {
    limited.assert_problem(429, "rate-limited");
    limited.retry_after(60);
    assert!(
        limited
            .header("ratelimit")
            .is_some_and(|v| v.starts_with(&format!(r#""{policy}";r=0;t="#))),
        "{limited}"
    );
}

/// `RATE_LIMIT_AUTH_IP=3/60s`: the fourth `/auth/*` request from one address is refused by
/// the edge with `429`, `Retry-After` and `RateLimit` headers, and never reaches the origin;
/// other routes are limited per user (`RATE_LIMIT_USER=5/60s`).
pub async fn auth_requests_are_rate_limited_per_ip_at_the_edge<R: EdgeRuntime>(rt: &R) {
    let s = stack(
        rt,
        &[
            ("RATE_LIMIT_AUTH_IP", "3/60s"),
            ("RATE_LIMIT_USER", "5/60s"),
        ],
    )
    .await;
    let edge = s.edge();
    // Made at the origin directly: they spend none of the edge's quota.
    let user = s.app.new_user().await;
    let other = s.app.new_user().await;
    let before = s.origin_requests(LOGIN).await;

    for i in 1..=3 {
        let ok = edge.login_raw(&user.username, &user.password).await;
        assert_eq!(ok.status, 200, "login {i}: {ok}");
        assert_eq!(
            ok.header("ratelimit-policy").as_deref(),
            Some(r#""auth-ip";q=3;w=60"#),
            "login {i}: {ok}"
        );
        assert!(
            ok.header("ratelimit")
                .is_some_and(|v| v.starts_with(&format!(r#""auth-ip";r={};t="#, 3 - i))),
            "login {i}: {ok}"
        );
    }
    let limited = edge.login_raw(&user.username, &user.password).await;
    assert_limited(&limited, "auth-ip");
    assert_eq!(
        limited.header("ratelimit-policy").as_deref(),
        Some(r#""auth-ip";q=3;w=60"#),
        "{limited}"
    );
    assert_edge_headers("the edge's 429", &limited);
    assert_eq!(
        s.origin_requests(LOGIN).await,
        before + 3.0,
        "the refused login never reached the origin"
    );
    // Every /auth/* path shares the per-address quota.
    let (late, password) = (unique_name("e"), strong_password());
    let register = edge.register(&late, "late@example.com", &password).await;
    register.assert_problem(429, "rate-limited");

    // Elsewhere the quota is per user.
    for i in 1..=5 {
        let ok = edge.as_user(&user).me().await;
        assert_eq!(ok.status, 200, "read {i}: {ok}");
        assert_eq!(
            ok.header("ratelimit-policy").as_deref(),
            Some(r#""user";q=5;w=60"#),
            "read {i}: {ok}"
        );
    }
    assert_limited(&edge.as_user(&user).me().await, "user");
    edge.as_user(&other).me().await.expect_json(200);
}

/// A body over the origin's 64 KiB limit gets the `413` problem from the edge and never
/// reaches the origin; one at the limit is forwarded and judged by the origin.
pub async fn oversized_bodies_are_refused_at_the_edge<R: EdgeRuntime>(rt: &R) {
    let s = stack(rt, &[]).await;
    let edge = s.edge();
    let before = s.origin_requests(LOGIN).await;
    // `{"login":"…","password":"x"}` of `len` bytes.
    let login = |len: usize| {
        let filler = len - r#"{"login":"","password":"x"}"#.len();
        let body = format!(r#"{{"login":"{}","password":"x"}}"#, "a".repeat(filler));
        edge.post("/auth/login")
            .typed_body("application/json", body)
            .send()
    };
    let over = login(64 * 1024 + 1).await;
    over.assert_problem(413, "payload-too-large");
    assert_edge_headers("the edge's 413", &over);
    assert_eq!(
        s.origin_requests(LOGIN).await,
        before,
        "the oversized login never reached the origin"
    );
    let at_limit = login(64 * 1024).await;
    at_limit.assert_problem(401, "invalid-credentials");
    assert_eq!(s.origin_requests(LOGIN).await, before + 1.0);
}

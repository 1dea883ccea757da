//! The origin unreachable behind the edge ([`stack_behind_proxy`]): cut, a cached profile is
//! served stale and everything else fails fast with `503`; hanging, each request costs one
//! `ORIGIN_TIMEOUT_MS` and no more.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{EdgeRuntime, assert_edge_headers, stack_behind_proxy};
use crate::helpers::Api as _;

/// With the origin unreachable (its connection cut), a profile cached earlier is served stale
/// (`STALE_IF_ERROR` past `PROFILE_CACHE_TTL`), everything else is a `503` problem with
/// `Retry-After`; when the origin is back, answers are fresh again.
pub async fn origin_down_serves_stale_reads_and_fails_writes_fast<R: EdgeRuntime>(rt: &R) {
    let (s, proxy) = stack_behind_proxy(rt, 1000).await;
    let edge = s.edge();
    let user = edge.new_user().await;
    let uncached = edge.new_user().await;
    let as_user = edge.as_user(&user);
    let fresh = as_user.me().await;
    fresh.expect_json(200);
    assert_eq!(fresh.cache().as_deref(), Some("miss"));

    proxy.cut();
    // Past PROFILE_CACHE_TTL: only the origin's absence lets the entry be served.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let started = Instant::now();
    let stale = as_user.me().await;
    assert_eq!(stale.status, 200, "{stale}");
    assert_eq!(stale.cache().as_deref(), Some("stale"), "{stale}");
    assert_eq!(stale.text, fresh.text);
    assert_eq!(stale.header("etag"), fresh.header("etag"));
    assert_edge_headers("a stale read", &stale);

    let write = as_user
        .patch_user(user.id, &json!({"display_name": "Nope"}))
        .await;
    write.assert_problem(503, "unavailable");
    write.retry_after(60);
    assert_edge_headers("the edge's 503", &write);
    let login = edge.login_raw(&user.username, &user.password).await;
    login.assert_problem(503, "unavailable");
    login.retry_after(60);
    // Nothing cached for this one: nothing to serve.
    let nothing = edge.as_user(&uncached).me().await;
    nothing.assert_problem(503, "unavailable");
    // A refused connection fails at once: no waiting for ORIGIN_TIMEOUT_MS.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "four requests to a cut origin took {:?}",
        started.elapsed()
    );
    // The edge's log says which call failed (the path, never the query).
    let path = format!("PATCH /users/{}", user.id);
    wait_for_log(&s, &format!("origin unreachable: {path}: ")).await;

    // Back: fresh answers again.
    proxy.restore();
    let mut back = None;
    for _ in 0..50 {
        let reply = as_user.me().await;
        if reply.status == 200 && reply.cache().as_deref() == Some("miss") {
            back = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back.is_some(), "the edge reaches the origin again");
    let patch = json!({"display_name": "Back"});
    as_user.patch_user(user.id, &patch).await.expect_json(200);
}

/// With the origin hanging (connections accepted, nothing answered), a write gets its `503`
/// and a cached profile its stale answer after `ORIGIN_TIMEOUT_MS`, not more (README: "`503`
/// problem + `Retry-After` after `ORIGIN_TIMEOUT_MS`"), on every request.
pub async fn a_hanging_origin_costs_one_origin_timeout<R: EdgeRuntime>(rt: &R) {
    const TIMEOUT_MS: u64 = 2000;
    let (s, proxy) = stack_behind_proxy(rt, TIMEOUT_MS).await;
    let edge = s.edge();
    let user = edge.new_user().await;
    let as_user = edge.as_user(&user);
    as_user.me().await.expect_json(200);

    proxy.blackhole();
    let bound = Duration::from_millis(TIMEOUT_MS + 1200);
    // Twice: the second request must not pay again for what the first already learned.
    let mut waits = Vec::new();
    for _ in 0..2 {
        let started = Instant::now();
        let write = as_user
            .patch_user(user.id, &json!({"display_name": "Nope"}))
            .await;
        let write_took = started.elapsed();
        write.assert_problem(503, "unavailable");
        write.retry_after(60);
        assert!(
            write_took >= Duration::from_millis(TIMEOUT_MS - 100),
            "the write gave up before ORIGIN_TIMEOUT_MS: {write_took:?}"
        );
        // By now the cached profile is past PROFILE_CACHE_TTL (1 s).
        let started = Instant::now();
        let stale = as_user.me().await;
        let read_took = started.elapsed();
        assert_eq!(stale.status, 200, "{stale}");
        assert_eq!(stale.cache().as_deref(), Some("stale"), "{stale}");
        waits.push(("write", write_took));
        waits.push(("stale read", read_took));
    }
    eprintln!("hanging origin, ORIGIN_TIMEOUT_MS {TIMEOUT_MS}: {waits:?}");
    wait_for_log(
        &s,
        &format!("origin unreachable: PATCH /users/{}: no answer within ORIGIN_TIMEOUT_MS ({TIMEOUT_MS} ms)", user.id),
    )
    .await;
    assert!(
        waits.iter().all(|(_, took)| *took <= bound),
        "with the origin hanging, requests waited more than ORIGIN_TIMEOUT_MS ({TIMEOUT_MS} ms) \
         + 1.2 s: {waits:?}"
    );
}

/// Waits (up to 5 s: runtimes write their logs asynchronously) for a line of the edge's log
/// holding `needle`.
async fn wait_for_log(s: &super::Stack, needle: &str) {
    for _ in 0..50 {
        if s.edge.logs().lines().any(|l| l.contains(needle)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the edge logged no line holding {needle:?}:\n{}",
        s.edge.logs()
    );
}

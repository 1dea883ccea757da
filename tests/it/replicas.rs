//! Replicas that answer from memory and stay right under revocation (SPEC §11): three origins
//! on one database, each following PostgreSQL's change notifications.
//!
//! - A logout-all on replica A is refused at once on A, and on B and C within the bound this
//!   test measures over [`ROUNDS`] revocations (p50/p99 written to
//!   `target/replica-revocations.json`).
//! - A replica whose notification connection is cut, killed or silently stalled falls back to
//!   checking every request against PostgreSQL (it never serves a revoked token), says so in
//!   `/readyz` and `users_memo_following`, and recovers.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{Api as _, Endpoint, TestApp, spawn_app};
use crate::proxy::TcpProxy;
use crate::testdb::connect;

/// Revocations measured.
const ROUNDS: usize = 200;
/// The longest a replica may serve a token revoked elsewhere: the notification delay, or, when
/// the connection stalls silently, the heartbeat period plus its timeout (1.5 s); with room for
/// a loaded machine. A replica that never heard would serve it until it expired.
const BOUND: Duration = Duration::from_secs(5);

/// What `GET /readyz` says of the notifications.
async fn notifications(replica: &Endpoint) -> String {
    let reply = replica.get("/readyz").send().await;
    assert_eq!(
        reply.status, 200,
        "a replica in fallback is still ready: {reply}"
    );
    reply.json()["checks"]["notifications"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Waits until `replica` says `wanted` (a prefix) of its notifications; panics after `within`.
async fn until_notifications(replica: &Endpoint, wanted: &str, within: Duration) -> String {
    let start = Instant::now();
    loop {
        let now = notifications(replica).await;
        if now.starts_with(wanted) {
            return now;
        }
        assert!(
            start.elapsed() < within,
            "{} still says {now:?}, not {wanted:?}, after {within:?}",
            replica.base()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A counter of `users_memo_reads_total`.
async fn memo_reads(replica: &Endpoint, kind: &str, from: &str) -> f64 {
    crate::scrape::scrape(replica)
        .await
        .sum("users_memo_reads_total", &[("kind", kind), ("from", from)])
}

async fn metric(replica: &Endpoint, name: &str) -> f64 {
    crate::scrape::scrape(replica).await.sum(name, &[])
}

/// The `p`-th percentile of `lags`, in milliseconds.
fn percentile(lags: &mut [Duration], p: f64) -> f64 {
    lags.sort();
    let rank = ((p / 100.0) * lags.len() as f64).ceil() as usize;
    lags[rank.clamp(1, lags.len()) - 1].as_secs_f64() * 1000.0
}

/// Polls `replica` with `token` until it is refused; returns how long after `since` that was.
async fn refused_after(replica: &Endpoint, token: &str, since: Instant) -> Duration {
    loop {
        let reply = replica.bearer(token).me().await;
        if reply.status == 401 {
            reply.assert_invalid_token();
            return since.elapsed();
        }
        assert_eq!(reply.status, 200, "{reply}");
        assert!(
            since.elapsed() < BOUND,
            "{} still serves a revoked token {:?} after the revocation",
            replica.base(),
            since.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_logout_all_is_refused_at_once_on_its_replica_and_within_the_bound_on_the_others() {
    let app = spawn_app().await;
    let a = app.endpoint();
    let b = app.spawn_replica().await;
    let c = app.spawn_replica().await;
    for replica in [&a, &b, &c] {
        until_notifications(replica, "following", BOUND).await;
    }
    let user = app.new_user().await;
    let memory_before = memo_reads(&b, "principal", "memory").await;
    let (mut lag_b, mut lag_c) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let token = a.login(&user.username, &user.password).await.access_token;
        // Each replica reads the principal once from PostgreSQL, then from memory.
        for replica in [&a, &b, &c] {
            for _ in 0..2 {
                let me = replica.bearer(&token).me().await;
                assert_eq!(me.status, 200, "round {round}: {me}");
            }
        }
        let logout = a.bearer(&token).logout_all().await;
        assert_eq!(logout.status, 204, "{logout}");
        let revoked = Instant::now();
        a.bearer(&token).me().await.assert_invalid_token();
        let (lb, lc) = tokio::join!(
            refused_after(&b, &token, revoked),
            refused_after(&c, &token, revoked)
        );
        lag_b.push(lb);
        lag_c.push(lc);
    }
    // The warm reads really came from memory: at least one per round on B.
    let from_memory = memo_reads(&b, "principal", "memory").await - memory_before;
    assert!(
        from_memory >= ROUNDS as f64,
        "B answered {from_memory} authorisations from memory over {ROUNDS} rounds"
    );
    let mut all: Vec<Duration> = lag_b.iter().chain(&lag_c).copied().collect();
    let report = json!({
        "rounds": ROUNDS,
        "replicas": 3,
        "b": {"p50_ms": percentile(&mut lag_b, 50.0), "p99_ms": percentile(&mut lag_b, 99.0), "max_ms": percentile(&mut lag_b, 100.0)},
        "c": {"p50_ms": percentile(&mut lag_c, 50.0), "p99_ms": percentile(&mut lag_c, 99.0), "max_ms": percentile(&mut lag_c, 100.0)},
        "both": {"p50_ms": percentile(&mut all, 50.0), "p99_ms": percentile(&mut all, 99.0)},
        "measured_from": "the logout-all answer on A to the first 401 on the replica (one request's round trip included)",
    });
    eprintln!("revocation lag on the other replicas: {report}");
    let out =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/replica-revocations.json");
    let _ = std::fs::write(out, serde_json::to_vec_pretty(&report).unwrap_or_default());
}

/// A login writes nothing a replica remembers (a session, the audit log): it answers without
/// waiting to hear its own writes. A write that can revoke (a refresh rotation, a logout-all)
/// still waits, and its replica refuses what it revoked on the very next request.
#[tokio::test(flavor = "multi_thread")]
async fn a_login_answers_without_settling_and_a_revoking_write_settles() {
    let app = spawn_app().await;
    let a = app.endpoint();
    until_notifications(&a, "following", BOUND).await;
    let user = app.new_user().await;
    let settles = metric(&a, "users_memo_settles_total").await;

    let token = a.login(&user.username, &user.password).await;
    let form = crate::oauth::password_grant(&a, &user).await;
    assert_eq!(form.status, 200, "{form}");
    let wrong = a.login_raw(&user.username, "not the password").await;
    assert_eq!(wrong.status, 401, "{wrong}");
    assert_eq!(
        metric(&a, "users_memo_settles_total").await,
        settles,
        "a login waited to hear its own writes"
    );
    assert_eq!(a.bearer(&token.access_token).me().await.status, 200);

    let rotated = crate::oauth::refresh_grant(&a, &token.refresh_token).await;
    assert_eq!(rotated.status, 200, "{rotated}");
    assert_eq!(metric(&a, "users_memo_settles_total").await, settles + 1.0);
    let logout = a.bearer(&token.access_token).logout_all().await;
    assert_eq!(logout.status, 204, "{logout}");
    assert_eq!(metric(&a, "users_memo_settles_total").await, settles + 2.0);
    a.bearer(&token.access_token)
        .me()
        .await
        .assert_invalid_token();
}

/// An origin over `app`'s database whose notification connection goes through `proxy`.
async fn replica_behind(app: &TestApp, proxy: &TcpProxy) -> Endpoint {
    let addr = proxy.addr().to_string();
    app.spawn_replica_with(|vars| {
        let url = vars["DATABASE_URL"].replace("127.0.0.1:5432", &addr);
        vars.insert("DATABASE_LISTEN_URL".into(), url);
    })
    .await
}

/// An origin, a proxy to PostgreSQL, and a second replica whose notification connection goes
/// through the proxy, once that replica follows.
async fn following_replica_behind_proxy() -> (TestApp, TcpProxy, Endpoint) {
    let app = spawn_app().await;
    let postgres = std::net::SocketAddr::from(([127, 0, 0, 1], 5432));
    let proxy = TcpProxy::start(postgres).await;
    let b = replica_behind(&app, &proxy).await;
    until_notifications(&b, "following", BOUND).await;
    (app, proxy, b)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_whose_notifications_are_cut_checks_postgresql_until_it_has_resynchronised() {
    let (app, proxy, b) = following_replica_behind_proxy().await;
    assert_eq!(metric(&b, "users_memo_following").await, 1.0);
    let user = app.new_user().await;
    let old = app.login(&user.username, &user.password).await.access_token;
    for _ in 0..2 {
        assert_eq!(b.bearer(&old).me().await.status, 200);
    }

    proxy.cut();
    let why = until_notifications(&b, "fallback", BOUND).await;
    assert_eq!(metric(&b, "users_memo_following").await, 0.0, "{why}");
    app.endpoint().bearer(&old).logout_all().await;
    // Not a moment of stale memory: B asks PostgreSQL.
    b.bearer(&old).me().await.assert_invalid_token();
    let fresh = app.login(&user.username, &user.password).await.access_token;
    let asked = memo_reads(&b, "principal", "database").await;
    for _ in 0..3 {
        assert_eq!(b.bearer(&fresh).me().await.status, 200);
    }
    assert_eq!(
        memo_reads(&b, "principal", "database").await - asked,
        3.0,
        "in fallback every request is checked against PostgreSQL"
    );
    // Still cut: still in fallback (it keeps trying, and failing, to reconnect).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(notifications(&b).await.starts_with("fallback"));

    let resyncs = metric(&b, "users_memo_resyncs_total").await;
    proxy.restore();
    until_notifications(&b, "following", Duration::from_secs(15)).await;
    assert_eq!(metric(&b, "users_memo_resyncs_total").await, resyncs + 1.0);
    b.bearer(&old).me().await.assert_invalid_token();
    let memory = memo_reads(&b, "principal", "memory").await;
    for _ in 0..3 {
        assert_eq!(b.bearer(&fresh).me().await.status, 200);
    }
    assert!(
        memo_reads(&b, "principal", "memory").await - memory >= 2.0,
        "following again, B answers from memory"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_or_stalled_notification_connection_is_noticed_and_replaced() {
    let (app, proxy, b) = following_replica_behind_proxy().await;
    let resyncs = metric(&b, "users_memo_resyncs_total").await;

    // Killed by the server (an operator's pg_terminate_backend, a failover): a new connection
    // listens and the memory is resynchronised.
    let port = b
        .host_port()
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    let db = connect(&app.db_name).await;
    let killed = db
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&format!("users-origin listen port {port}")],
        )
        .await
        .expect("terminate the listen connection");
    assert_eq!(killed, 1, "B has one notification connection");
    let start = Instant::now();
    while metric(&b, "users_memo_resyncs_total").await < resyncs + 1.0 {
        assert!(start.elapsed() < BOUND, "B did not listen again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    until_notifications(&b, "following", BOUND).await;
    let user = app.new_user().await;
    let token = app.login(&user.username, &user.password).await.access_token;
    assert_eq!(b.bearer(&token).me().await.status, 200);
    app.endpoint().bearer(&token).logout_all().await;
    refused_after(&b, &token, Instant::now()).await;

    // Stalled silently (a partition that sends nothing, not even a reset): the heartbeat
    // notices within its period plus its timeout.
    proxy.blackhole();
    let stalled = Instant::now();
    let why = until_notifications(&b, "fallback", BOUND).await;
    assert!(why.contains("heartbeat"), "{why}");
    eprintln!(
        "a stalled notification connection was noticed after {:?}",
        stalled.elapsed()
    );
    proxy.restore();
    until_notifications(&b, "following", Duration::from_secs(15)).await;
}

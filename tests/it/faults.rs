//! Sabotage of the origin's dependencies, one origin at a time (the shared servers are never
//! touched): Redis cut or hanging behind a [`TcpProxy`], PostgreSQL connections killed under a
//! write load, and PostgreSQL cut or hanging behind a proxy.
//!
//! The contract: Redis is only an accelerator (requests keep being served from PostgreSQL,
//! with bounded latency, and the cache is used again when Redis returns, without serving what
//! changed meanwhile as stale); PostgreSQL trouble is a `503` problem with `Retry-After`, never
//! a `500` and never a lost acknowledged write, and the pool recovers by itself.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use futures::future::join_all;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{
    Api as _, Credentials, Endpoint, Reply, TestApp, TestUser, spawn_app, spawn_app_set,
    spawn_app_with, strong_password, unique_name,
};
use crate::proxy::TcpProxy;
use crate::testdb::connect;

/// The slowest answer accepted from an origin whose Redis is gone.
const REDIS_DOWN_BUDGET: Duration = Duration::from_secs(2);

fn redis_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 6379))
}

fn postgres_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 5432))
}

/// Runs `request`, asserting it completes within `budget`; returns its output.
async fn within<T>(what: &str, budget: Duration, request: impl Future<Output = T>) -> T {
    let start = Instant::now();
    let resp = request.await;
    let took = start.elapsed();
    assert!(took < budget, "{what} took {took:?} (budget {budget:?})");
    resp
}

/// Polls `GET /readyz` until it answers `status` (10 s at most).
async fn wait_for_readyz(app: &TestApp, status: u16) {
    let mut last = 0;
    for _ in 0..100 {
        last = app.get("/readyz").send().await.status;
        if last == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("/readyz still answers {last}, not {status}");
}

/// An origin whose `REDIS_URL` goes through a proxy, and a user whose view is cached.
async fn app_behind_redis_proxy() -> (TestApp, TcpProxy, TestUser) {
    let proxy = TcpProxy::start(redis_addr()).await;
    let url = format!("redis://{}", proxy.addr());
    let app = spawn_app_set(&[("REDIS_URL", &url)]).await;
    let user = app.new_user().await;
    for _ in 0..2 {
        app.as_user(&user).me().await.expect_status(200);
    }
    assert!(
        app.metrics().await.sum("users_cache_hits_total", &[]) >= 1.0,
        "the cache works through the proxy"
    );
    (app, proxy, user)
}

/// `users_cache_hits_total` of the app.
async fn cache_hits(app: &TestApp) -> f64 {
    app.metrics().await.sum("users_cache_hits_total", &[])
}

#[tokio::test(flavor = "multi_thread")]
async fn without_redis_requests_are_served_from_postgres_and_the_cache_returns_with_it() {
    let (app, proxy, user) = app_behind_redis_proxy().await;

    proxy.cut();

    let budget = REDIS_DOWN_BUDGET;
    let (as_user, as_admin) = (app.as_user(&user), app.as_admin());
    let no_redis = json!({"display_name": "No Redis"});
    let me = within("GET /users/me", budget, as_user.me()).await;
    assert_eq!(me.expect_json(200)["id"], json!(user.id));
    let login = app.login_raw(&user.username, &user.password);
    let login = within("login", budget, login).await;
    let read = within("GET /users/{id}", budget, as_admin.get_user(user.id)).await;
    let patch = as_user.patch_user(user.id, &no_redis);
    let patch = within("PATCH /users/{id}", budget, patch).await;
    for resp in [login, read, patch] {
        resp.expect_status(200);
    }
    assert_unready_but_alive(&app, budget).await;

    proxy.restore();

    wait_for_readyz(&app, 200).await;
    let before = cache_hits(&app).await;
    let mut hits = before;
    for _ in 0..50 {
        as_user.me().await.expect_status(200);
        hits = cache_hits(&app).await;
        if hits > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(hits > before, "the cache is used again once Redis is back");
}

/// What changed while Redis was unreachable must not be hidden by the entries cached before:
/// neither for the writer (read-your-writes) nor for anyone else.
#[tokio::test(flavor = "multi_thread")]
async fn writes_made_while_redis_was_cut_are_not_hidden_by_older_entries_afterwards() {
    let (app, proxy, user) = app_behind_redis_proxy().await;
    let doomed = app.new_user().await;
    let (as_user, as_admin) = (app.as_user(&user), app.as_admin());
    for _ in 0..2 {
        as_admin.get_user(doomed.id).await.expect_status(200);
    }

    proxy.cut();
    let patch = json!({"display_name": "Changed Offline"});
    let patched = as_user.patch_user(user.id, &patch).await;
    patched.expect_json(200);
    as_admin.delete_user(doomed.id).await.expect_status(204);
    proxy.restore();
    wait_for_readyz(&app, 200).await;

    let me = as_user.me().await;
    let me_body = me.expect_json(200);
    let gone = as_admin.get_user(doomed.id).await;

    assert_eq!(
        (me.header("etag"), &me_body["display_name"], gone.status),
        (patched.header("etag"), &json!("Changed Offline"), 404),
        "(the writer's ETag, display name) after its PATCH, and the deleted user's status"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_redis_costs_bounded_latency() {
    let (app, proxy, user) = app_behind_redis_proxy().await;

    proxy.blackhole();

    for i in 0..3 {
        let me = within("GET /users/me", REDIS_DOWN_BUDGET, app.as_user(&user).me()).await;
        assert_eq!(me.status, 200, "attempt {i}: {me}");
        let login = app.login_raw(&user.username, &user.password);
        let login = within("login", REDIS_DOWN_BUDGET, login).await;
        assert_eq!(login.status, 200, "attempt {i}: {login}");
    }
    let ready = within("GET /readyz", REDIS_DOWN_BUDGET, app.get("/readyz").send()).await;
    ready.assert_problem(503, "unavailable");

    proxy.restore();
    wait_for_readyz(&app, 200).await;
}

/// Terminates every backend of the app's database but the test's own (`spare`); returns how
/// many were terminated.
async fn kill_backends(db_name: &str, spare: i32) -> usize {
    let admin = connect("postgres").await;
    admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid() AND pid <> $2",
            &[&db_name, &spare],
        )
        .await
        .expect("terminate backends")
        .len()
}

/// Asserts a failed request is a `503 unavailable` problem with `Retry-After`.
fn assert_unavailable(resp: &Reply, what: &str) {
    let retry_after = resp.header("retry-after");
    let body = resp.assert_problem(503, "unavailable");
    assert!(
        retry_after.is_some_and(|s| s.parse::<u32>().is_ok_and(|s| s >= 1)),
        "{what}: 503 with a Retry-After; body {body}"
    );
}

/// Asserts `/readyz` says `503 unavailable` within `budget` while `/healthz` says `200`.
async fn assert_unready_but_alive(app: &TestApp, budget: Duration) {
    let ready = within("GET /readyz", budget, app.get("/readyz").send()).await;
    ready.assert_problem(503, "unavailable");
    app.get("/healthz").send().await.expect_status(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_database_connections_lose_no_acknowledged_write_and_the_pool_recovers() {
    const CHAINS: usize = 6;
    const PATCHES_PER_CHAIN: usize = 10;
    const REGISTRATIONS: usize = 20;
    let app = spawn_app().await;
    let mut users = Vec::new();
    for _ in 0..CHAINS {
        users.push(app.new_user().await);
    }
    let own_pid: i32 = app
        .db
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let done = std::sync::atomic::AtomicBool::new(false);

    // Each chain patches one user sequentially, remembering every attempt's outcome.
    let chains = users.iter().enumerate().map(|(c, user)| {
        let app = &app;
        async move {
            let mut outcomes = Vec::new();
            for i in 0..PATCHES_PER_CHAIN {
                let name = format!("chain {c} patch {i}");
                let patch = json!({"display_name": name});
                let resp = app.as_user(user).patch_user(user.id, &patch).await;
                let status = resp.status;
                if status != 200 {
                    assert_unavailable(&resp, &format!("PATCH {name} ({status})"));
                }
                outcomes.push((name, status));
            }
            outcomes
        }
    });
    let registrations = futures::stream::iter(0..REGISTRATIONS)
        .map(|_| {
            let app = &app;
            async move {
                let username = unique_name("k");
                let email = format!("{username}@example.com");
                let resp = app.register(&username, &email, &strong_password()).await;
                let status = resp.status;
                if status == 201 {
                    let body = resp.expect_json(201);
                    Some(body["id"].as_str().unwrap().parse::<Uuid>().unwrap())
                } else {
                    assert_unavailable(&resp, &format!("register ({status})"));
                    None
                }
            }
        })
        .buffer_unordered(4)
        .collect::<Vec<_>>();
    let killer = async {
        let mut killed = 0;
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if done.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            killed += kill_backends(&app.db_name, own_pid).await;
        }
        killed
    };
    let load = async {
        let out = tokio::join!(join_all(chains), registrations);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        out
    };
    let ((patches, registered), killed) = tokio::join!(load, killer);

    assert!(
        killed > 0,
        "some of the origin's connections were terminated"
    );
    let db = &app.db;
    for (user, outcomes) in users.iter().zip(&patches) {
        let row = db
            .query_one(
                "SELECT version, display_name FROM users WHERE id = $1",
                &[&user.id],
            )
            .await
            .unwrap();
        let (version, name): (i64, Option<String>) = (row.get(0), row.get(1));
        let acknowledged = outcomes.iter().filter(|(_, s)| *s == 200).count() as i64;
        // Version 1 is the registration; every acknowledged PATCH added one.
        let patches_stored = version - 1;
        assert!(
            patches_stored >= acknowledged,
            "{acknowledged} acknowledged PATCHes, version {version}: {outcomes:?}"
        );
        // The row holds the last acknowledged value, or a later attempt whose outcome is
        // unknown to the client (its commit may have landed before the connection died).
        if let Some(last_ok) = outcomes.iter().rposition(|(_, s)| *s == 200) {
            let allowed: Vec<&String> = outcomes[last_ok..].iter().map(|(n, _)| n).collect();
            assert!(
                name.as_ref().is_some_and(|n| allowed.contains(&n)),
                "display_name {name:?}, expected one of {allowed:?}"
            );
        }
    }
    for id in registered.iter().flatten() {
        let n = app
            .count("SELECT count(*) FROM users WHERE id = $1", &[id])
            .await;
        assert_eq!(n, 1, "acknowledged registration {id} is stored");
    }
    let ok_patches = patches.iter().flatten().filter(|(_, s)| *s == 200).count();
    let ok_registrations = registered.iter().flatten().count();
    assert!(
        ok_patches > 0 && ok_registrations > 0,
        "some writes succeeded ({ok_patches} PATCHes, {ok_registrations} registrations)"
    );

    // The pool recovers without a restart: connections killed while idle are replaced.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for user in &users {
        app.as_user(user).me().await.expect_status(200);
        let after = json!({"display_name": "After"});
        app.as_user(user)
            .patch_user(user.id, &after)
            .await
            .expect_status(200);
    }
    app.login(&users[0].username, &users[0].password).await;
    app.get("/readyz").send().await.expect_status(200);
}

/// An origin whose `DATABASE_URL` goes through a proxy.
async fn app_behind_postgres_proxy() -> (TestApp, TcpProxy) {
    let proxy = TcpProxy::start(postgres_addr()).await;
    let addr = proxy.addr().to_string();
    let app = spawn_app_with(|v| {
        let url = v["DATABASE_URL"].replace("127.0.0.1:5432", &addr);
        v.insert("DATABASE_URL".into(), url);
    })
    .await;
    (app, proxy)
}

#[tokio::test(flavor = "multi_thread")]
async fn while_postgres_is_cut_the_api_answers_503_and_recovers_after() {
    let (app, proxy) = app_behind_postgres_proxy().await;
    let user = app.new_user().await;
    let budget = Duration::from_secs(6);

    proxy.cut();

    let me = within("GET /users/me", budget, app.as_user(&user).me()).await;
    assert_unavailable(&me, "GET /users/me");
    let read = within("GET /users/{id}", budget, app.as_admin().get_user(user.id)).await;
    assert_unavailable(&read, "GET /users/{id}");
    let login = app.login_raw(&user.username, &user.password);
    assert_unavailable(&within("login", budget, login).await, "login");
    let account = Credentials::fresh("cut");
    let register = app.register(&account.username, &account.email, &account.password);
    assert_unavailable(&within("register", budget, register).await, "register");
    assert_unready_but_alive(&app, budget).await;

    proxy.restore();

    wait_for_readyz(&app, 200).await;
    app.as_user(&user).me().await.expect_status(200);
    let pair = app.login(&user.username, &user.password).await;
    let back = json!({"display_name": "Back"});
    let resp = app
        .bearer(&pair.access_token)
        .patch_user(user.id, &back)
        .await;
    assert_eq!(resp.expect_json(200)["display_name"], json!("Back"));
}

/// A PostgreSQL that stops answering (a network partition: connections stay open, nothing
/// comes back) must not hold requests forever: they fail with `503` within a bounded time.
#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_postgres_yields_503_within_bounded_time() {
    let (app, proxy) = app_behind_postgres_proxy().await;
    let user = app.new_user().await;
    // Several pooled connections, so requests meet idle connections that now hang.
    let as_user = app.as_user(&user);
    join_all((0..4).map(|_| as_user.me())).await;
    let budget = Duration::from_secs(10);
    let patient = Endpoint::with_timeout(&app.address, Duration::from_secs(15));

    proxy.blackhole();
    // The replica's notification connection hangs too: its heartbeat notices within 1.5 s (every
    // 0.5 s, answered within 1 s), and from then on nothing is answered from memory.
    tokio::time::sleep(Duration::from_millis(2000)).await;

    let attempts = (0..3).map(|_| {
        let call = patient.as_user(&user).get("/users/me");
        async move {
            let start = Instant::now();
            let resp = call.try_send().await;
            (start.elapsed(), resp)
        }
    });
    let results = join_all(attempts).await;
    let ready = within(
        "GET /readyz",
        Duration::from_secs(4),
        app.get("/readyz").send(),
    )
    .await;

    proxy.restore();
    for (took, resp) in results {
        let resp = resp.unwrap_or_else(|e| panic!("no answer after {took:?}: {e}"));
        assert!(took < budget, "answered after {took:?}");
        assert_unavailable(&resp, "GET /users/me");
    }
    ready.assert_problem(503, "unavailable");
}

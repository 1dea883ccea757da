//! Observability and addressing (SPEC §4): the Prometheus metrics at `/metrics`, requests
//! counted by route template, the `/v1` alias of every route, and request-id hygiene (a good
//! client id is echoed and recorded; a malformed one is replaced by a generated one).

use serde_json::{Value, json};

use crate::helpers::{Api as _, spawn_app, spawn_app_and_user, strong_password, unique_name};

/// Every metric family the origin documents.
const FAMILIES: [&str; 20] = [
    "http_requests_total",
    "http_request_duration_seconds",
    "users_hash_queue_depth",
    "users_hash_rejections_total",
    "users_db_pool_connections",
    "users_db_pool_available",
    "users_db_pool_waiters",
    "users_cache_hits_total",
    "users_cache_misses_total",
    "users_rate_limited_total",
    "users_hash_queue_capacity",
    "users_db_pool_max_size",
    "users_ready",
    "users_redis_fallback",
    "users_redis_errors_total",
    "users_mail_outbox_messages",
    "users_mail_outbox_oldest_age_seconds",
    "users_login_failures_total",
    "users_login_lockouts_total",
    "users_refresh_reuse_total",
];

/// Whether `id` is 1–128 characters of `[A-Za-z0-9._:-]`.
fn well_formed_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-'))
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_expose_every_documented_family() {
    let (app, user) = spawn_app_and_user().await;
    // Something for every counter to count: a cache miss and hit, and a login lock-out.
    for _ in 0..2 {
        app.as_admin().get_user(user.id).await;
    }
    let ghost = unique_name("ghost");
    for _ in 0..6 {
        app.login_raw(&ghost, "some-wrong-password-000").await;
    }

    let metrics = app.metrics().await;

    for family in FAMILIES {
        assert!(
            metrics.declares(family),
            "{family} is exported:\n{}",
            metrics.text
        );
    }
    assert!(
        metrics
            .matching("http_request_duration_seconds_bucket", &[])
            .any(|s| s.labels.get("le").is_some_and(|le| le == "+Inf")),
        "the latency histogram has buckets"
    );
    assert!(metrics.sum("http_request_duration_seconds_count", &[]) >= 1.0);
    assert!(metrics.sum("users_cache_hits_total", &[]) >= 1.0);
    assert!(metrics.sum("users_cache_misses_total", &[]) >= 1.0);
    assert!(metrics.sum("users_db_pool_connections", &[]) >= 1.0);
    assert_eq!(
        metrics.sum("users_rate_limited_total", &[("scope", "login-failures")]),
        1.0
    );
    // Five failures, the fifth locking the identifier; the sixth attempt met the lock.
    assert_eq!(
        (
            metrics.sum("users_login_failures_total", &[]),
            metrics.sum("users_login_lockouts_total", &[]),
        ),
        (5.0, 1.0),
        "(failed logins, lock-outs)"
    );
    assert!(metrics.sum("users_hash_queue_capacity", &[]) >= 1.0);
    assert!(metrics.sum("users_db_pool_max_size", &[]) >= 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_are_counted_by_route_template_not_by_raw_path() {
    let (app, user) = spawn_app_and_user().await;
    let before = app.metrics().await;

    let found = app.as_admin().get_user(user.id).await;
    let missing = app.as_admin().get_user(uuid::Uuid::new_v4()).await;
    let after = app.metrics().await;

    found.expect_status(200);
    missing.expect_status(404);
    let count = |m: &crate::scrape::Scrape, status: &str| {
        m.sum(
            "http_requests_total",
            &[
                ("method", "GET"),
                ("route", "/users/{id}"),
                ("status", status),
            ],
        )
    };
    assert_eq!(count(&after, "200") - count(&before, "200"), 1.0);
    assert_eq!(count(&after, "404") - count(&before, "404"), 1.0);
    assert!(
        after
            .matching(
                "http_request_duration_seconds_count",
                &[("route", "/users/{id}")]
            )
            .next()
            .is_some(),
        "latency is recorded per route template"
    );
    assert!(
        !after.text.contains(&user.id.to_string()),
        "no raw id ever becomes a label:\n{}",
        after.text
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_v1_prefix_answers_like_the_unversioned_paths() {
    let app = spawn_app().await;
    let username = unique_name("v");
    let email = format!("{username}@example.com");
    let password = strong_password();

    let registered = app
        .post("/v1/auth/register")
        .json(&json!({"username": username, "email": email, "password": password}))
        .send()
        .await;
    assert!(registered.header("location").is_some(), "a Location");
    let created = registered.expect_json(201);
    let login = app
        .post("/v1/auth/login")
        .json(&json!({"login": username, "password": password}))
        .send()
        .await;
    let tokens = login.expect_json(200);
    let token = tokens["access_token"].as_str().expect("an access token");
    let as_user = app.bearer(token);
    let me_v1 = as_user.get("/v1/users/me").send().await;
    let me = as_user.me().await;
    let id = created["id"].as_str().unwrap();
    let by_id_v1 = app.as_admin().get(&format!("/v1/users/{id}")).send().await;

    assert_eq!(me_v1.expect_json(200), me.expect_json(200));
    assert_eq!(me_v1.json()["id"], created["id"]);
    assert_eq!(me_v1.header("etag"), me.header("etag"));
    assert_eq!(by_id_v1.expect_json(200), me.json());
    for path in ["/v1/healthz", "/v1/readyz", "/v1/.well-known/jwks.json"] {
        let resp = app.get(path).send().await;
        assert_eq!(resp.status, 200, "{path}: {resp}");
    }
    let unauthenticated = app.get("/v1/users/me").send().await;
    unauthenticated.assert_problem(401, "unauthenticated");
    let unknown = app.get("/v1/no/such/route").send().await;
    unknown.assert_problem(404, "not-found");
    let v2 = as_user.get("/v2/users/me").send().await;
    v2.assert_problem(404, "not-found");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_well_formed_request_id_is_echoed_and_a_malformed_one_replaced() {
    let app = spawn_app().await;
    let longest = "a".repeat(128);
    let good = ["trace-01.AB_cd:ef", "x", longest.as_str()];
    let too_long = "b".repeat(129);
    let very_long = "c".repeat(200);
    let bad = [
        too_long.as_str(),
        very_long.as_str(),
        "<script>alert(1)</script>",
        "has space",
        "semi;colon",
        "",
    ];

    let health_as = |id: &str| app.get("/healthz").request_id(id).send();
    for id in good {
        let resp = health_as(id).await;
        assert_eq!(resp.header("x-request-id").as_deref(), Some(id), "{id:?}");
    }
    let mut generated = Vec::new();
    for id in bad {
        let resp = health_as(id).await;
        let echoed = resp.header("x-request-id").unwrap_or_default();
        assert_ne!(echoed, id, "{id:?} is not echoed");
        assert!(
            well_formed_request_id(&echoed),
            "{id:?} replaced by a well-formed id, got {echoed:?}"
        );
        generated.push(echoed);
    }
    generated.sort();
    generated.dedup();
    assert_eq!(generated.len(), bad.len(), "each replacement is new");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_log_records_the_replacement_not_the_hostile_request_id() {
    let (app, user) = spawn_app_and_user().await;
    let hostile = "<script>alert(1)</script>";

    let resp = app
        .post("/auth/login")
        .request_id(hostile)
        .json(&json!({"login": user.username, "password": user.password}))
        .send()
        .await;
    let generated = resp.request_id();
    let _: Value = resp.expect_json(200);

    let rows = app
        .db
        .query(
            "SELECT request_id FROM audit_log WHERE action = 'login.succeeded' \
             AND target_id = $1 ORDER BY id",
            &[&user.id],
        )
        .await
        .unwrap();
    let ids: Vec<Option<String>> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids.last().cloned().flatten(), Some(generated.clone()));
    assert!(!ids.iter().flatten().any(|id| id.contains('<')), "{ids:?}");
}

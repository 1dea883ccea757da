//! Observability and addressing (SPEC §4): the Prometheus metrics at `/metrics`, requests
//! counted by route template, the `/v1` alias of every route, and request-id hygiene (a good
//! client id is echoed and recorded; a malformed one is replaced by a generated one).

use serde_json::{Value, json};

use crate::helpers::{assert_problem, header, json_body, spawn_app, strong_password, unique_name};

/// Every metric family the origin documents.
const FAMILIES: [&str; 10] = [
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
    let app = spawn_app().await;
    let user = app.new_user().await;
    // Something for every counter to count: a cache miss and hit, and a login lock-out.
    app.get_user(&app.admin.access, user.id).await;
    app.get_user(&app.admin.access, user.id).await;
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
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_are_counted_by_route_template_not_by_raw_path() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let before = app.metrics().await;

    let found = app.get_user(&app.admin.access, user.id).await;
    let missing = app.get_user(&app.admin.access, uuid::Uuid::new_v4()).await;
    let after = app.metrics().await;

    assert_eq!(found.status(), 200);
    assert_eq!(missing.status(), 404);
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
        .await
        .unwrap();
    assert!(header(&registered, "location").is_some(), "a Location");
    let created = json_body(registered, 201).await;
    let login = app
        .post("/v1/auth/login")
        .json(&json!({"login": username, "password": password}))
        .send()
        .await
        .unwrap();
    let tokens = json_body(login, 200).await;
    let token = tokens["access_token"].as_str().expect("an access token");
    let me_v1 = app
        .get("/v1/users/me")
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let etag_v1 = header(&me_v1, "etag");
    let me_v1 = json_body(me_v1, 200).await;
    let me = app.me(token).await;
    let etag = header(&me, "etag");
    let me = json_body(me, 200).await;
    let by_id_v1 = app
        .get(&format!("/v1/users/{}", created["id"].as_str().unwrap()))
        .bearer_auth(&app.admin.access)
        .send()
        .await
        .unwrap();

    assert_eq!(me_v1, me);
    assert_eq!(me_v1["id"], created["id"]);
    assert_eq!(etag_v1, etag);
    assert_eq!(json_body(by_id_v1, 200).await, me);
    for path in ["/v1/healthz", "/v1/readyz", "/v1/.well-known/jwks.json"] {
        assert_eq!(app.get(path).send().await.unwrap().status(), 200, "{path}");
    }
    let unauthenticated = app.get("/v1/users/me").send().await.unwrap();
    assert_problem(unauthenticated, 401, "unauthenticated").await;
    let unknown = app.get("/v1/no/such/route").send().await.unwrap();
    assert_problem(unknown, 404, "not-found").await;
    let v2 = app
        .get("/v2/users/me")
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_problem(v2, 404, "not-found").await;
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

    for id in good {
        let resp = app
            .get("/healthz")
            .header("x-request-id", id)
            .send()
            .await
            .unwrap();
        assert_eq!(header(&resp, "x-request-id").as_deref(), Some(id), "{id:?}");
    }
    let mut generated = Vec::new();
    for id in bad {
        let resp = app
            .get("/healthz")
            .header("x-request-id", id)
            .send()
            .await
            .unwrap();
        let echoed = header(&resp, "x-request-id").unwrap_or_default();
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
    let app = spawn_app().await;
    let user = app.new_user().await;
    let hostile = "<script>alert(1)</script>";

    let resp = app
        .post("/auth/login")
        .header("x-request-id", hostile)
        .json(&json!({"login": user.username, "password": user.password}))
        .send()
        .await
        .unwrap();
    let generated = header(&resp, "x-request-id").expect("a request id");
    let _: Value = json_body(resp, 200).await;

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

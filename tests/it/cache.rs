//! The user-view cache behind `GET /users/{id}` and `/users/me` (SPEC §4 "Caching"): reads are
//! served from it, and it never serves a view older than one the same client already saw or
//! wrote — on one replica, across replicas sharing Redis, and with the in-process fallback.

use std::time::Duration;

use futures::future::join_all;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, header, json_body, spawn_app, spawn_app_with};
use crate::scrape::scrape;
use crate::testdb::{redis_connection, redis_keys};

/// `GET {base}/users/{id}` with `token`: status, body (JSON or null) and `ETag`.
async fn read_user(
    app: &TestApp,
    base: &str,
    token: &str,
    id: Uuid,
) -> (u16, Value, Option<String>) {
    let resp = app
        .client
        .get(format!("{base}/users/{id}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("send GET /users/{id}");
    let status = resp.status().as_u16();
    let etag = header(&resp, "etag");
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body, etag)
}

/// `users_cache_hits_total` and `users_cache_misses_total` of the origin at `base`.
async fn hits_and_misses(app: &TestApp, base: &str) -> (f64, f64) {
    let s = scrape(&app.client, base).await;
    (
        s.sum("users_cache_hits_total", &[]),
        s.sum("users_cache_misses_total", &[]),
    )
}

/// The row's `(version, display_name)` in PostgreSQL.
async fn db_row(app: &TestApp, id: Uuid) -> (i64, Option<String>) {
    let row = app
        .db
        .query_one(
            "SELECT version, display_name FROM users WHERE id = $1",
            &[&id],
        )
        .await
        .expect("the user's row");
    (row.get(0), row.get(1))
}

fn version_of(body: &Value) -> i64 {
    body["version"]
        .as_i64()
        .unwrap_or_else(|| panic!("a version in {body}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_read_is_a_cache_hit_kept_in_redis_under_the_prefix() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let (hits0, misses0) = hits_and_misses(&app, &app.address).await;

    let first = read_user(&app, &app.address, &app.admin.access, user.id).await;
    let (hits1, misses1) = hits_and_misses(&app, &app.address).await;
    let second = read_user(&app, &app.address, &app.admin.access, user.id).await;
    let (hits2, misses2) = hits_and_misses(&app, &app.address).await;

    assert_eq!(first.0, 200, "{}", first.1);
    assert_eq!((hits1 - hits0, misses1 - misses0), (0.0, 1.0), "first read");
    assert_eq!(
        (hits2 - hits1, misses2 - misses1),
        (1.0, 0.0),
        "second read"
    );
    assert_eq!(second.0, 200);
    assert_eq!(second.1, first.1, "the cached view equals the fresh one");
    assert_eq!(second.2, first.2, "and carries the same ETag");
    let mut redis = redis_connection().await;
    let key = format!("{}user:{}", app.redis_prefix(), user.id.simple());
    assert!(
        redis_keys(&mut redis, app.redis_prefix())
            .await
            .contains(&key),
        "the view is kept in Redis as {key}"
    );
    let cached_version: Option<i64> = redis::cmd("HGET")
        .arg(&key)
        .arg("v")
        .query_async(&mut redis)
        .await
        .expect("HGET");
    assert_eq!(cached_version, Some(version_of(&first.1)));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_writer_reads_its_own_patch_and_the_new_etag_at_once() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let before = app.me(&user.access).await;
    let etag_before = header(&before, "etag").expect("an ETag");
    let version_before = version_of(&json_body(before, 200).await);
    // Warm: now `/users/me` is served from the cache.
    assert_eq!(app.me(&user.access).await.status(), 200);

    let resp = app
        .patch(&format!("/users/{}", user.id))
        .bearer_auth(&user.access)
        .header("content-type", "application/merge-patch+json")
        .header("if-match", &etag_before)
        .body(json!({"display_name": "Fresh Name"}).to_string())
        .send()
        .await
        .unwrap();
    let etag_patch = header(&resp, "etag").expect("an ETag on the PATCH answer");
    let patched = json_body(resp, 200).await;

    assert_ne!(etag_patch, etag_before);
    assert_eq!(version_of(&patched), version_before + 1);
    let me = app.me(&user.access).await;
    assert_eq!(header(&me, "etag").as_deref(), Some(etag_patch.as_str()));
    assert_eq!(
        json_body(me, 200).await["display_name"],
        json!("Fresh Name")
    );
    let by_id = read_user(&app, &app.address, &user.access, user.id).await;
    assert_eq!(by_id.0, 200);
    assert_eq!(by_id.1["display_name"], json!("Fresh Name"));
    assert_eq!(by_id.2.as_deref(), Some(etag_patch.as_str()));
    let stale = app
        .get("/users/me")
        .bearer_auth(&user.access)
        .header("if-none-match", &etag_before)
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200, "the old ETag no longer matches");
    let current = app
        .get("/users/me")
        .bearer_auth(&user.access)
        .header("if-none-match", &etag_patch)
        .send()
        .await
        .unwrap();
    assert_eq!(current.status(), 304, "the new ETag matches");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_patch_on_one_replica_is_read_at_once_on_another() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let replica = app.spawn_replica().await;
    read_user(&app, &replica, &app.admin.access, user.id).await;
    let (hits0, _) = hits_and_misses(&app, &replica).await;
    let warm = read_user(&app, &replica, &app.admin.access, user.id).await;
    let (hits1, _) = hits_and_misses(&app, &replica).await;
    assert_eq!(
        hits1 - hits0,
        1.0,
        "the replica serves the view from the cache"
    );

    let resp = app
        .patch_user(
            &user.access,
            user.id,
            &json!({"display_name": "Changed Elsewhere"}),
        )
        .await;
    let etag_patch = header(&resp, "etag");
    json_body(resp, 200).await;

    let after = read_user(&app, &replica, &app.admin.access, user.id).await;
    assert_eq!(after.0, 200);
    assert_eq!(after.1["display_name"], json!("Changed Elsewhere"));
    assert_eq!(after.2, etag_patch);
    assert_eq!(version_of(&after.1), version_of(&warm.1) + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_grant_is_read_at_once_on_every_replica() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    app.create_role("support", &["users:read"]).await;
    let replica = app.spawn_replica().await;
    for base in [&app.address, &replica] {
        for _ in 0..2 {
            let (status, body, _) = read_user(&app, base, &app.admin.access, user.id).await;
            assert_eq!(status, 200);
            assert_eq!(body["roles"], json!(["user"]));
        }
    }

    let resp = app.grant_role(&app.admin.access, user.id, "support").await;
    assert_eq!(resp.status(), 204);

    for base in [&app.address, &replica] {
        let (status, body, _) = read_user(&app, base, &app.admin.access, user.id).await;
        assert_eq!(status, 200);
        let roles = body["roles"].as_array().cloned().unwrap_or_default();
        assert!(roles.contains(&json!("support")), "{base}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_user_is_gone_at_once_although_cached() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let replica = app.spawn_replica().await;
    for base in [&app.address, &replica, &app.address, &replica] {
        assert_eq!(
            read_user(&app, base, &app.admin.access, user.id).await.0,
            200
        );
    }

    let resp = app
        .delete(&format!("/users/{}", user.id))
        .bearer_auth(&app.admin.access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);

    for base in [&app.address, &replica] {
        let (status, body, _) = read_user(&app, base, &app.admin.access, user.id).await;
        assert_eq!(status, 404, "{base}: {body}");
        assert_eq!(body["type"], json!("/problems/not-found"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_redis_the_in_process_cache_hits_and_reads_your_writes() {
    let app = spawn_app_with(|vars| {
        vars.remove("REDIS_URL");
    })
    .await;
    let user = app.new_user().await;
    let (hits0, _) = hits_and_misses(&app, &app.address).await;
    read_user(&app, &app.address, &user.access, user.id).await;
    let warm = read_user(&app, &app.address, &user.access, user.id).await;
    let (hits1, _) = hits_and_misses(&app, &app.address).await;
    assert_eq!(hits1 - hits0, 1.0, "the second read is a hit");

    let resp = app
        .patch_user(
            &user.access,
            user.id,
            &json!({"display_name": "Local Name"}),
        )
        .await;
    let etag_patch = header(&resp, "etag");
    json_body(resp, 200).await;
    let after = read_user(&app, &app.address, &user.access, user.id).await;

    assert_eq!(after.0, 200);
    assert_eq!(after.1["display_name"], json!("Local Name"));
    assert_eq!(after.2, etag_patch);
    assert_eq!(version_of(&after.1), version_of(&warm.1) + 1);
    let mut redis = redis_connection().await;
    assert_eq!(
        redis_keys(&mut redis, app.redis_prefix()).await,
        Vec::<String>::new(),
        "nothing is written to Redis without REDIS_URL"
    );
}

/// Writers and readers hammer one user on two replicas. Each writer reads right after each of
/// its writes and must see that write or a later one; each reader's sequence of versions
/// never goes down; at the end both replicas serve exactly the database row.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_patches_and_reads_never_go_back_in_time() {
    const WRITERS: usize = 4;
    const WRITES: usize = 8;
    const READERS: usize = 3;
    let app = spawn_app().await;
    let user = app.new_user().await;
    let replica = app.spawn_replica().await;
    let bases = [app.address.clone(), replica.clone()];
    let done = std::sync::atomic::AtomicBool::new(false);

    let writers = (0..WRITERS).map(|w| {
        let (app, bases, user) = (&app, &bases, &user);
        async move {
            let base = &bases[w % 2];
            let token = if w % 2 == 0 {
                &user.access
            } else {
                &app.admin.access
            };
            for i in 0..WRITES {
                let name = format!("writer {w} write {i}");
                let resp = app
                    .client
                    .patch(format!("{base}/users/{}", user.id))
                    .bearer_auth(token)
                    .header("content-type", "application/merge-patch+json")
                    .body(json!({"display_name": name}).to_string())
                    .send()
                    .await
                    .unwrap();
                let written = version_of(&json_body(resp, 200).await);
                let (status, seen, _) = read_user(app, base, token, user.id).await;
                assert_eq!(status, 200);
                let seen_version = version_of(&seen);
                assert!(
                    seen_version >= written,
                    "writer {w} wrote version {written} and then read {seen_version}"
                );
                if seen_version == written {
                    assert_eq!(seen["display_name"], json!(name));
                }
            }
        }
    });
    let readers = (0..READERS).map(|r| {
        let (app, bases, user, done) = (&app, &bases, &user, &done);
        async move {
            let mut last = 0;
            let mut n = 0usize;
            while !done.load(std::sync::atomic::Ordering::Relaxed) || n < 5 {
                // Reader 2 alternates between the replicas: Redis is shared, so even that
                // sequence must never go back.
                let base = if r == 2 { &bases[n % 2] } else { &bases[r] };
                let (status, body, etag) = read_user(app, base, &app.admin.access, user.id).await;
                assert_eq!(status, 200, "{body}");
                let v = version_of(&body);
                assert!(v >= last, "reader {r} saw version {v} after {last}");
                assert_eq!(
                    etag,
                    Some(format!("\"{}-{v}\"", user.id.simple())),
                    "the ETag names the served version"
                );
                last = v;
                n += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            n
        }
    });
    let write_all = async {
        join_all(writers).await;
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    };
    let (_, reads) = tokio::join!(write_all, join_all(readers));

    assert!(reads.iter().all(|n| *n >= 5), "reads per reader: {reads:?}");
    let (db_version, db_name) = db_row(&app, user.id).await;
    assert_eq!(
        db_version,
        1 + (WRITERS * WRITES) as i64,
        "every write counted"
    );
    for base in &bases {
        for token in [&app.admin.access, &user.access] {
            let (status, body, _) = read_user(&app, base, token, user.id).await;
            assert_eq!(status, 200);
            assert_eq!(version_of(&body), db_version, "{base} serves the row");
            assert_eq!(body["display_name"], json!(db_name), "{base}");
        }
    }
}

//! The user-view cache behind `GET /users/{id}` and `/users/me` (SPEC §4 "Caching", §11): reads
//! are served from it (each replica's memory, then Redis), and a replica never serves a view
//! older than one it already served, nor one older than what its client wrote through it. Another
//! replica catches up within the notification delay ([`CATCH_UP`]; `replicas.rs` measures it).
//! With the in-process fallback too.
//! Each test over Redis runs twice ([`redis_test!`]): on the test Redis server and on the test
//! Redis Cluster.

use std::time::Duration;

use futures::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{
    Api, Endpoint, RedisKind, TestApp, TestUser, redis_test, spawn_app_and_user_on, spawn_app_set,
};
use crate::scrape::scrape;

/// The concurrent test's writers, writes per writer and readers.
const WRITERS: usize = 4;
const WRITES: usize = 8;
const READERS: usize = 3;

/// How long another replica may still serve what a write changed: the notification delay,
/// with room for a loaded machine (`replicas.rs` measures it: milliseconds).
const CATCH_UP: Duration = Duration::from_secs(5);

/// Reads `user` as `reader` from `origin` until `wanted` holds of the view, for at most
/// [`CATCH_UP`]; every view read meanwhile must pass `meanwhile`. Returns the last answer.
async fn caught_up(
    origin: &impl Api,
    reader: &TestUser,
    user: &TestUser,
    wanted: impl Fn(&crate::helpers::Reply) -> bool,
    meanwhile: impl Fn(&crate::helpers::Reply),
) -> crate::helpers::Reply {
    let start = std::time::Instant::now();
    loop {
        let read = origin.as_user(reader).get_user(user.id).await;
        if wanted(&read) {
            return read;
        }
        meanwhile(&read);
        assert!(
            start.elapsed() < CATCH_UP,
            "{} still serves {read} after {CATCH_UP:?}",
            origin.base()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// `users_cache_hits_total` and `users_cache_misses_total` of the origin `origin`.
async fn hits_and_misses(origin: &impl Api) -> (f64, f64) {
    let s = scrape(origin).await;
    (
        s.sum("users_cache_hits_total", &[]),
        s.sum("users_cache_misses_total", &[]),
    )
}

/// The row's `(version, display_name)` in PostgreSQL.
async fn db_row(app: &TestApp, user: &TestUser) -> (i64, Option<String>) {
    let sql = "SELECT version, display_name FROM users WHERE id = $1";
    let row = app
        .db
        .query_one(sql, &[&user.id])
        .await
        .expect("the user's row");
    (row.get(0), row.get(1))
}

fn version_of(body: &Value) -> i64 {
    body["version"]
        .as_i64()
        .unwrap_or_else(|| panic!("a version in {body}"))
}

/// The view of `user` that `origin` serves `reader`, asserting `200`.
async fn view_of(origin: &impl Api, reader: &TestUser, user: &TestUser) -> Value {
    origin
        .as_user(reader)
        .get_user(user.id)
        .await
        .expect_json(200)
}

async fn a_second_read_is_a_cache_hit_kept_in_redis_under_the_prefix(kind: RedisKind) {
    let (app, user) = spawn_app_and_user_on(kind).await;
    let (hits0, misses0) = hits_and_misses(&app).await;

    let first = app.as_admin().get_user(user.id).await;
    let (hits1, misses1) = hits_and_misses(&app).await;
    let second = app.as_admin().get_user(user.id).await;
    let (hits2, misses2) = hits_and_misses(&app).await;

    let first_view = first.expect_json(200);
    assert_eq!((hits1 - hits0, misses1 - misses0), (0.0, 1.0), "first read");
    assert_eq!(
        (hits2 - hits1, misses2 - misses1),
        (1.0, 0.0),
        "second read"
    );
    assert_eq!(
        second.expect_json(200),
        first_view,
        "the cached view equals the fresh one"
    );
    assert_eq!(
        second.header("etag"),
        first.header("etag"),
        "and carries the same ETag"
    );
    let key = format!("{}user:{}", app.redis_prefix(), user.id.simple());
    assert!(
        app.redis_keys(app.redis_prefix()).await.contains(&key),
        "the view is kept in Redis as {key}"
    );
    let mut hget = redis::cmd("HGET");
    hget.arg(&key).arg("v");
    let cached_version: Option<i64> = app.redis().await.query(&hget).await;
    assert_eq!(cached_version, Some(version_of(&first_view)));
}
redis_test!(a_second_read_is_a_cache_hit_kept_in_redis_under_the_prefix);

async fn the_writer_reads_its_own_patch_and_the_new_etag_at_once(kind: RedisKind) {
    let (app, user) = spawn_app_and_user_on(kind).await;
    let as_user = app.as_user(&user);
    let before = as_user.me().await;
    let etag_before = before.etag();
    let version_before = version_of(&before.expect_json(200));
    // Warm: now `/users/me` is served from the cache.
    as_user.me().await.expect_status(200);

    let resp = as_user
        .patch(&format!("/users/{}", user.id))
        .header("if-match", &etag_before)
        .merge_patch(&json!({"display_name": "Fresh Name"}))
        .send()
        .await;
    let etag_patch = resp.header("etag").expect("an ETag on the PATCH answer");
    let patched = resp.expect_json(200);

    assert_ne!(etag_patch, etag_before);
    assert_eq!(version_of(&patched), version_before + 1);
    let me = as_user.me().await;
    assert_eq!(me.header("etag").as_deref(), Some(etag_patch.as_str()));
    assert_eq!(me.expect_json(200)["display_name"], json!("Fresh Name"));
    let by_id = as_user.get_user(user.id).await;
    assert_eq!(by_id.expect_json(200)["display_name"], json!("Fresh Name"));
    assert_eq!(by_id.header("etag").as_deref(), Some(etag_patch.as_str()));
    let if_none_match = |etag: &str| {
        as_user
            .get("/users/me")
            .header("if-none-match", etag)
            .send()
    };
    let stale = if_none_match(&etag_before).await;
    assert_eq!(stale.status, 200, "the old ETag no longer matches");
    let current = if_none_match(&etag_patch).await;
    assert_eq!(current.status, 304, "the new ETag matches");
}
redis_test!(the_writer_reads_its_own_patch_and_the_new_etag_at_once);

async fn a_patch_on_one_replica_is_read_on_another_once_notified(kind: RedisKind) {
    let (app, user) = spawn_app_and_user_on(kind).await;
    let replica = app.spawn_replica().await;
    view_of(&replica, &app.admin, &user).await;
    let (hits0, _) = hits_and_misses(&replica).await;
    let warm = view_of(&replica, &app.admin, &user).await;
    let (hits1, _) = hits_and_misses(&replica).await;
    assert_eq!(
        hits1 - hits0,
        1.0,
        "the replica serves the view from the cache"
    );

    let patch = json!({"display_name": "Changed Elsewhere"});
    let resp = app.as_user(&user).patch_user(user.id, &patch).await;
    resp.expect_json(200);

    let warm_version = version_of(&warm);
    let after = caught_up(
        &replica,
        &app.admin,
        &user,
        |r| r.status == 200 && version_of(&r.json()) > warm_version,
        |r| assert_eq!(version_of(&r.json()), warm_version, "{r}"),
    )
    .await;
    let view = after.expect_json(200);
    assert_eq!(view["display_name"], json!("Changed Elsewhere"));
    assert_eq!(after.header("etag"), resp.header("etag"));
    assert_eq!(version_of(&view), warm_version + 1);
}
redis_test!(a_patch_on_one_replica_is_read_on_another_once_notified);

async fn a_role_grant_is_read_on_every_replica_once_notified(kind: RedisKind) {
    let (app, user) = spawn_app_and_user_on(kind).await;
    app.create_role("support", &["users:read"]).await;
    let origins = [app.endpoint(), app.spawn_replica().await];
    for origin in &origins {
        for _ in 0..2 {
            let view = view_of(origin, &app.admin, &user).await;
            assert_eq!(view["roles"], json!(["user"]));
        }
    }

    app.as_admin()
        .grant_role(user.id, "support")
        .await
        .expect_status(204);

    let has_support = |r: &crate::helpers::Reply| {
        r.status == 200
            && r.json()["roles"]
                .as_array()
                .is_some_and(|a| a.contains(&json!("support")))
    };
    // The granting replica at once; the other once notified.
    let at_once = view_of(&origins[0], &app.admin, &user).await;
    assert!(
        at_once["roles"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("support"))),
        "{at_once}"
    );
    caught_up(&origins[1], &app.admin, &user, has_support, |r| {
        assert_eq!(r.json()["roles"], json!(["user"]), "{r}");
    })
    .await;
}
redis_test!(a_role_grant_is_read_on_every_replica_once_notified);

async fn a_deleted_user_is_gone_although_cached(kind: RedisKind) {
    let (app, user) = spawn_app_and_user_on(kind).await;
    let origins = [app.endpoint(), app.spawn_replica().await];
    for origin in origins.iter().chain(&origins) {
        view_of(origin, &app.admin, &user).await;
    }

    app.as_admin().delete_user(user.id).await.expect_status(204);

    // The deleting replica at once; the other once notified.
    let read = origins[0].as_user(&app.admin).get_user(user.id).await;
    assert_eq!(read.status, 404, "{read}");
    let read = caught_up(
        &origins[1],
        &app.admin,
        &user,
        |r| r.status == 404,
        |r| {
            assert_eq!(r.status, 200, "{r}");
        },
    )
    .await;
    assert_eq!(read.json()["type"], json!("/problems/not-found"));
}
redis_test!(a_deleted_user_is_gone_although_cached);

#[tokio::test(flavor = "multi_thread")]
async fn without_redis_the_in_process_cache_hits_and_reads_your_writes() {
    let app = spawn_app_set(&[("REDIS_URL", "")]).await;
    let user = app.new_user().await;
    let (hits0, _) = hits_and_misses(&app).await;
    view_of(&app, &user, &user).await;
    let warm = view_of(&app, &user, &user).await;
    let (hits1, _) = hits_and_misses(&app).await;
    assert_eq!(hits1 - hits0, 1.0, "the second read is a hit");

    let patch = json!({"display_name": "Local Name"});
    let resp = app.as_user(&user).patch_user(user.id, &patch).await;
    resp.expect_json(200);
    let after = app.as_user(&user).get_user(user.id).await;

    let view = after.expect_json(200);
    assert_eq!(view["display_name"], json!("Local Name"));
    assert_eq!(after.header("etag"), resp.header("etag"));
    assert_eq!(version_of(&view), version_of(&warm) + 1);
    assert_eq!(
        app.redis_keys(app.redis_prefix()).await,
        Vec::<String>::new(),
        "nothing is written to Redis without REDIS_URL"
    );
}

/// Writes `WRITES` display names to `user` through `origin` as `writer`; after each, reads
/// the view back and asserts it shows that write or a later one.
async fn write_and_read_back(w: usize, origin: &Endpoint, writer: &TestUser, user: &TestUser) {
    for i in 0..WRITES {
        let name = format!("writer {w} write {i}");
        let patch = json!({"display_name": name});
        let resp = origin.as_user(writer).patch_user(user.id, &patch).await;
        let written = version_of(&resp.expect_json(200));
        let seen = view_of(origin, writer, user).await;
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

/// Writers and readers hammer one user on two replicas. Each writer reads right after each of
/// its writes and must see that write or a later one; each reader's sequence of versions
/// never goes down; at the end both replicas serve exactly the database row.
async fn concurrent_patches_and_reads_never_go_back_in_time(kind: RedisKind) {
    let (app, user) = spawn_app_and_user_on(kind).await;
    let origins = [app.endpoint(), app.spawn_replica().await];
    let done = std::sync::atomic::AtomicBool::new(false);

    let writers = (0..WRITERS).map(|w| {
        let writer = if w % 2 == 0 { &user } else { &app.admin };
        write_and_read_back(w, &origins[w % 2], writer, &user)
    });
    let readers = (0..READERS).map(|r| {
        let (app, origins, user, done) = (&app, &origins, &user, &done);
        async move {
            // The last version each replica served this reader.
            let mut last = [0, 0];
            let mut n = 0usize;
            while !done.load(std::sync::atomic::Ordering::Relaxed) || n < 5 {
                // Reader 2 alternates between the replicas: what each serves never goes back
                // (the other may lag by the notification delay).
                let i = if r == 2 { n % 2 } else { r };
                let read = origins[i].as_user(&app.admin).get_user(user.id).await;
                let v = version_of(&read.expect_json(200));
                assert!(
                    v >= last[i],
                    "reader {r} saw version {v} after {} on replica {i}",
                    last[i]
                );
                assert_eq!(
                    read.header("etag"),
                    Some(format!("\"{}-{v}\"", user.id.simple())),
                    "the ETag names the served version"
                );
                last[i] = v;
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
    let (db_version, db_name) = db_row(&app, &user).await;
    assert_eq!(
        db_version,
        1 + (WRITERS * WRITES) as i64,
        "every write counted"
    );
    for origin in &origins {
        for reader in [&app.admin, &user] {
            let read = caught_up(
                origin,
                reader,
                &user,
                |r| r.status == 200 && version_of(&r.json()) == db_version,
                |r| assert!(version_of(&r.json()) < db_version, "{r}"),
            )
            .await;
            let view = read.expect_json(200);
            assert_eq!(view["display_name"], json!(db_name), "{}", origin.base());
        }
    }
}
redis_test!(
    concurrent_patches_and_reads_never_go_back_in_time,
    worker_threads = 4
);

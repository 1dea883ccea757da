//! Races decided by the database (unique constraints, If-Match, refresh rotation) and the
//! bounded hashing queue that answers `503` instead of queueing without limit.

use futures::future::join_all;
use serde_json::json;

use crate::helpers::{
    Api as _, spawn_app, spawn_app_and_user, spawn_app_set, strong_password, unique_name,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_registrations_with_one_email_yield_exactly_one_account() {
    let app = spawn_app().await;
    let email = format!("{}@example.com", unique_name("race"));

    let attempts = (0..12).map(|i| {
        let username = unique_name(&format!("racer{i}x"));
        let email = if i % 2 == 0 {
            email.clone()
        } else {
            email.to_uppercase()
        };
        let app = &app;
        async move { app.register(&username, &email, &strong_password()).await }
    });
    let responses = join_all(attempts).await;

    let mut created = 0;
    for resp in responses {
        match resp.status {
            201 => created += 1,
            409 => {
                resp.assert_problem(409, "conflict");
            }
            other => panic!("unexpected {other}: {}", resp.text),
        }
    }
    assert_eq!(created, 1);
    let sql = "SELECT count(*) FROM users WHERE lower(email) = lower($1)";
    assert_eq!(app.count(sql, &[&email]).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_registrations_with_one_username_yield_exactly_one_account() {
    let app = spawn_app().await;
    let username = unique_name("same");

    let attempts = (0..12).map(|i| {
        let email = format!("{}-{i}@example.com", unique_name("m"));
        let username = username.clone();
        let app = &app;
        async move { app.register(&username, &email, &strong_password()).await }
    });
    let statuses: Vec<u16> = join_all(attempts).await.iter().map(|r| r.status).collect();

    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_patches_with_one_if_match_let_exactly_one_through() {
    let (app, user) = spawn_app_and_user().await;
    let as_user = app.as_user(&user);
    let resp = as_user.get_user(user.id).await;
    let etag = resp.etag();
    let before = resp.expect_json(200);
    let path = format!("/users/{}", user.id);

    let send = |name: &'static str| {
        as_user
            .patch(&path)
            .header("if-match", &etag)
            .merge_patch(&json!({"display_name": name}))
            .send()
    };
    let (a, b) = tokio::join!(send("Writer A"), send("Writer B"));

    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [200, 412]);
    let (winner, loser) = if a.status == 200 { (a, b) } else { (b, a) };
    loser.assert_problem(412, "precondition-failed");
    let won = winner.expect_json(200);
    assert_eq!(
        won["version"].as_i64().unwrap(),
        before["version"].as_i64().unwrap() + 1
    );
    let now = as_user.get_user(user.id).await.expect_json(200);
    assert_eq!(
        now["display_name"], won["display_name"],
        "the winner's write stands"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_of_one_token_mint_at_most_one_pair() {
    let (app, user) = spawn_app_and_user().await;

    let attempts = (0..6).map(|_| app.refresh(&user.refresh));
    let responses = join_all(attempts).await;

    let ok = responses.iter().filter(|r| r.status == 200).count();
    assert!(ok <= 1, "{ok} refreshes succeeded with one token");
    assert!(responses.iter().all(|r| r.status == 200 || r.status == 401));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_hashing_queue_answers_503_with_retry_after() {
    let app = spawn_app_set(&[
        ("HASH_WORKERS", "1"),
        ("HASH_QUEUE", "1"),
        ("ARGON2_M_KIB", "65536"),
        ("ARGON2_T", "3"),
    ])
    .await;
    let admin = app.admin.clone();

    let logins = (0..16).map(|_| app.login_raw(&admin.username, &admin.password));
    let responses = join_all(logins).await;

    let (mut overloaded, mut ok) = (0, 0);
    for resp in responses {
        match resp.status {
            200 => ok += 1,
            503 => {
                overloaded += 1;
                resp.retry_after(u64::MAX);
                resp.assert_problem(503, "overloaded");
            }
            other => panic!("unexpected {other}: {}", resp.text),
        }
    }
    assert!(overloaded >= 1, "a bounded queue must shed load");
    assert!(ok >= 1, "the queue still serves what it admits");
    // Once the burst is over, logging in works again.
    app.login(&admin.username, &admin.password).await;
}

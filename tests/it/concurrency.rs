//! Races decided by the database (unique constraints, If-Match, refresh rotation) and the
//! bounded hashing queue that answers `503` instead of queueing without limit.

use futures::future::join_all;
use serde_json::json;

use crate::helpers::{
    assert_problem, header, json_body, spawn_app, spawn_app_with, strong_password, unique_name,
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
        match resp.status().as_u16() {
            201 => created += 1,
            409 => {
                assert_problem(resp, 409, "conflict").await;
            }
            other => panic!(
                "unexpected {other}: {}",
                resp.text().await.unwrap_or_default()
            ),
        }
    }
    assert_eq!(created, 1);
    let n: i64 = app
        .db
        .query_one(
            "SELECT count(*) FROM users WHERE lower(email) = lower($1)",
            &[&email],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
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
    let statuses: Vec<u16> = join_all(attempts)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();

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
    let app = spawn_app().await;
    let user = app.new_user().await;
    let resp = app.get_user(&user.access, user.id).await;
    let etag = header(&resp, "etag").expect("ETag");
    let before = json_body(resp, 200).await;
    let path = format!("/users/{}", user.id);

    let send = |name: &'static str| {
        app.patch(&path)
            .bearer_auth(&user.access)
            .header("if-match", &etag)
            .header("content-type", "application/merge-patch+json")
            .body(json!({"display_name": name}).to_string())
            .send()
    };
    let (a, b) = tokio::join!(send("Writer A"), send("Writer B"));
    let (a, b) = (a.unwrap(), b.unwrap());

    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 412]);
    let (winner, loser) = if a.status() == 200 { (a, b) } else { (b, a) };
    assert_problem(loser, 412, "precondition-failed").await;
    let won = json_body(winner, 200).await;
    assert_eq!(
        won["version"].as_i64().unwrap(),
        before["version"].as_i64().unwrap() + 1
    );
    let now = json_body(app.get_user(&user.access, user.id).await, 200).await;
    assert_eq!(
        now["display_name"], won["display_name"],
        "the winner's write stands"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_of_one_token_mint_at_most_one_pair() {
    let app = spawn_app().await;
    let user = app.new_user().await;

    let attempts = (0..6).map(|_| app.refresh_raw(&user.refresh));
    let responses = join_all(attempts).await;

    let ok = responses.iter().filter(|r| r.status() == 200).count();
    assert!(ok <= 1, "{ok} refreshes succeeded with one token");
    assert!(
        responses
            .iter()
            .all(|r| r.status() == 200 || r.status() == 401)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_hashing_queue_answers_503_with_retry_after() {
    let app = spawn_app_with(|vars| {
        vars.insert("HASH_WORKERS".into(), "1".into());
        vars.insert("HASH_QUEUE".into(), "1".into());
        vars.insert("ARGON2_M_KIB".into(), "65536".into());
        vars.insert("ARGON2_T".into(), "3".into());
    })
    .await;
    let admin = app.admin.clone();

    let logins = (0..16).map(|_| app.login_raw(&admin.username, &admin.password));
    let responses = join_all(logins).await;

    let (mut overloaded, mut ok) = (0, 0);
    for resp in responses {
        match resp.status().as_u16() {
            200 => ok += 1,
            503 => {
                overloaded += 1;
                let retry_after = header(&resp, "retry-after").expect("Retry-After");
                assert!(
                    retry_after.parse::<u64>().is_ok_and(|s| s >= 1),
                    "{retry_after:?}"
                );
                assert_problem(resp, 503, "overloaded").await;
            }
            other => panic!(
                "unexpected {other}: {}",
                resp.text().await.unwrap_or_default()
            ),
        }
    }
    assert!(overloaded >= 1, "a bounded queue must shed load");
    assert!(ok >= 1, "the queue still serves what it admits");
    // Once the burst is over, logging in works again.
    app.login(&admin.username, &admin.password).await;
}

//! `Idempotency-Key` (SPEC §9) on `POST /users`, `POST /roles`, `POST /auth/register` and
//! `POST /auth/password/reset`: a repeat replays the first answer, the key with another body
//! is `422`, a repeat while the first is in flight is `409`, keys are the caller's own,
//! conflicts are not stored, answers expire and are deleted.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{
    Api, Credentials, Reply, TestApp, account_json, spawn_app, spawn_app_set, unique_name,
};

/// A fresh key.
pub fn new_key() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `POST path` with `body` and `key`, as `api`'s caller.
pub async fn post_with_key(api: &impl Api, path: &str, key: &str, body: &Value) -> Reply {
    api.post(path)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
}

/// Whether `reply` is marked as a replay.
pub fn replayed(reply: &Reply) -> bool {
    reply.header("idempotent-replayed").as_deref() == Some("true")
}

/// Asserts that `repeat` is `first` again, marked as a replay, with its `Location` and
/// `ETag`.
#[track_caller]
pub fn assert_replay_of(repeat: &Reply, first: &Reply) {
    assert!(!replayed(first), "the first answer is no replay: {first}");
    assert!(replayed(repeat), "a replay: {repeat}");
    assert_eq!(repeat.status, first.status, "{repeat}");
    assert_eq!(repeat.text, first.text, "the same body");
    for header in ["location", "etag", "content-type"] {
        assert_eq!(repeat.header(header), first.header(header), "{header}");
    }
}

async fn users_named(app: &TestApp, username: &str) -> i64 {
    app.count(
        "SELECT count(*) FROM users WHERE username = $1",
        &[&username],
    )
    .await
}

async fn roles_named(app: &TestApp, name: &str) -> i64 {
    app.count("SELECT count(*) FROM roles WHERE name = $1", &[&name])
        .await
}

fn role_body(name: &str) -> Value {
    json!({"name": name, "description": "made with a key", "permissions": ["users:read"]})
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeat_replays_the_first_answer_and_writes_nothing() {
    let app = spawn_app().await;
    let username = unique_name("idem");
    let body = account_json(&username, json!({"roles": ["user"]}));
    let key = new_key();
    let first = post_with_key(&app.as_admin(), "/users", &key, &body).await;
    first.expect_status(201);
    assert!(first.header("location").is_some() && first.header("etag").is_some());
    let repeat = post_with_key(&app.as_admin(), "/users", &key, &body).await;
    assert_replay_of(&repeat, &first);
    // The key in its structured-field form is the same key.
    let quoted = post_with_key(&app.as_admin(), "/users", &format!("\"{key}\""), &body).await;
    assert_replay_of(&quoted, &first);
    assert_eq!(users_named(&app, &username).await, 1);
    assert_eq!(
        app.audit_count(
            "user.created",
            first.json()["id"].as_str().unwrap().parse().unwrap()
        )
        .await,
        1
    );

    // POST /roles alike.
    let name = "idem-role";
    let key = new_key();
    let first = post_with_key(&app.as_admin(), "/roles", &key, &role_body(name)).await;
    first.expect_status(201);
    let repeat = post_with_key(&app.as_admin(), "/roles", &key, &role_body(name)).await;
    assert_replay_of(&repeat, &first);
    assert_eq!(roles_named(&app, name).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_key_with_another_request_is_422() {
    let app = spawn_app().await;
    let key = new_key();
    post_with_key(&app.as_admin(), "/roles", &key, &role_body("first-role"))
        .await
        .expect_status(201);
    let other = post_with_key(&app.as_admin(), "/roles", &key, &role_body("other-role")).await;
    other.assert_problem(422, "idempotency-key-reused");
    assert!(!replayed(&other));
    assert_eq!(roles_named(&app, "other-role").await, 0);
    // The same body on another route is another request.
    let elsewhere = post_with_key(&app.as_admin(), "/users", &key, &role_body("first-role")).await;
    elsewhere.assert_problem(422, "idempotency-key-reused");
    // The refusal is not the key's answer: the first request still replays.
    let repeat = post_with_key(&app.as_admin(), "/roles", &key, &role_body("first-role")).await;
    assert!(replayed(&repeat), "{repeat}");
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_the_callers_own() {
    let app = spawn_app().await;
    let other_admin = app.new_user_with_roles(&["admin"]).await;
    let key = new_key();
    post_with_key(&app.as_admin(), "/roles", &key, &role_body("mine"))
        .await
        .expect_status(201);
    // The same key and body from someone else is their own first request: here a conflict,
    // since the role exists, and no replay of the admin's answer.
    let theirs = post_with_key(
        &app.as_user(&other_admin),
        "/roles",
        &key,
        &role_body("mine"),
    )
    .await;
    theirs.assert_problem(409, "conflict");
    assert!(!replayed(&theirs));
    let fresh = post_with_key(
        &app.as_user(&other_admin),
        "/roles",
        &key,
        &role_body("theirs"),
    )
    .await;
    fresh.expect_status(201);
    assert!(!replayed(&fresh));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_concurrent_first_requests_with_one_key_make_one_write() {
    let app = spawn_app().await;
    for round in 0..8 {
        let name = format!("race-{round}");
        let key = new_key();
        let body = role_body(&name);
        let admin = app.as_admin();
        let (a, b) = tokio::join!(
            post_with_key(&admin, "/roles", &key, &body),
            post_with_key(&admin, "/roles", &key, &body),
        );
        assert_eq!(
            roles_named(&app, &name).await,
            1,
            "round {round}: one write"
        );
        let (winner, other) = if replayed(&a) || a.status == 409 {
            (&b, &a)
        } else {
            (&a, &b)
        };
        winner.expect_status(201);
        assert!(!replayed(winner), "{winner}");
        if other.status == 409 {
            other.assert_problem(409, "idempotency-key-in-flight");
        } else {
            assert_replay_of(other, winner);
        }
        // Whatever the other got, the key's answer is the write's.
        let after = post_with_key(&admin, "/roles", &key, &body).await;
        assert_replay_of(&after, winner);
    }

    // With the hashing of a registration between the look-up and the write.
    let account = Credentials::fresh("race");
    let body =
        json!({"username": account.username, "email": account.email, "password": account.password});
    let key = new_key();
    let (a, b) = tokio::join!(
        post_with_key(&app, "/auth/register", &key, &body),
        post_with_key(&app, "/auth/register", &key, &body),
    );
    assert_eq!(users_named(&app, &account.username).await, 1);
    let statuses = [a.status, b.status];
    assert!(statuses.contains(&201), "{a} {b}");
    for reply in [&a, &b] {
        match reply.status {
            201 => {}
            409 => {
                reply.assert_problem(409, "idempotency-key-in-flight");
            }
            _ => panic!("a write, a replay or in flight: {reply}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_conflict_is_not_stored_but_a_validation_failure_is() {
    let app = spawn_app().await;
    let holder = app.new_user().await;
    let account = Credentials::fresh("taken");
    let body =
        json!({"username": account.username, "email": holder.email, "password": account.password});
    let key = new_key();
    let conflict = post_with_key(&app, "/auth/register", &key, &body).await;
    conflict.assert_problem(409, "conflict");
    // Once the conflict is gone, the same request with the same key is carried out.
    app.as_admin()
        .delete_user(holder.id)
        .await
        .expect_status(204);
    let done = post_with_key(&app, "/auth/register", &key, &body).await;
    done.expect_status(201);
    assert!(!replayed(&done), "{done}");
    let repeat = post_with_key(&app, "/auth/register", &key, &body).await;
    assert_replay_of(&repeat, &done);

    let weak =
        json!({"username": unique_name("weak"), "email": "weak@example.com", "password": "short"});
    let key = new_key();
    let first = post_with_key(&app, "/auth/register", &key, &weak).await;
    first.assert_problem(422, "validation-failed");
    let repeat = post_with_key(&app, "/auth/register", &key, &weak).await;
    assert_replay_of(&repeat, &first);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_reset_request_mails_once() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let key = new_key();
    let body = json!({"email": user.email});
    let first = post_with_key(&app, "/auth/password/reset", &key, &body).await;
    first.expect_status(202);
    let resets = || async {
        app.count(
            "SELECT count(*) FROM password_reset_tokens WHERE user_id = $1",
            &[&user.id],
        )
        .await
    };
    for _ in 0..100 {
        if resets().await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(resets().await, 1);
    let repeat = post_with_key(&app, "/auth/password/reset", &key, &body).await;
    assert_replay_of(&repeat, &first);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(resets().await, 1, "no second reset token or mail");
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_expire_and_the_cleanup_job_deletes_them() {
    let app = spawn_app_set(&[("IDEMPOTENCY_TTL", "1")]).await;
    let key = new_key();
    post_with_key(&app.as_admin(), "/roles", &key, &role_body("before"))
        .await
        .expect_status(201);
    let stored = || async {
        app.count("SELECT count(*) FROM idempotency_keys", &[])
            .await
    };
    assert_eq!(stored().await, 1);
    let mut left = 1;
    for _ in 0..100 {
        left = stored().await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "the cleanup job deleted the expired answer");
    // An expired key is a new key.
    let again = post_with_key(&app.as_admin(), "/roles", &key, &role_body("after")).await;
    again.expect_status(201);
    assert!(!replayed(&again));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_key_is_400_and_writes_nothing() {
    let app = spawn_app().await;
    for key in ["has space", "\"unterminated", &"k".repeat(256), "tab\tkey"] {
        let reply = post_with_key(&app.as_admin(), "/roles", key, &role_body("never")).await;
        reply.assert_problem(400, "malformed-request");
    }
    let twice = app
        .as_admin()
        .post("/roles")
        .header("idempotency-key", "a")
        .header("idempotency-key", "b")
        .json(&role_body("never"))
        .send()
        .await;
    twice.assert_problem(400, "malformed-request");
    assert_eq!(roles_named(&app, "never").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn login_takes_no_key() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let body = json!({"login": user.username, "password": user.password});
    let key = new_key();
    let a = post_with_key(&app, "/auth/login", &key, &body).await;
    let b = post_with_key(&app, "/auth/login", &key, &body).await;
    for reply in [&a, &b] {
        reply.expect_status(200);
        assert!(!replayed(reply));
    }
    assert_ne!(a.text, b.text, "two logins, two token pairs");
}

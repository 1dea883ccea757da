//! `GET /admin/users/export` (SPEC §10): every account as NDJSON import rows, the hashes only
//! with `users:export_secrets`, audited, and an export with hashes imports into another
//! deployment where its users log in with their passwords.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Api, Reply, TestApp, spawn_app, strong_password, unique_name};
use crate::import::{import_ndjson, report};
use crate::legacy::passlib_hash;

fn lines_of(reply: &Reply) -> Vec<Value> {
    assert_eq!(reply.status, 200, "{reply}");
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("application/x-ndjson")
    );
    reply
        .text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

async fn export(app: &TestApp, query: &str) -> Reply {
    app.as_admin()
        .get(&format!("/admin/users/export{query}"))
        .send()
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn every_account_is_exported_in_creation_order_without_its_hash() {
    let app = spawn_app().await;
    let (a, b) = (app.new_user().await, app.new_user().await);
    let lines = lines_of(&export(&app, "").await);
    let names: Vec<&str> = lines
        .iter()
        .map(|l| l["username"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [app.admin.username.as_str(), &a.username, &b.username]
    );
    for line in &lines {
        assert!(line.get("password_hash").is_none(), "{line}");
        assert!(
            line["created_at"].is_string() && line["roles"].is_array(),
            "{line}"
        );
    }
    assert_eq!(lines[1]["email"], a.email);
}

#[tokio::test(flavor = "multi_thread")]
async fn hashes_need_users_export_secrets_and_are_audited() {
    let app = spawn_app().await;
    let auditor = app.new_auditor().await;
    let as_auditor = app.as_user(&auditor);
    lines_of(&as_auditor.get("/admin/users/export").send().await);
    as_auditor
        .get("/admin/users/export?include=password_hash")
        .send()
        .await
        .assert_problem(403, "forbidden");
    app.as_user(&app.new_user().await)
        .get("/admin/users/export")
        .send()
        .await
        .assert_problem(403, "forbidden");
    export(&app, "?include=everything")
        .await
        .assert_problem(422, "validation-failed");

    let lines = lines_of(&export(&app, "?include=password_hash").await);
    assert!(
        lines.iter().all(|l| l["password_hash"]
            .as_str()
            .is_some_and(|h| h.starts_with("$argon2id$"))),
        "{lines:?}"
    );
    let audited = app
        .count(
            "SELECT count(*) FROM audit_log WHERE action = 'users.exported' \
             AND details->>'password_hash' = 'true' AND actor_id = $1",
            &[&app.admin.id],
        )
        .await;
    assert_eq!(audited, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_export_with_hashes_imports_elsewhere_and_its_users_log_in() {
    let (from, to) = (spawn_app().await, spawn_app().await);
    let password = strong_password();
    let native = from.new_user().await;
    // One account still carries another system's hash: it travels as it is.
    let name = unique_name("legacy");
    let legacy = json!({"username": name, "email": format!("{name}@example.com"),
                        "password_hash": passlib_hash("bcrypt", "rounds=5", &password),
                        "external_id": "seed-7"});
    report(&import_ndjson(&from.as_admin(), "", &[legacy]).await);

    let exported = export(&from, "?include=password_hash").await;
    let rows: Vec<Value> = lines_of(&exported)
        .into_iter()
        .filter(|l| l["username"] != from.admin.username)
        .collect();
    assert_eq!(rows.len(), 2);
    let (lines, summary) = report(&import_ndjson(&to.as_admin(), "", &rows).await);
    assert_eq!(summary["created"], 2, "{lines:?}");
    to.login_raw(&native.username, &native.password)
        .await
        .expect_status(200);
    to.login_raw(&name, &password).await.expect_status(200);
    let external = to
        .strings(
            "SELECT external_id FROM users WHERE username = $1",
            &[&name],
        )
        .await;
    assert_eq!(external, ["seed-7"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_export_left_unread_leaves_no_transaction_open() {
    let app = spawn_app().await;
    let hash = passlib_hash("bcrypt", "rounds=5", &strong_password());
    for _ in 0..2 {
        let rows: Vec<Value> = (0..600)
            .map(|_| {
                let name = unique_name("many");
                json!({"username": name, "email": format!("{name}@example.com"),
                       "password_hash": hash})
            })
            .collect();
        report(&import_ndjson(&app.as_admin(), "", &rows).await);
    }
    // Read the first page of a 1201-account export, then hang up.
    let mut resp = app
        .client
        .get(format!("{}/admin/users/export", app.address))
        .bearer_auth(&app.admin.access)
        .send()
        .await
        .expect("an answer");
    assert_eq!(resp.status(), 200);
    let first = resp.chunk().await.expect("a chunk").expect("some bytes");
    assert!(!first.is_empty());
    drop(resp);
    let open = || async {
        app.count(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()",
            &[],
        )
        .await
    };
    let mut left = 1;
    for _ in 0..100 {
        left = open().await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "the abandoned export's transaction was closed");
    // And a whole export still reads every account.
    assert_eq!(lines_of(&export(&app, "").await).len(), 1201);
}

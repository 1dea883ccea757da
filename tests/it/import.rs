//! `POST /admin/users/import` (SPEC §10): NDJSON or a JSON array of accounts with the hashes
//! other systems made (passlib's, here) or plaintext passwords, each row failing only itself,
//! `mode=insert|upsert`, `dry_run`, the limits, `Idempotency-Key`.

use serde_json::{Value, json};

use crate::helpers::{Api, Reply, TestApp, spawn_app, strong_password, unique_name};
use crate::idempotency::{assert_replay_of, new_key};
use crate::legacy::passlib_hash;

/// The report of an import: the row lines and the summary.
pub fn report(reply: &Reply) -> (Vec<Value>, Value) {
    assert_eq!(reply.status, 200, "{reply}");
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("application/x-ndjson"),
        "{reply}"
    );
    let mut lines: Vec<Value> = reply
        .text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let summary = lines.pop().expect("a summary line");
    (lines, summary["summary"].clone())
}

/// Posts `rows` as NDJSON to the import route with `query`, as `api`'s caller.
pub async fn import_ndjson(api: &impl Api, query: &str, rows: &[Value]) -> Reply {
    let body: String = rows.iter().map(|r| format!("{r}\n")).collect();
    api.post(&format!("/admin/users/import{query}"))
        .typed_body("application/x-ndjson", body)
        .send()
        .await
}

/// A row for a fresh account whose password is `password`, hashed by passlib's bcrypt.
pub fn bcrypt_row(password: &str) -> Value {
    let name = unique_name("imp");
    json!({"username": name, "email": format!("{name}@example.com"),
           "password_hash": passlib_hash("bcrypt", "rounds=5", password),
           "display_name": "Imported", "email_verified": true, "external_id": name})
}

async fn users_named(app: &TestApp, username: &str) -> i64 {
    app.count(
        "SELECT count(*) FROM users WHERE username = $1",
        &[&username],
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ndjson_import_reports_each_row_and_its_accounts_log_in() {
    let app = spawn_app().await;
    let password = strong_password();
    let hashed = bcrypt_row(&password);
    let plain_name = unique_name("plain");
    let plain = json!({"username": plain_name, "email": format!("{plain_name}@example.com"),
                       "password": password, "roles": ["user"]});
    let bad_email = json!({"username": unique_name("bad"), "email": "not-an-address",
                           "password_hash": hashed["password_hash"]});
    let over = json!({"username": unique_name("over"), "email": "over@example.com",
                      "password_hash": passlib_hash("bcrypt", "rounds=13", &password)});
    let body = format!("{hashed}\n\n{plain}\n{bad_email}\nnot json\n{over}\n");
    let reply = app
        .as_admin()
        .post("/admin/users/import")
        .typed_body("application/x-ndjson", body)
        .send()
        .await;
    let (lines, summary) = report(&reply);
    let outcomes: Vec<(u64, &str)> = lines
        .iter()
        .map(|l| (l["line"].as_u64().unwrap(), l["outcome"].as_str().unwrap()))
        .collect();
    // The blank line 2 is no row.
    assert_eq!(
        outcomes,
        [
            (1, "created"),
            (3, "created"),
            (4, "failed"),
            (5, "failed"),
            (6, "failed")
        ]
    );
    assert_eq!(lines[2]["errors"][0]["field"], "email", "{}", lines[2]);
    assert_eq!(lines[3]["errors"][0]["field"], "line", "{}", lines[3]);
    let over_bound = &lines[4]["errors"][0];
    assert_eq!(over_bound["field"], "password_hash");
    assert!(
        over_bound["detail"].as_str().unwrap().contains("cost 13"),
        "{over_bound}"
    );
    assert_eq!(
        summary,
        json!({"rows": 5, "created": 2, "updated": 0, "skipped": 0, "failed": 3, "dry_run": false})
    );

    // Both accounts log in with their passwords; the imported hash is replaced at once.
    for row in [&hashed, &plain] {
        let login = row["username"].as_str().unwrap();
        app.login_raw(login, &password).await.expect_status(200);
    }
    let id = lines[0]["id"].as_str().unwrap();
    let me = app
        .as_admin()
        .get(&format!("/users/{id}"))
        .send()
        .await
        .expect_json(200);
    assert_eq!(me["email_verified"], true);
    assert_eq!(me["display_name"], "Imported");
    assert_eq!(me["roles"], json!(["user"]));
    let hash = app
        .strings(
            "SELECT password_hash FROM users WHERE username = $1",
            &[&hashed["username"].as_str().unwrap()],
        )
        .await;
    assert!(hash[0].starts_with("$argon2id$"), "{hash:?}");
    assert_eq!(
        users_named(&app, bad_email["username"].as_str().unwrap()).await,
        0
    );
    assert_eq!(
        users_named(&app, over["username"].as_str().unwrap()).await,
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rerun_skips_and_upsert_updates() {
    let app = spawn_app().await;
    let password = strong_password();
    let row = bcrypt_row(&password);
    let first = import_ndjson(&app.as_admin(), "", std::slice::from_ref(&row)).await;
    let (lines, _) = report(&first);
    let id = lines[0]["id"].clone();
    let (again, summary) =
        report(&import_ndjson(&app.as_admin(), "?mode=insert", std::slice::from_ref(&row)).await);
    assert_eq!(again[0]["outcome"], "skipped");
    assert_eq!(again[0]["id"], id);
    assert_eq!(summary["skipped"], 1);

    // Read (and cached) before the upsert; read back changed after it.
    let path = format!("/users/{}", id.as_str().unwrap());
    app.as_admin().get(&path).send().await.expect_json(200);
    let mut changed = row.clone();
    changed["display_name"] = json!("Renamed");
    changed["is_active"] = json!(false);
    let upsert = || async {
        app.as_admin()
            .post("/admin/users/import?mode=upsert")
            .json(&json!([changed]))
            .send()
            .await
    };
    let (lines, summary) = report(&upsert().await);
    assert_eq!(lines[0]["outcome"], "updated");
    assert_eq!(summary["updated"], 1);
    let view = app.as_admin().get(&path).send().await.expect_json(200);
    assert_eq!(view["display_name"], "Renamed");
    assert_eq!(view["is_active"], false);
    // The same upsert again changes nothing, and says so.
    let (lines, _) = report(&upsert().await);
    assert_eq!(lines[0]["outcome"], "skipped");
    let again = app.as_admin().get(&path).send().await.expect_json(200);
    assert_eq!(again["version"], view["version"]);
    assert_eq!(
        users_named(&app, row["username"].as_str().unwrap()).await,
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_reports_and_writes_nothing() {
    let app = spawn_app().await;
    let rows = [
        bcrypt_row(&strong_password()),
        bcrypt_row(&strong_password()),
    ];
    let users = || async { app.count("SELECT count(*) FROM users", &[]).await };
    let audits = || async { app.count("SELECT count(*) FROM audit_log", &[]).await };
    let (before, audit_before) = (users().await, audits().await);
    let (lines, summary) = report(&import_ndjson(&app.as_admin(), "?dry_run=true", &rows).await);
    assert!(lines.iter().all(|l| l["outcome"] == "created"), "{lines:?}");
    assert_eq!(summary["dry_run"], true);
    assert_eq!(summary["created"], 2);
    assert_eq!(users().await, before);
    assert_eq!(audits().await, audit_before, "not even the audit");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_limits_and_permissions_of_an_import() {
    let app = spawn_app().await;
    let row = bcrypt_row(&strong_password());
    let many: Vec<Value> = (0..1001).map(|_| row.clone()).collect();
    import_ndjson(&app.as_admin(), "", &many)
        .await
        .assert_problem(422, "validation-failed");
    import_ndjson(&app.as_admin(), "", &[])
        .await
        .assert_problem(422, "validation-failed");
    import_ndjson(&app.as_admin(), "?mode=replace", std::slice::from_ref(&row))
        .await
        .assert_problem(422, "validation-failed");
    app.as_admin()
        .post("/admin/users/import")
        .typed_body("text/csv", "username,email\n")
        .send()
        .await
        .assert_problem(415, "unsupported-media-type");
    let plain = app.new_user().await;
    import_ndjson(&app.as_user(&plain), "", std::slice::from_ref(&row))
        .await
        .assert_problem(403, "forbidden");
    let creator = {
        app.create_role("creator", &["users:create"]).await;
        app.new_user_with_roles(&["creator"]).await
    };
    import_ndjson(
        &app.as_user(&creator),
        "?mode=upsert",
        std::slice::from_ref(&row),
    )
    .await
    .assert_problem(403, "forbidden");
    // A creator cannot hand out roles it could not grant itself.
    let mut admin_row = row.clone();
    admin_row["roles"] = json!(["admin"]);
    let (lines, _) = report(&import_ndjson(&app.as_user(&creator), "", &[admin_row]).await);
    assert_eq!(lines[0]["outcome"], "failed");
    assert_eq!(lines[0]["errors"][0]["field"], "roles");

    // At most 100 plaintext passwords per request: the rest fail, asking for hashes.
    let password = strong_password();
    let plain_rows: Vec<Value> = (0..101)
        .map(|_| {
            let name = unique_name("pw");
            json!({"username": name, "email": format!("{name}@example.com"), "password": password})
        })
        .collect();
    let (lines, summary) =
        report(&import_ndjson(&app.as_admin(), "?dry_run=true", &plain_rows).await);
    assert_eq!(summary["created"], 100);
    assert_eq!(summary["failed"], 1);
    assert_eq!(lines[100]["errors"][0]["field"], "password");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_import_with_a_key_is_answered_once() {
    let app = spawn_app().await;
    let rows = [bcrypt_row(&strong_password())];
    let body: String = rows.iter().map(|r| format!("{r}\n")).collect();
    let key = new_key();
    let send = || async {
        app.as_admin()
            .post("/admin/users/import")
            .header("idempotency-key", &key)
            .typed_body("application/x-ndjson", body.clone())
            .send()
            .await
    };
    let first = send().await;
    report(&first);
    let repeat = send().await;
    assert_replay_of(&repeat, &first);
    assert_eq!(
        users_named(&app, rows[0]["username"].as_str().unwrap()).await,
        1
    );
}

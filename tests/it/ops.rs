//! Operations: probes, metrics and docs, request ids, configuration validation, the admin
//! bootstrap, several replicas over one database, and sabotage (database or SMTP gone).

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;

use crate::helpers::{
    Api as _, free_port, spawn_app, spawn_app_and_user, spawn_app_set, spawn_app_with,
};
use crate::jwt::{random_seed, use_signing_seed};
use crate::testdb::{connect, database_url};

#[tokio::test(flavor = "multi_thread")]
async fn healthz_and_readyz_are_ok() {
    let app = spawn_app().await;

    for probe in ["/healthz", "/readyz"] {
        app.get(probe).send().await.expect_status(200);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_response_carries_a_request_id_and_a_client_one_is_echoed() {
    let app = spawn_app().await;

    let generated = app.get("/healthz").send().await;
    let other = app.get("/no/such/route").send().await;
    let mine = app
        .get("/healthz")
        .request_id("trace-0123456789abcdef")
        .send()
        .await;

    let a = generated
        .header("x-request-id")
        .expect("a request id on 200");
    let b = other.header("x-request-id").expect("a request id on 404");
    assert!(!a.is_empty());
    assert_ne!(a, b, "unique per request");
    assert_eq!(mine.request_id(), "trace-0123456789abcdef");
}

/// The default test configuration, without a running app (nothing here connects).
fn base_vars() -> HashMap<String, String> {
    [
        ("DATABASE_URL", database_url("postgres")),
        ("LISTEN_ADDR", "127.0.0.1:0".to_owned()),
        ("PUBLIC_URL", "http://app.test".to_owned()),
        ("SMTP_URL", "smtp://127.0.0.1:2525".to_owned()),
        ("MAIL_FROM", "noreply@app.test".to_owned()),
        ("ADMIN_USERNAME", "admin".to_owned()),
        ("ADMIN_EMAIL", "admin@app.test".to_owned()),
        (
            "ADMIN_PASSWORD",
            "an-admin-secret-passphrase-0042".to_owned(),
        ),
        ("DATA_DIR", std::env::temp_dir().display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

#[test]
fn configuration_errors_name_the_variable() {
    let ok = base_vars();
    assert!(users_origin::Config::from_lookup(|k| ok.get(k).cloned()).is_ok());

    for (key, value) in [
        ("DATABASE_URL", None),
        ("ARGON2_T", Some("abc")),
        ("ALLOW_REGISTRATION", Some("maybe")),
        ("ACCESS_TOKEN_TTL", Some("-5")),
        ("LISTEN_ADDR", Some("not an address")),
    ] {
        let mut vars = base_vars();
        match value {
            None => {
                vars.remove(key);
            }
            Some(v) => {
                vars.insert(key.to_owned(), v.to_owned());
            }
        }
        let err = users_origin::Config::from_lookup(|k| vars.get(k).cloned())
            .err()
            .unwrap_or_else(|| panic!("{key}={value:?} is refused"));
        let message = format!("{err:#}");
        assert!(message.contains(key), "{key}: {message}");
    }
}

#[test]
fn secrets_never_show_in_the_configuration_debug_output() {
    let mut vars = base_vars();
    vars.insert(
        "DATABASE_URL".into(),
        "postgres://postgres:db-secret-4711@127.0.0.1:5432/postgres".into(),
    );

    let config = users_origin::Config::from_lookup(|k| vars.get(k).cloned()).unwrap();

    let debug = format!("{config:?}");
    assert!(
        !debug.contains("an-admin-secret-passphrase-0042"),
        "{debug}"
    );
    assert!(!debug.contains("db-secret-4711"), "{debug}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_bootstrap_is_idempotent() {
    let app = spawn_app().await;

    let replica = app.spawn_replica().await;

    let admins = app
        .count("SELECT count(*) FROM users WHERE username = 'admin'", &[])
        .await;
    assert_eq!(admins, 1);
    let sql = "SELECT role_name FROM user_roles WHERE user_id = $1";
    assert_eq!(app.strings(sql, &[&app.admin.id]).await, vec!["admin"]);
    let resp = replica.login_raw("admin", &app.admin.password).await;
    assert_eq!(
        resp.status, 200,
        "the admin's password is unchanged: {resp}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_share_keys_and_revocation() {
    let seed = random_seed();
    let app = spawn_app_with(|vars| use_signing_seed(vars, seed)).await;
    let user = app.new_user().await;
    let replica = app.spawn_replica().await;

    // Warm the replica with the user's token, then revoke on the first instance.
    replica.as_user(&user).me().await.expect_status(200);
    app.as_user(&user).logout_all().await.expect_status(204);

    replica.as_user(&user).me().await.assert_invalid_token();
}

#[tokio::test(flavor = "multi_thread")]
async fn without_its_database_the_origin_is_unready_and_says_unavailable() {
    let (app, user) = spawn_app_and_user().await;
    let admin = connect("postgres").await;

    admin
        .batch_execute(&format!(r#"DROP DATABASE "{}" WITH (FORCE)"#, app.db_name))
        .await
        .unwrap();

    let alive = app.get("/healthz").send().await;
    assert_eq!(alive.status, 200, "still alive: {alive}");
    let ready = app.get("/readyz").send().await;
    ready.assert_problem(503, "unavailable");
    let login = app.login_raw(&user.username, &user.password).await;
    login.assert_problem(503, "unavailable");
}

#[tokio::test(flavor = "multi_thread")]
async fn mail_waits_in_the_outbox_while_smtp_is_down() {
    // A port nothing listens on.
    let port = free_port();
    let app = spawn_app_set(&[("SMTP_URL", &format!("smtp://127.0.0.1:{port}"))]).await;
    let user = app.new_user().await;

    app.request_reset(&user.email).await.expect_status(202);

    // The mail is queued after the response; wait until a delivery attempt has failed.
    let mut failed_attempt = None;
    for _ in 0..200 {
        let row = app
            .db
            .query_opt(
                "SELECT attempts, last_error FROM mail_outbox WHERE recipient = $1 \
                 AND subject = 'Reset your password'",
                &[&user.email],
            )
            .await
            .unwrap();
        if let Some(row) = row
            && row.get::<_, i32>(0) > 0
            && row.get::<_, Option<String>>(1).is_some()
        {
            failed_attempt = Some(row.get::<_, i32>(0));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        failed_attempt.is_some(),
        "the mail stays queued with its failed attempt recorded"
    );
    app.get("/healthz").send().await.expect_status(200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_on_one_replica_is_read_on_another() {
    let (app, user) = spawn_app_and_user().await;
    let replica = app.spawn_replica().await;
    let read = || async {
        replica
            .as_user(&app.admin)
            .get_user(user.id)
            .await
            .expect_json(200)
    };
    read().await;

    let patch = json!({"display_name": "Seen Everywhere"});
    app.as_admin()
        .patch_user(user.id, &patch)
        .await
        .expect_json(200);

    assert_eq!(read().await["display_name"], json!("Seen Everywhere"));
}

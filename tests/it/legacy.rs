//! Accounts whose passwords were hashed by another system (SPEC §10): each supported format,
//! made here by the reference implementation (Python's passlib 1.7.4 with bcrypt 4.0.1, from
//! PyPI), verifies at login and is replaced by Argon2id at the first right password; a hash
//! over its cost bound never logs in.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::{Api, TestApp, TestUser, spawn_app};

/// The Python that has passlib: `USERS_PYTHON`, else the project's venv.
fn python() -> PathBuf {
    match std::env::var_os("USERS_PYTHON") {
        Some(python) => PathBuf::from(python),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/venv/bin/python"),
    }
}

/// The hash of `password` by passlib's handler `handler` with `settings` (keyword arguments
/// of `using`, as Python source).
pub fn passlib_hash(handler: &str, settings: &str, password: &str) -> String {
    let script = format!(
        "import sys\nfrom passlib import hash as h\n\
         print(h.{handler}.using({settings}).hash(sys.argv[1]))"
    );
    let out = Command::new(python())
        .args(["-c", &script, password])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "run {} ({e}): scripts/test.sh installs passlib==1.7.4 and bcrypt==4.0.1 into \
                 .tools/venv; or set USERS_PYTHON to a Python that has them",
                python().display()
            )
        });
    assert!(
        out.status.success(),
        "passlib {handler}: {}; scripts/test.sh installs passlib==1.7.4 and bcrypt==4.0.1",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("an ASCII hash")
        .trim()
        .to_owned()
}

/// Replaces `user`'s stored hash with `hash`, as an import would have stored it.
pub async fn store_hash(app: &TestApp, user: &TestUser, hash: &str) {
    app.db
        .execute(
            "UPDATE users SET password_hash = $2 WHERE id = $1",
            &[&user.id, &hash],
        )
        .await
        .expect("store the hash");
}

async fn stored_hash(app: &TestApp, user: &TestUser) -> String {
    app.strings("SELECT password_hash FROM users WHERE id = $1", &[&user.id])
        .await
        .remove(0)
}

/// Every format passlib writes that this server reads, at a low cost.
const FORMATS: [(&str, &str); 7] = [
    ("bcrypt", "rounds=5"),
    ("bcrypt", "rounds=5, ident='2y'"),
    ("bcrypt", "rounds=5, ident='2a'"),
    ("bcrypt_sha256", "rounds=5"),
    ("pbkdf2_sha256", "rounds=1000"),
    ("django_pbkdf2_sha256", "rounds=1000"),
    ("scrypt", "rounds=10"),
];

#[tokio::test(flavor = "multi_thread")]
async fn each_imported_format_logs_in_and_is_rehashed_to_argon2id() {
    let app = spawn_app().await;
    for (handler, settings) in FORMATS {
        let user = app.new_user().await;
        let hash = passlib_hash(handler, settings, &user.password);
        store_hash(&app, &user, &hash).await;

        app.login_raw(&user.username, "not-the-right-passphrase-at-all")
            .await
            .assert_problem(401, "invalid-credentials");
        assert_eq!(
            stored_hash(&app, &user).await,
            hash,
            "a wrong password changes nothing"
        );

        let first = app.login_raw(&user.username, &user.password).await;
        assert_eq!(first.status, 200, "{handler} {settings}: {first}");
        let rehashed = stored_hash(&app, &user).await;
        assert!(
            rehashed.starts_with("$argon2id$"),
            "{handler}: rehashed to {rehashed}"
        );
        // The new hash is the same password's.
        app.login_raw(&user.username, &user.password)
            .await
            .expect_status(200);
        assert_eq!(stored_hash(&app, &user).await, rehashed, "rehashed once");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hash_over_its_cost_bound_never_logs_in() {
    let app = spawn_app().await;
    for (handler, settings) in [
        ("bcrypt", "rounds=13"),
        ("pbkdf2_sha256", "rounds=1000001"),
        ("scrypt", "rounds=17"),
    ] {
        let user = app.new_user().await;
        let hash = passlib_hash(handler, settings, &user.password);
        store_hash(&app, &user, &hash).await;
        app.login_raw(&user.username, &user.password)
            .await
            .assert_problem(401, "invalid-credentials");
        assert_eq!(stored_hash(&app, &user).await, hash);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bcrypt_reads_72_bytes_until_the_rehash() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let long = format!("{}{}", "a-long-passphrase-".repeat(4), "the rest");
    assert!(long.len() > 72);
    let hash = passlib_hash("bcrypt", "rounds=5", &long);
    store_hash(&app, &user, &hash).await;
    // bcrypt's truncation: the first 72 bytes are the password, until the rehash.
    let truncated = format!("{}and more", &long[..72]);
    let reply = app.login_raw(&user.username, &truncated).await;
    assert_eq!(reply.status, 200, "{reply}");
    // Argon2id reads all of it: only what was typed at that login is the password now.
    app.login_raw(&user.username, &long)
        .await
        .assert_problem(401, "invalid-credentials");
    app.login_raw(&user.username, &truncated)
        .await
        .expect_status(200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_metric_counts_the_hashes_still_to_be_rehashed() {
    let app = spawn_app().await;
    let legacy = || async { app.metrics().await.sum("users_password_hashes_legacy", &[]) };
    assert_eq!(
        legacy().await,
        0.0,
        "every account starts with the configured Argon2id"
    );
    let (a, b) = (app.new_user().await, app.new_user().await);
    for user in [&a, &b] {
        let hash = passlib_hash("bcrypt", "rounds=5", &user.password);
        store_hash(&app, user, &hash).await;
    }
    assert_eq!(legacy().await, 2.0);
    app.login_raw(&a.username, &a.password)
        .await
        .expect_status(200);
    assert_eq!(legacy().await, 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_login_is_checked_against_the_shapes_the_accounts_have() {
    let app = spawn_app().await;
    let unknown = |format: &'static str| {
        let app = &app;
        async move {
            app.metrics()
                .await
                .sum("users_login_unknown_total", &[("format", format)])
        }
    };
    // Three imported bcrypt accounts beside the native admin: an unknown login is checked
    // against a bcrypt stand-in three times in four, the admin's Argon2id once.
    let rows: Vec<serde_json::Value> = (0..3)
        .map(|_| crate::import::bcrypt_row(&crate::helpers::strong_password()))
        .collect();
    let (_, summary) =
        crate::import::report(&crate::import::import_ndjson(&app.as_admin(), "", &rows).await);
    assert_eq!(summary["created"], 3);
    for n in 0..40 {
        app.login_raw(&format!("nobody-{n}@example.com"), "not the password")
            .await
            .assert_problem(401, "invalid-credentials");
    }
    let (bcrypt, argon2) = (unknown("bcrypt").await, unknown("argon2").await);
    assert_eq!(bcrypt + argon2, 40.0);
    assert!(
        bcrypt > 0.0 && argon2 > 0.0,
        "bcrypt {bcrypt}, argon2 {argon2}"
    );
    // The same login draws the same stand-in every time.
    for _ in 0..4 {
        app.login_raw("the-same-nobody@example.com", "not the password")
            .await
            .assert_problem(401, "invalid-credentials");
    }
    let (b, a) = (
        unknown("bcrypt").await - bcrypt,
        unknown("argon2").await - argon2,
    );
    assert!(
        (b, a) == (4.0, 0.0) || (b, a) == (0.0, 4.0),
        "bcrypt +{b}, argon2 +{a}"
    );
}

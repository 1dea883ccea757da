//! `users-origin import --from-seed-db URL` (SPEC §10): a database of the seed's design
//! (`users` with integer ids and passlib's bcrypt in `hashed_password`, `roles`,
//! `user_roles`) moves in, its users log in with their old passwords, and a rerun duplicates
//! nothing; the binary is run as an operator runs it.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::helpers::{Api, TestApp, spawn_app, strong_password};
use crate::legacy::passlib_hash;
use crate::testdb::{Cleanup, connect, database_url};

/// The `users-origin` binary of this build, built once if the tests were built alone.
fn origin_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            // target/<profile>/deps/it-… → target/<profile>
            let exe = std::env::current_exe().expect("the test binary's path");
            let dir = exe
                .parent()
                .and_then(|deps| deps.parent())
                .expect("target/<profile>")
                .to_path_buf();
            let profile = dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug");
            let profile = if profile == "debug" { "dev" } else { profile };
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "--locked", "--quiet", "-p", "users-origin"])
                .args(["--bin", "users-origin", "--profile", profile])
                .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
                .status()
                .expect("run cargo build -p users-origin");
            assert!(status.success(), "cargo build -p users-origin failed");
            dir.join("users-origin")
        })
        .clone()
}

/// A throw-away database of the seed's design, dropped at the end of the test.
struct SeedDb {
    name: String,
    db: tokio_postgres::Client,
    _cleanup: Cleanup,
}

impl SeedDb {
    async fn create(tables: &str) -> Self {
        let name = format!("users_seed_{}", uuid::Uuid::new_v4().simple());
        users_harness::postgres::create_database(&name)
            .await
            .expect("create the seed database");
        let cleanup = Cleanup {
            db_name: name.clone(),
            data_dir: std::env::temp_dir().join(&name),
            redis_prefix: format!("it:{name}:"),
            redis_cluster: None,
        };
        let db = connect(&name).await;
        db.batch_execute(tables).await.expect("the seed's tables");
        Self {
            name,
            db,
            _cleanup: cleanup,
        }
    }

    fn url(&self) -> String {
        database_url(&self.name)
    }
}

/// The seed's three tables, as its models declare them.
const SEED_TABLES: &str = "
    CREATE TABLE users (
        id SERIAL PRIMARY KEY,
        username VARCHAR(50) UNIQUE NOT NULL,
        email VARCHAR(255) UNIQUE NOT NULL,
        full_name VARCHAR(100),
        hashed_password VARCHAR(255) NOT NULL,
        is_active BOOLEAN DEFAULT TRUE,
        created_at TIMESTAMP DEFAULT now(),
        updated_at TIMESTAMP DEFAULT now()
    );
    CREATE TABLE roles (
        id SERIAL PRIMARY KEY,
        name VARCHAR(50) UNIQUE NOT NULL,
        description VARCHAR(255)
    );
    CREATE TABLE user_roles (
        user_id INTEGER REFERENCES users(id) ON DELETE CASCADE,
        role_id INTEGER REFERENCES roles(id) ON DELETE CASCADE,
        PRIMARY KEY (user_id, role_id)
    );";

/// Runs `users-origin import` with `args` against `app`'s database and Redis.
fn run_import(app: &TestApp, args: &[&str]) -> Output {
    Command::new(origin_binary())
        .arg("import")
        .args(args)
        .envs(&app.vars)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run users-origin import")
}

/// As [`run_import`], on a terminal (`script` gives it a pseudo-terminal); what the terminal
/// showed.
fn run_import_on_a_terminal(app: &TestApp, url: &str) -> (bool, String) {
    let command = format!(
        "{} import --from-seed-db '{url}'",
        origin_binary().display()
    );
    let out = Command::new("script")
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .envs(&app.vars)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run users-origin import under script(1)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Runs `users-origin import --from-seed-db url` and expects success; its stdout and stderr.
fn import_succeeds(app: &TestApp, url: &str) -> (String, String) {
    let out = run_import(app, &["--from-seed-db", url]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    (stdout, stderr)
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Users beyond the named ones, so the import takes more than one batch of 1000.
const CROWD: i64 = 1200;

#[tokio::test(flavor = "multi_thread")]
async fn the_seed_database_moves_in_twice_and_its_users_log_in_with_their_old_passwords() {
    let app = spawn_app().await;
    let seed = SeedDb::create(SEED_TABLES).await;
    let (alice_pw, bob_pw, carol_pw) = (strong_password(), strong_password(), strong_password());
    let hash = |pw: &str| passlib_hash("bcrypt", "rounds=5", pw);
    let crowd_pw = strong_password();
    seed.db
        .execute(
            "INSERT INTO roles (name, description) VALUES ('admin', 'all'), \
                 ('editor', 'edits'), ('Support Team', 'not a role name here')",
            &[],
        )
        .await
        .unwrap();
    seed.db
        .execute(
            "INSERT INTO users (username, email, full_name, hashed_password, is_active, \
                 created_at) VALUES \
             ('Alice', 'alice@seed.test', 'Alice Liddell', $1, true, '2021-03-04 05:06:07'), \
             ('bob', 'bob@seed.test', NULL, $2, true, DEFAULT), \
             ('carol', 'carol@seed.test', 'Carol', $3, false, DEFAULT)",
            &[&hash(&alice_pw), &hash(&bob_pw), &hash(&carol_pw)],
        )
        .await
        .unwrap();
    seed.db
        .execute(
            "INSERT INTO users (username, email, hashed_password) \
             SELECT 'crowd' || i, 'crowd' || i || '@seed.test', $1 FROM generate_series(1, $2::bigint) i",
            &[&hash(&crowd_pw), &CROWD],
        )
        .await
        .unwrap();
    seed.db
        .batch_execute(
            "INSERT INTO user_roles SELECT u.id, r.id FROM users u, roles r WHERE \
                 (u.username = 'Alice' AND r.name IN ('admin', 'editor')) OR \
                 (u.username = 'bob' AND r.name IN ('editor', 'Support Team'))",
        )
        .await
        .unwrap();
    let total = 3 + CROWD;

    // The first run, not on a terminal: no progress bar, a summary, success.
    let (stdout, stderr) = import_succeeds(&app, &seed.url());
    assert_eq!(
        stdout.trim(),
        format!(
            "{total} users: {total} created, 0 updated, 0 unchanged, 0 failed; roles created: editor"
        )
    );
    assert!(
        stderr.contains("role \"Support Team\" not imported"),
        "{stderr}"
    );
    assert!(!stderr.contains(&format!("/{total} users")), "{stderr}");

    // Old passwords work; the inactive account stays shut; roles and fields came along.
    let alice = app.login("alice", &alice_pw).await;
    let me = app
        .bearer(&alice.access_token)
        .get("/users/me")
        .send()
        .await
        .expect_json(200);
    assert_eq!(me["email"], "alice@seed.test");
    assert_eq!(me["display_name"], "Alice Liddell");
    assert_eq!(me["created_at"], "2021-03-04T05:06:07Z");
    assert_eq!(me["roles"], serde_json::json!(["admin", "editor", "user"]));
    app.login("bob@seed.test", &bob_pw).await;
    app.login("crowd1200", &crowd_pw).await;
    app.login_raw("carol", &carol_pw)
        .await
        .assert_problem(401, "invalid-credentials");
    let bob_roles: Vec<String> = app
        .db
        .query_one(
            "SELECT array_agg(role_name ORDER BY role_name) FROM user_roles ur \
             JOIN users u ON u.id = ur.user_id WHERE u.username = 'bob'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(bob_roles, ["editor", "user"]);
    let external: i64 = app
        .count(
            "SELECT count(*) FROM users WHERE external_id IS NOT NULL",
            &[],
        )
        .await;
    assert_eq!(external, total);

    // A rerun, on a terminal: a progress bar, and nothing changes. Alice logged in (her
    // hash is Argon2id now) and keeps it.
    let (ok, screen) = run_import_on_a_terminal(&app, &seed.url());
    assert!(ok, "{screen}");
    assert!(
        screen.contains(&format!("{total}/{total} users")),
        "{screen}"
    );
    assert!(
        screen.contains(&format!(
            "{total} users: 0 created, 0 updated, {total} unchanged, 0 failed"
        )),
        "{screen}"
    );
    let users: i64 = app.count("SELECT count(*) FROM users", &[]).await;
    assert_eq!(
        users,
        total + 1,
        "the seed's users and the admin, once each"
    );
    let alice_hash = app
        .strings(
            "SELECT password_hash FROM users WHERE username = 'alice'",
            &[],
        )
        .await
        .remove(0);
    assert!(alice_hash.starts_with("$argon2id$"), "{alice_hash}");
    app.login("alice", &alice_pw).await;

    // What changed there comes here on the next run: bob's new password (he logged in here
    // too: his rehash gives way to it), carol let in.
    let bob_new = strong_password();
    seed.db
        .execute(
            "UPDATE users SET hashed_password = $1 WHERE username = 'bob'",
            &[&hash(&bob_new)],
        )
        .await
        .unwrap();
    seed.db
        .execute(
            "UPDATE users SET is_active = true WHERE username = 'carol'",
            &[],
        )
        .await
        .unwrap();
    let (stdout, _) = import_succeeds(&app, &seed.url());
    assert_eq!(
        stdout.trim(),
        format!(
            "{total} users: 0 created, 2 updated, {} unchanged, 0 failed",
            total - 2
        )
    );
    app.login("bob", &bob_new).await;
    app.login_raw("bob", &bob_pw)
        .await
        .assert_problem(401, "invalid-credentials");
    app.login("carol", &carol_pw).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_seed_url_schema_or_row_gets_a_clear_message_and_a_failing_status() {
    let app = spawn_app().await;

    let out = run_import(&app, &["--from-seed-db", "not a url"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not a PostgreSQL URL"), "{stderr}");

    let out = run_import(&app, &["--from-seed-db", "postgres://127.0.0.1:1/seed"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot connect to the seed database"),
        "{stderr}"
    );

    let out = run_import(&app, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("--from-seed-db URL"));

    let other = SeedDb::create(
        "CREATE TABLE users (id UUID PRIMARY KEY, email TEXT); CREATE TABLE roles (id INT);",
    )
    .await;
    let out = run_import(&app, &["--from-seed-db", &other.url()]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "users has no column hashed_password; roles has no column name; no table user_roles"
        ),
        "{stderr}"
    );

    // A row this server cannot take fails alone, named by its seed id; the rest come in.
    let seed = SeedDb::create(SEED_TABLES).await;
    let password = strong_password();
    seed.db
        .execute(
            "INSERT INTO users (id, username, email, hashed_password) VALUES \
             (7, 'fine', 'fine@seed.test', $1), (8, 'not ok!', 'bad@seed.test', $1), \
             (9, 'nohash', 'nohash@seed.test', 'plain text')",
            &[&passlib_hash("bcrypt", "rounds=5", &password)],
        )
        .await
        .unwrap();
    let out = run_import(&app, &["--from-seed-db", &seed.url()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("seed user 8 failed: username:"), "{stderr}");
    assert!(
        stderr.contains("seed user 9 failed: password_hash:"),
        "{stderr}"
    );
    assert_eq!(
        stdout.trim(),
        "3 users: 1 created, 0 updated, 0 unchanged, 2 failed"
    );
    app.login("fine", &password).await;

    // A dry run reads and checks, and writes nothing.
    seed.db
        .execute(
            "INSERT INTO users (id, username, email, hashed_password) VALUES \
             (10, 'later', 'later@seed.test', $1)",
            &[&passlib_hash("bcrypt", "rounds=5", &password)],
        )
        .await
        .unwrap();
    let out = run_import(&app, &["--from-seed-db", &seed.url(), "--dry-run"]);
    let (stdout, _) = text(&out);
    assert_eq!(
        stdout.trim(),
        "dry run: 4 users: 1 created, 0 updated, 1 unchanged, 2 failed"
    );
    app.login_raw("later", &password)
        .await
        .assert_problem(401, "invalid-credentials");
}

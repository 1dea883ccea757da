//! The seed's stack, for the comparison in the same run: `bench/seed_stack/app.py` (FastAPI,
//! uvicorn, synchronous SQLAlchemy, HS256 JWTs, passlib bcrypt) over a database of the seed's
//! design (`users`, `roles`, `user_roles`, integer ids) with as many users as the run's own
//! database. uvicorn runs one worker per core in its own process group, stopped on drop; the
//! database is dropped by [`SeedStack::remove`].
//!
//! `scripts/bench.sh` installs the pinned requirements into the project venv and passes its
//! Python in `SEED_PYTHON`.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use users_harness::process::ProcessGroup;

use super::services;

/// How long uvicorn has to exit after `SIGTERM` before it gets `SIGKILL`.
const STOP_GRACE: Duration = Duration::from_millis(1000);
/// The seed admin's e-mail (its login) and the user the read scenario asks for.
pub const ADMIN_EMAIL: &str = "admin@seed.test";
pub const READ_ID: i64 = 2;

/// The seed's stack, running.
#[derive(Debug)]
pub struct SeedStack {
    group: ProcessGroup,
    pub base: String,
    pub db: String,
    pub workers: usize,
    pub users: u64,
}

impl Drop for SeedStack {
    fn drop(&mut self) {
        self.group.stop(STOP_GRACE);
    }
}

/// The seed's tables and `users` rows (the admin first, with `password` hashed by passlib).
async fn seed(db: &str, users: u64, admin_hash: &str) -> anyhow::Result<()> {
    services::create_database(db).await?;
    let pg = services::connect(db).await?;
    pg.batch_execute(
        "CREATE TABLE users (id SERIAL PRIMARY KEY, email VARCHAR(255) UNIQUE NOT NULL, \
           username VARCHAR(50) UNIQUE, full_name VARCHAR(255), hashed_password VARCHAR(255) NOT NULL, \
           is_active BOOLEAN DEFAULT TRUE, created_at TIMESTAMP DEFAULT now()); \
         CREATE TABLE roles (id SERIAL PRIMARY KEY, name VARCHAR(50) UNIQUE NOT NULL); \
         CREATE TABLE user_roles (user_id INTEGER REFERENCES users(id), \
           role_id INTEGER REFERENCES roles(id), PRIMARY KEY (user_id, role_id)); \
         INSERT INTO roles (name) VALUES ('admin'), ('user');",
    )
    .await?;
    pg.execute(
        "INSERT INTO users (email, username, full_name, hashed_password) \
         VALUES ($1, 'admin', 'Administrator', $2)",
        &[&ADMIN_EMAIL, &admin_hash],
    )
    .await?;
    let rest = i64::try_from(users.saturating_sub(1))?;
    pg.execute(
        "INSERT INTO users (email, username, full_name, hashed_password) \
         SELECT 'user' || g || '@seed.test', 'user' || g, 'User ' || g, $2 \
         FROM generate_series(1, $1::bigint) g",
        &[&rest, &admin_hash],
    )
    .await?;
    pg.batch_execute(
        "INSERT INTO user_roles SELECT 1, id FROM roles; \
         INSERT INTO user_roles SELECT u.id, r.id FROM users u, roles r WHERE u.id > 1 AND r.name = 'user'",
    )
    .await?;
    pg.batch_execute("VACUUM ANALYZE").await?;
    Ok(())
}

fn python() -> anyhow::Result<String> {
    std::env::var("SEED_PYTHON").context(
        "SEED_PYTHON: the Python with bench/seed_stack/requirements.txt (scripts/bench.sh sets it)",
    )
}

/// passlib's bcrypt hash of `password`, as the seed's stack writes it.
fn bcrypt_hash(python: &str, password: &str) -> anyhow::Result<String> {
    let out = Command::new(python)
        .args([
            "-c",
            "import sys; from passlib.context import CryptContext; \
             print(CryptContext(schemes=['bcrypt']).hash(sys.stdin.readline().strip()))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            if let Some(stdin) = child.stdin.as_mut() {
                writeln!(stdin, "{password}")?;
            }
            child.wait_with_output()
        })
        .context("run passlib")?;
    if !out.status.success() {
        bail!("passlib failed: {}", out.status);
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// Seeds database `db` with `users` users and starts the app on a free port with `workers`
/// uvicorn workers; returns once it answers.
pub async fn start(
    root: &Path,
    db: &str,
    users: u64,
    workers: usize,
    admin_password: &str,
) -> anyhow::Result<SeedStack> {
    let python = python()?;
    let hash = bcrypt_hash(&python, admin_password)?;
    seed(db, users, &hash).await?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let secret = uuid::Uuid::new_v4().simple().to_string();
    let mut cmd = Command::new(&python);
    cmd.args(["-m", "uvicorn", "app:app", "--host", "127.0.0.1"])
        .args(["--port", &port.to_string()])
        .args(["--workers", &workers.to_string()])
        .args(["--log-level", "warning", "--no-access-log"])
        .current_dir(root.join("bench/seed_stack"))
        .env(
            "SEED_DATABASE_URL",
            services::database_url(db).replace("postgres://", "postgresql://"),
        )
        .env("SEED_JWT_SECRET", secret)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .process_group(0);
    let child = cmd.spawn().context("start uvicorn")?;
    let stack = SeedStack {
        group: ProcessGroup::new(child),
        base: format!("http://127.0.0.1:{port}"),
        db: db.to_owned(),
        workers,
        users,
    };
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if client
            .get(format!("{}/docs", stack.base))
            .send()
            .await
            .is_ok()
        {
            return Ok(stack);
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("the seed's stack did not answer within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl SeedStack {
    /// The admin's bearer token from `POST /auth/login` (an OAuth2 password form).
    pub async fn login(&self, client: &reqwest::Client, password: &str) -> anyhow::Result<String> {
        let resp = client
            .post(format!("{}/auth/login", self.base))
            .form(&[("username", ADMIN_EMAIL), ("password", password)])
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("seed login: {}", resp.status());
        }
        let body: serde_json::Value = resp.json().await?;
        body["access_token"]
            .as_str()
            .map(str::to_owned)
            .context("seed login: no access_token")
    }

    /// Stops the app and drops its database.
    pub async fn remove(self) -> anyhow::Result<()> {
        let db = self.db.clone();
        drop(self);
        services::drop_database(&db).await
    }
}

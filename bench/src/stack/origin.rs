//! The origin, started in-process on a tokio runtime of the caller's choice: its settings (the
//! environment variables it reads, given through `Config::from_lookup`, so the bench process's
//! own environment plays no part), starting and stopping it, and the admin login every bench
//! begins with. Starting and stopping is `users-harness`'s [`InProcessOrigin`].

use std::collections::HashMap;

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use serde_json::{Value, json};

use super::services::{Scratch, database_url, redis_url};

/// Rate limits far above anything a bench sends.
pub const UNLIMITED: &str = "100000000/60s";

/// The bootstrap admin the origin creates and a bench logs in as.
#[derive(Debug, Clone)]
pub struct Admin {
    pub username: &'static str,
    pub email: &'static str,
    pub password: String,
}

/// The origin's settings, by variable name.
#[derive(Debug, Clone)]
pub struct OriginVars(HashMap<String, String>);

impl OriginVars {
    /// What every bench sets: the run's own database, data directory and Redis prefix, the
    /// bootstrap admin, a port of the system's choice, and rate limits out of the way.
    pub fn new(scratch: &Scratch, admin: &Admin) -> Self {
        Self(HashMap::new())
            .with("DATABASE_URL", database_url(&scratch.db))
            .with("LISTEN_ADDR", "127.0.0.1:0")
            .with("DATA_DIR", scratch.data_dir.display().to_string())
            .with("ADMIN_USERNAME", admin.username)
            .with("ADMIN_EMAIL", admin.email)
            .with("ADMIN_PASSWORD", admin.password.clone())
            .with("REDIS_URL", redis_url())
            .with("REDIS_PREFIX", scratch.redis_prefix.clone())
            .with("RATE_LIMIT_AUTH_IP", UNLIMITED)
            .with("RATE_LIMIT_USER", UNLIMITED)
    }

    /// Sets (or replaces) one variable.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.0.insert(name.to_owned(), value.into());
        self
    }

    /// The origin's configuration from these variables alone.
    pub fn config(&self) -> anyhow::Result<users_origin::Config> {
        users_harness::origin::config(&self.0)
    }
}

pub use users_harness::InProcessOrigin;

/// The release-built `users-origin` binary as a child process in its own process group (so
/// its memory is its own to measure), stopped on drop.
#[derive(Debug)]
pub struct OriginProcess {
    group: users_harness::process::ProcessGroup,
}

impl OriginProcess {
    /// Starts `root`/target/release/users-origin with `vars` alone on a free port and waits
    /// until `/readyz` answers `200`; the process and its base URL.
    pub async fn start(root: &Path, vars: &OriginVars) -> anyhow::Result<(Self, String)> {
        let bin = root.join("target/release/users-origin");
        if !bin.exists() {
            bail!(
                "{} is missing: cargo build --release -p users-origin",
                bin.display()
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(bin)
            .env_clear()
            .envs(&vars.0)
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .context("start users-origin")?;
        let mut process = Self {
            group: users_harness::process::ProcessGroup::new(child),
        };
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..600 {
            if let Some(status) = process.group.try_wait()? {
                bail!("users-origin exited at start: {status}");
            }
            let ready = client.get(format!("{base}/readyz")).send().await;
            if ready.is_ok_and(|r| r.status() == reqwest::StatusCode::OK) {
                return Ok((process, base));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        process.group.stop(Duration::from_secs(5));
        bail!("users-origin was not ready within 60 s")
    }

    /// Its pid (for `/proc`).
    pub fn pid(&self) -> u32 {
        self.group.id()
    }
}

impl Drop for OriginProcess {
    fn drop(&mut self) {
        self.group.stop(Duration::from_secs(5));
    }
}

/// Logs in at `base` (the origin, or an edge in front of it) and returns the access token.
pub async fn login(
    client: &reqwest::Client,
    base: &str,
    login: &str,
    password: &str,
) -> anyhow::Result<String> {
    let resp = client
        .post(format!("{base}/auth/login"))
        .json(&json!({"login": login, "password": password}))
        .send()
        .await?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or_default();
    if status != reqwest::StatusCode::OK {
        bail!("admin login: {status} {body}");
    }
    Ok(body["access_token"]
        .as_str()
        .ok_or_else(|| anyhow!("admin login: no access_token in {body}"))?
        .to_owned())
}

//! The origin, started in-process on a tokio runtime of the caller's choice: its settings (the
//! environment variables it reads, given through `Config::from_lookup`, so the bench process's
//! own environment plays no part), starting and stopping it, and the admin login every bench
//! begins with. Starting and stopping is `users-harness`'s [`InProcessOrigin`].

use std::collections::HashMap;

use anyhow::{anyhow, bail};
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

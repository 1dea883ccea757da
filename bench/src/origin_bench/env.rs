//! What the scenarios share: the progress log, the HTTP client and the admin token, the origin's
//! counters, the CPU accounting around a measured run, and the permutation that hands every
//! scenario taking a seeded user one never used before.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use reqwest::header::AUTHORIZATION;
use tokio::runtime::Handle;

use super::args::Args;
use crate::cpu;
use crate::load::{self, RunStats, Target};
use crate::stack::origin::{self, InProcessOrigin};

/// A progress line on stderr.
pub fn log(msg: impl std::fmt::Display) {
    eprintln!("==> {msg}");
}

/// Everything the scenarios share.
#[derive(Debug)]
pub struct Env {
    pub args: Args,
    pub cores: usize,
    pub client: reqwest::Client,
    pub base: String,
    pub admin_token: String,
    /// The bench database, whose PostgreSQL backends the CPU accounting counts.
    pub db: String,
    pub perm: Permutation,
    /// Shared by every target that takes a fresh seeded user, so none is used twice.
    pub fresh: Arc<AtomicU64>,
    /// The runtime the origin runs on (the latency floor's server runs there too).
    pub origin_runtime: Handle,
}

impl Env {
    /// The load generator's client, pointed at `origin`, logged in as the admin.
    pub async fn connect(
        args: Args,
        cores: usize,
        origin: &InProcessOrigin,
        admin_password: &str,
        db: &str,
        origin_runtime: Handle,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(usize::MAX)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(60))
            .build()?;
        let base = origin.url();
        log(format!("origin listening on {base}"));
        let admin_token = origin::login(&client, &base, "benchadmin", admin_password).await?;
        Ok(Self {
            perm: Permutation::new(args.users),
            fresh: Arc::new(AtomicU64::new(0)),
            args,
            cores,
            client,
            base,
            admin_token,
            db: db.to_owned(),
            origin_runtime,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get_as_admin(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .get(self.url(path))
            .header(AUTHORIZATION, format!("Bearer {}", self.admin_token))
    }

    /// `GET path` with the admin token, the same request every time, expecting 200.
    pub fn admin_get_target(&self, path: &str) -> anyhow::Result<Target> {
        Target::get(200, &self.url(path), Some(load::bearer(&self.admin_token)?))
    }

    /// One run with its CPU use.
    pub async fn measure<F: Future<Output = RunStats>>(&self, run: F) -> RunStats {
        let before = cpu::snapshot(&self.db);
        let mut stats = run.await;
        let after = cpu::snapshot(&self.db);
        if let (Some(b), Some(a)) = (before, after) {
            stats.cpu = cpu::between(&b, &a, self.cores);
        }
        stats
    }

    /// The origin's counters (`name value` lines without labels).
    pub async fn metrics(&self) -> HashMap<String, f64> {
        let Ok(resp) = self.client.get(self.url("/metrics")).send().await else {
            return HashMap::new();
        };
        let text = resp.text().await.unwrap_or_default();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_owned(), v.trim().parse().ok()?))
            })
            .collect()
    }
}

/// A pseudo-random permutation of the seeded users 2..=n (user 1 is the cache-hit target):
/// sequence number `k` maps to a distinct user for every `k < n - 1`.
#[derive(Debug, Clone, Copy)]
pub struct Permutation {
    a: u128,
    b: u128,
    m: u128,
}

impl Permutation {
    pub fn new(n: u64) -> Self {
        let m = u128::from(n - 1);
        let gcd = |mut x: u128, mut y: u128| {
            while y != 0 {
                (x, y) = (y, x % y);
            }
            x
        };
        let mut a = 2_654_435_761_u128 % m;
        while a < 2 || gcd(a, m) != 1 {
            a += 1;
        }
        Self { a, b: 7_919 % m, m }
    }

    pub fn user(&self, k: u64) -> u64 {
        let i = (u128::from(k) * self.a + self.b) % self.m;
        2 + u64::try_from(i).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_permutation_never_repeats_a_user_and_skips_user_1() {
        for n in [42_u64, 1_000, 65_537] {
            let perm = Permutation::new(n);
            let mut seen: Vec<u64> = (0..n - 1).map(|k| perm.user(k)).collect();
            assert!(seen.iter().all(|u| (2..=n).contains(u)), "n = {n}");
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len() as u64, n - 1, "n = {n}");
        }
    }
}

//! The edge scenarios through one running edge: `/edge/health`, a refused token, a JWT-verified
//! cached profile read and a JWT-verified forwarded read, each at saturation and at a fixed
//! moderate rate; and the figures kept of them.

use std::time::Duration;

use serde::Serialize;

use crate::figures::round3;
use crate::load::{self, RunStats, Target};
use crate::stack::edge::wait_ready;
use crate::stack::origin::login;

/// Fixed moderate rate of every scenario, requests per second.
pub const RATE: f64 = 100.0;
pub const DURATION: Duration = Duration::from_secs(10);
pub const WARMUP: Duration = Duration::from_secs(2);
pub const CONCURRENCY: usize = 8;
/// Most requests in flight in the fixed-rate run.
pub const OPEN_CONNECTIONS: usize = 64;

#[derive(Debug, Serialize)]
pub struct ScenarioResult {
    pub name: &'static str,
    pub request: &'static str,
    pub saturation: RunStats,
    pub fixed_rate: RunStats,
}

#[derive(Debug, Serialize)]
pub struct RuntimeResults {
    pub runtime: &'static str,
    pub scenarios: Vec<ScenarioResult>,
    pub cached_minus_health_p50_ms: f64,
    pub target_met: bool,
}

/// What `bench/edge-results.json` holds.
#[derive(Debug, Serialize)]
pub struct EdgeResults {
    pub date: String,
    pub commit: String,
    pub rate_rps: f64,
    pub duration_s: f64,
    pub runtimes: Vec<RuntimeResults>,
}

/// Warm-up, saturation with [`CONCURRENCY`] clients, then the fixed [`RATE`].
async fn measure(name: &'static str, request: &'static str, target: &Target) -> ScenarioResult {
    let _ = load::closed(target, CONCURRENCY, WARMUP).await;
    let saturation = load::closed(target, CONCURRENCY, DURATION).await;
    let fixed_rate = load::open(target, RATE, DURATION, OPEN_CONNECTIONS).await;
    eprintln!(
        "==> {name}: saturation {:.0} req/s p50 {:.2} ms p99 {:.2} ms; at {RATE} req/s p50 {:.2} ms p99 {:.2} ms",
        saturation.ok_rps,
        saturation.latency.p50_ms,
        saturation.latency.p99_ms,
        fixed_rate.latency.p50_ms,
        fixed_rate.latency.p99_ms
    );
    ScenarioResult {
        name,
        request,
        saturation,
        fixed_rate,
    }
}

/// The four scenarios through the edge at `edge`, logged in as the admin.
pub async fn measure_runtime(
    client: &reqwest::Client,
    edge: &str,
    admin: (&str, &str),
    runtime: &'static str,
) -> anyhow::Result<RuntimeResults> {
    wait_ready(client, &format!("{edge}/edge/health")).await?;
    let token = login(client, edge, admin.0, admin.1).await?;

    let health = Target::get(200, &format!("{edge}/edge/health"), None)?;
    let cached = Target::get(
        200,
        &format!("{edge}/users/me"),
        Some(load::bearer(&token)?),
    )?;
    // Same token with its signature's last character changed: verified (and refused) at the
    // edge, before any state or cache look-up: the cost of verification alone.
    let forged = {
        let last = token.chars().last().unwrap_or('A');
        let swapped = if last == 'A' { 'B' } else { 'A' };
        let bad = format!("{}{swapped}", &token[..token.len() - 1]);
        Target::get(401, &format!("{edge}/users/me"), Some(load::bearer(&bad)?))?
    };
    let forwarded = Target::get(
        200,
        &format!("{edge}/users?limit=1"),
        Some(load::bearer(&token)?),
    )?;
    cached.probe("GET /users/me through the edge").await?;
    let scenarios = vec![
        measure(
            "edge health",
            "GET /edge/health (no token, no origin)",
            &health,
        )
        .await,
        measure(
            "token refused at the edge",
            "GET /users/me with a bad signature (JWT verification only, 401)",
            &forged,
        )
        .await,
        measure(
            "cached profile read",
            "GET /users/me (JWT verified, revocation and rate-limit state, profile cache hit)",
            &cached,
        )
        .await,
        measure(
            "forwarded read",
            "GET /users?limit=1 (JWT verified, revocation and rate-limit state, forwarded to the origin)",
            &forwarded,
        )
        .await,
    ];
    let gap = scenarios[2].fixed_rate.latency.p50_ms - scenarios[0].fixed_rate.latency.p50_ms;
    Ok(RuntimeResults {
        runtime,
        cached_minus_health_p50_ms: round3(gap),
        target_met: gap <= 1.0,
        scenarios,
    })
}

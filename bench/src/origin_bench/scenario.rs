//! How one scenario is measured: a warm-up, saturation (closed loop), then a fixed rate at half
//! the saturation throughput, with pauses between; and the variant that also reads the origin's
//! cache counters around it.

use anyhow::bail;
use serde_json::{Value, json};

use super::env::{Env, log};
use super::results::Scenario;
use crate::figures::round3;
use crate::load::{self, RunStats, Target};

/// Warm-up, saturation (closed loop), then a fixed rate at half the saturation throughput.
pub async fn scenario(
    env: &Env,
    name: &'static str,
    title: &'static str,
    request: String,
    target: &Target,
    concurrency: usize,
) -> anyhow::Result<Scenario> {
    log(format!("{name}: warm-up {} s", env.args.warmup_s));
    let _ = load::closed(target, concurrency, env.args.warmup()).await;
    tokio::time::sleep(env.args.pause()).await;
    let saturation = measured(
        env,
        load::closed(target, concurrency, env.args.duration()),
        |s| {
            format!(
                "{name}: saturation {:.0} req/s (ok {:.0})",
                s.throughput_rps, s.ok_rps
            )
        },
    )
    .await;
    if saturation.ok == 0 {
        bail!(
            "{name}: no successful answer at saturation: {:?}",
            saturation.error_kinds
        );
    }
    tokio::time::sleep(env.args.pause()).await;
    let rate = saturation.ok_rps / 2.0;
    let half_rate = measured(env, load::open(target, rate, env.args.duration()), |s| {
        format!(
            "{name}: at {rate:.0} req/s: achieved {:.0}",
            s.throughput_rps
        )
    })
    .await;
    tokio::time::sleep(env.args.pause()).await;
    Ok(Scenario {
        name: name.to_owned(),
        title: title.to_owned(),
        request,
        saturation,
        half_rate,
        extra: Value::Null,
    })
}

/// Measures `run`, then logs what it was (`what`) with its latencies and errors.
async fn measured(
    env: &Env,
    run: impl Future<Output = RunStats>,
    what: impl Fn(&RunStats) -> String,
) -> RunStats {
    let stats = env.measure(run).await;
    log(format!(
        "{}, p50 {} ms, p99 {} ms, errors {}",
        what(&stats),
        stats.latency.p50_ms,
        stats.latency.p99_ms,
        stats.errors
    ));
    stats
}

/// A scenario of `GET /users/{id}` with the origin's cache counters around it.
pub async fn cache_scenario(
    env: &Env,
    name: &'static str,
    title: &'static str,
    request: String,
    target: &Target,
) -> anyhow::Result<Scenario> {
    let before = env.metrics().await;
    let mut s = scenario(env, name, title, request, target, env.args.concurrency).await?;
    let after = env.metrics().await;
    let delta =
        |k: &str| after.get(k).copied().unwrap_or(0.0) - before.get(k).copied().unwrap_or(0.0);
    let (hits, misses) = (
        delta("users_cache_hits_total"),
        delta("users_cache_misses_total"),
    );
    s.extra = json!({
        "cache_hits": hits,
        "cache_misses": misses,
        "hit_ratio": if hits + misses > 0.0 { round3(hits / (hits + misses)) } else { 0.0 },
    });
    Ok(s)
}

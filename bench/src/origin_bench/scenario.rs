//! How one scenario is measured: a warm-up, saturation (closed loop), then a fixed rate at half
//! the saturation throughput, with pauses between; and the variant that also reads the origin's
//! cache counters around it.

use std::collections::HashMap;

use anyhow::bail;
use serde_json::{Value, json};

use super::args::OPEN_CONNECTIONS;
use super::env::{Env, log};
use super::results::Scenario;
use crate::figures::round3;
use crate::load::{self, RunStats, Target};

/// Warm-up, saturation (closed loop), then a fixed rate at half the saturation throughput.
/// With `route` (a route template of the origin), the extra figures say how long the origin's
/// own clock saw the fixed-rate run's answers take ([`origin_clock`]).
pub async fn scenario(
    env: &Env,
    name: &'static str,
    title: &'static str,
    request: String,
    target: &Target,
    concurrency: usize,
    route: Option<&str>,
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
    let clock_before = match route {
        Some(_) => env.metrics().await,
        None => HashMap::new(),
    };
    let half_rate = measured(
        env,
        load::open(target, rate, env.args.duration(), OPEN_CONNECTIONS),
        |s| {
            format!(
                "{name}: at {rate:.0} req/s: achieved {:.0}",
                s.throughput_rps
            )
        },
    )
    .await;
    let extra = match route {
        Some(route) => {
            let clock = origin_clock(&clock_before, &env.metrics().await, route);
            json!({ "half_rate_origin_clock": clock })
        }
        None => Value::Null,
    };
    tokio::time::sleep(env.args.pause()).await;
    Ok(Scenario {
        name: name.to_owned(),
        title: title.to_owned(),
        request,
        saturation,
        half_rate,
        extra,
    })
}

/// The series of the `GET route` answers (status 200) of at most `le` seconds.
fn bucket(route: &str, le: &str) -> String {
    format!(
        "http_request_duration_seconds_bucket{{method=\"GET\",route=\"{route}\",status=\"200\",le=\"{le}\"}}"
    )
}

/// The `GET route` answers between two scrapes of the origin's `/metrics`, by the origin's own
/// clock (`http_request_duration_seconds`, from the request reaching its middleware to the
/// answer): how many, and how many took longer than 1 ms and 2.5 ms. What the client saw above
/// that was spent outside the handler: in the kernel, the runtimes' queues and the scheduler.
fn origin_clock(before: &HashMap<String, f64>, after: &HashMap<String, f64>, route: &str) -> Value {
    let series = |le: &str| bucket(route, le);
    let delta =
        |k: &str| after.get(k).copied().unwrap_or(0.0) - before.get(k).copied().unwrap_or(0.0);
    let (all, within_1ms, within_2_5ms) = (
        delta(&series("+Inf")),
        delta(&series("0.001")),
        delta(&series("0.0025")),
    );
    json!({
        "answers": all,
        "over_1ms": all - within_1ms,
        "over_2_5ms": all - within_2_5ms,
    })
}

/// Measures `run`, then logs what it was (`what`) with its latencies and errors.
pub(super) async fn measured(
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
    let pg = crate::stack::services::connect(&env.db).await?;
    let xacts_before = transactions(&pg, &env.db).await?;
    let mut s = scenario(
        env,
        name,
        title,
        request,
        target,
        env.args.concurrency,
        Some("/users/{id}"),
    )
    .await?;
    let xacts = transactions(&pg, &env.db).await? - xacts_before;
    let after = env.metrics().await;
    let delta =
        |k: &str| after.get(k).copied().unwrap_or(0.0) - before.get(k).copied().unwrap_or(0.0);
    let (hits, misses) = (
        delta("users_cache_hits_total"),
        delta("users_cache_misses_total"),
    );
    // Every statement the origin sends outside a transaction is one transaction of its own.
    let requests = (s.saturation.ok + s.half_rate.ok) as f64;
    let memory = delta("users_memo_reads_total{from=\"memory\",kind=\"view\"}");
    let clock = s.extra["half_rate_origin_clock"].take();
    s.extra = json!({
        "half_rate_origin_clock": clock,
        "database_transactions": xacts,
        "database_round_trips_per_read": if requests > 0.0 { (xacts as f64 / requests * 1e5).round() / 1e5 } else { 0.0 },
        "requests_measured": requests,
        "views_from_memory": memory,
        "cache_hits": hits,
        "cache_misses": misses,
        "hit_ratio": if hits + misses > 0.0 { round3(hits / (hits + misses)) } else { 0.0 },
    });
    Ok(s)
}

/// Transactions committed or rolled back in database `db` so far, once the statistics of the
/// runs before are flushed (backends report them within a second of going idle).
async fn transactions(pg: &tokio_postgres::Client, db: &str) -> anyhow::Result<i64> {
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    pg.batch_execute("SELECT pg_stat_clear_snapshot()").await?;
    let row = pg
        .query_one(
            "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database WHERE datname = $1",
            &[&db],
        )
        .await?;
    Ok(row.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(pairs: &[(&str, f64)]) -> HashMap<String, f64> {
        pairs
            .iter()
            .map(|(le, n)| (bucket("/users/{id}", le), *n))
            .collect()
    }

    #[test]
    fn the_origin_clock_counts_the_answers_between_two_scrapes_by_bucket() {
        let before = scrape(&[("0.001", 90.0), ("0.0025", 95.0), ("+Inf", 100.0)]);
        let mut after = scrape(&[("0.001", 1080.0), ("0.0025", 1092.0), ("+Inf", 1100.0)]);
        // Another route's answers are not counted.
        after.insert(bucket("/users", "+Inf"), 5000.0);
        let clock = origin_clock(&before, &after, "/users/{id}");
        assert_eq!(clock["answers"], 1000.0);
        assert_eq!(clock["over_1ms"], 10.0);
        assert_eq!(clock["over_2_5ms"], 3.0);
        // A route never answered: nothing.
        assert_eq!(origin_clock(&before, &after, "/nowhere")["answers"], 0.0);
    }
}

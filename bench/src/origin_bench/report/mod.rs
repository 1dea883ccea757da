//! `bench/results.json` and the generated `docs/benchmarks.md`.
//!
//! This module checks the targets and writes the files; `tables` makes the results and targets
//! tables and holds the formatting, `markdown` the whole report around them.

mod markdown;
mod tables;

use std::path::Path;

use anyhow::Context as _;
use serde_json::Value;

use self::markdown::markdown;
use self::tables::find;
pub use self::tables::markdown_summary;
use super::results::{Hashing, Overload, Results, Scenario, TargetCheck};

/// Rewrites the markdown report from a results file (targets re-checked); returns the summary.
pub fn render(json_path: &Path, md_path: &Path) -> anyhow::Result<String> {
    let raw = std::fs::read_to_string(json_path)
        .with_context(|| format!("read {}", json_path.display()))?;
    let mut results: Results =
        serde_json::from_str(&raw).with_context(|| format!("parse {}", json_path.display()))?;
    results.targets = check_targets(&results.scenarios, &results.hashing, &results.overload);
    write_markdown(&results, md_path)?;
    Ok(markdown_summary(&results))
}

/// Writes the results as JSON and the report as markdown, creating their directories.
pub fn write(results: &Results, json_path: &Path, md_path: &Path) -> anyhow::Result<()> {
    for p in [json_path, md_path] {
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
    }
    let json = serde_json::to_string_pretty(results)?;
    std::fs::write(json_path, json + "\n")
        .with_context(|| format!("write {}", json_path.display()))?;
    write_markdown(results, md_path)
}

/// The sections the edge and transfer benchmarks write into the same file.
const OTHER_SECTIONS: [(&str, &str); 2] =
    [crate::edge_bench::MARKERS, crate::transfer_bench::MARKERS];

/// Rewrites the report at `md_path`, keeping the other benchmarks' sections of it.
fn write_markdown(results: &Results, md_path: &Path) -> anyhow::Result<()> {
    let existing = std::fs::read_to_string(md_path).unwrap_or_default();
    let md = crate::section::carry(&existing, markdown(results), &OTHER_SECTIONS);
    std::fs::write(md_path, md).with_context(|| format!("write {}", md_path.display()))
}

/// Cached read p99 at half saturation, ms.
const CACHED_P99_MS: f64 = 2.0;
/// The cached read's saturation throughput committed before reads were answered from memory
/// (`docs/benchmarks.md` of 2026-11-25, the same scenario on the same kind of machine), req/s.
const CACHED_BASELINE_RPS: f64 = 6492.0;
/// Cached read saturation ≥ this × the baseline.
const CACHED_SPEEDUP: f64 = 3.0;
/// Cached read saturation ≥ this × the seed's stack's.
const SEED_RATIO: f64 = 30.0;
/// Database round trips per cached read below this.
const CACHED_ROUND_TRIPS: f64 = 0.02;
/// Deep page p99 ≤ this × page 1 p99.
const DEEP_RATIO: f64 = 2.0;
/// Login saturation ≥ this share of the hashing limit.
const LOGIN_SHARE: f64 = 0.9;
/// 503 p99 under overload, ms.
const OVERLOAD_503_P99_MS: f64 = 10.0;

/// Checks each target the run has the figures for.
pub fn check_targets(
    scenarios: &[Scenario],
    hashing: &Hashing,
    overload: &Overload,
) -> Vec<TargetCheck> {
    let mut out = Vec::new();
    if let Some(hit) = find(scenarios, "get_user_cache_hit") {
        let rps = hit.saturation.ok_rps;
        out.push(TargetCheck {
            target: format!(
                "cached read (GET /users/{{id}}, cache hit) at saturation ≥ 3 × {CACHED_BASELINE_RPS:.0} req/s"
            ),
            measured: format!("{rps:.0} req/s = {:.2}×", rps / CACHED_BASELINE_RPS),
            pass: rps >= CACHED_SPEEDUP * CACHED_BASELINE_RPS,
        });
        if let Some(trips) = hit.extra["database_round_trips_per_read"].as_f64() {
            out.push(TargetCheck {
                target: "cached read: < 0.02 database round trips per read".to_owned(),
                measured: format!(
                    "{trips:.5} ({} transactions over {} reads)",
                    hit.extra["database_transactions"], hit.extra["requests_measured"]
                ),
                pass: trips < CACHED_ROUND_TRIPS,
            });
        }
        if let Some(seed) = find(scenarios, "seed_get_user") {
            let theirs = seed.saturation.ok_rps;
            let ratio = rps / theirs.max(1e-9);
            out.push(TargetCheck {
                target:
                    "cached read ≥ 30 × the seed's stack (GET /users/{id}, same run, same load)"
                        .to_owned(),
                measured: format!("{rps:.0} vs {theirs:.0} req/s = {ratio:.1}×"),
                pass: ratio >= SEED_RATIO,
            });
        }
        let p99 = hit.half_rate.latency.p99_ms;
        // Results written before the tenth-rate run, or the floor, have none.
        let p99_of = |v: &Value| v["latency"]["p99_ms"].as_f64().unwrap_or_default();
        let tenth = hit.extra.get("tenth_rate").map_or_else(String::new, |t| {
            format!(
                "; at a tenth of saturation, {:.0} req/s: p99 {:.2} ms",
                t["target_rps"].as_f64().unwrap_or_default(),
                p99_of(t)
            )
        });
        let floor = hit.extra.get("floor").map_or_else(String::new, |f| {
            format!(
                "; a server that does no work, at the same rates: p99 {:.2} and {:.2} ms",
                p99_of(&f["half_rate"]),
                p99_of(&f["tenth_rate"])
            )
        });
        let clock = &hit.extra["half_rate_origin_clock"];
        let clock = clock["answers"].as_f64().map_or_else(String::new, |all| {
            format!(
                "; by the origin's own clock {:.0} of {all:.0} answers took over 1 ms, {:.0} over 2.5 ms",
                clock["over_1ms"].as_f64().unwrap_or_default(),
                clock["over_2_5ms"].as_f64().unwrap_or_default()
            )
        });
        out.push(TargetCheck {
            target: "cached read (GET /users/{id}, cache hit) p99 ≤ 2 ms at half saturation"
                .to_owned(),
            measured: format!(
                "p99 {p99:.2} ms at {:.0} req/s{tenth}{floor}{clock}",
                hit.half_rate.target_rps.unwrap_or_default()
            ),
            pass: p99 <= CACHED_P99_MS && hit.half_rate.errors == 0,
        });
    }
    if let (Some(p1), Some(deep)) = (
        find(scenarios, "list_page_1"),
        find(scenarios, "list_deep_page"),
    ) {
        let (a, b) = (p1.half_rate.latency.p99_ms, deep.half_rate.latency.p99_ms);
        let ratio = b / a.max(1e-6);
        out.push(TargetCheck {
            target: "page 10 000 p99 ≤ 2 × page 1 p99 (each at half its saturation)".to_owned(),
            measured: format!(
                "{b:.2} ms vs {a:.2} ms = {ratio:.2}× (at saturation: {:.2} vs {:.2} ms)",
                deep.saturation.latency.p99_ms, p1.saturation.latency.p99_ms
            ),
            pass: ratio <= DEEP_RATIO && deep.half_rate.errors == 0,
        });
    }
    if let Some(login) = find(scenarios, "login") {
        let share = login.saturation.ok_rps / hashing.parallel_rps.max(1e-9);
        out.push(TargetCheck {
            target: "login saturation ≥ 90 % of the rate one thread per core reaches hashing only"
                .to_owned(),
            measured: format!(
                "{:.1} logins/s of {:.1} hashes/s = {:.0} % (one hash alone: {:.1}/s per core)",
                login.saturation.ok_rps,
                hashing.parallel_rps,
                share * 100.0,
                1000.0 / hashing.median_ms.max(1e-9)
            ),
            pass: share >= LOGIN_SHARE,
        });
    }
    let p99 = overload.p99_503_ms;
    out.push(TargetCheck {
        target: "login overload (open loop at 2 × limit): 503 p99 < 10 ms".to_owned(),
        measured: match p99 {
            Some(p) => format!(
                "503 p99 {p:.1} ms (p50 {:.1} ms), {:.0} % of answers were 503",
                overload.p50_503_ms.unwrap_or_default(),
                overload.share_503 * 100.0
            ),
            None => "no 503 answer at all".to_owned(),
        },
        pass: p99.is_some_and(|p| p < OVERLOAD_503_P99_MS),
    });
    out
}
